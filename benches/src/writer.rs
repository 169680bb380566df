//! The sending side shared by the modes: frames from a [`Template`] go out with `writev`, many
//! per call, and control frames wait for a frame boundary.

use crate::client::{Template, MAX_PREFIX};
use crate::BenchError;
use std::io::{ErrorKind, IoSlice, Write};

/// Frames handed to one `writev` at most (two slices each, well under IOV_MAX).
const BATCH: usize = 64;

/// One connection's outgoing queue: messages `written..queued` wait, the first of them
/// `write_off` bytes written already.
#[derive(Debug, Default)]
pub struct Tx {
    /// Messages queued so far (the next one gets this sequence number).
    pub queued: u64,
    /// Messages fully written.
    pub written: u64,
    write_off: usize,
    control: Vec<u8>,
    control_off: usize,
}

impl Tx {
    /// Queues the next message; returns its sequence number.
    pub fn queue(&mut self) -> u64 {
        self.queued += 1;
        self.queued - 1
    }

    /// Control frames (pong, close) to send at the next frame boundary.
    pub fn control(&mut self) -> &mut Vec<u8> {
        &mut self.control
    }

    /// Writes what is queued until done or the socket is full (then WRITABLE calls again).
    /// `stream` is a socket or a [`Transport`](crate::tls::Transport) (TLS holds records until
    /// the socket takes them: its `flush` sends them, and is a no-op on a plain socket).
    pub fn flush(
        &mut self,
        stream: &mut impl Write,
        template: &Template,
    ) -> Result<(), BenchError> {
        let frame_len = template.frame_len();
        let tail = template.tail();
        loop {
            if self.write_off == 0 && self.control_off < self.control.len() {
                match stream.write(&self.control[self.control_off..]) {
                    Ok(0) => return Err(BenchError::Io(ErrorKind::WriteZero, "write")),
                    Ok(n) => {
                        self.control_off += n;
                        if self.control_off == self.control.len() {
                            self.control.clear();
                            self.control_off = 0;
                        }
                        continue;
                    }
                    Err(e) => match e.kind() {
                        ErrorKind::WouldBlock => return Ok(()),
                        ErrorKind::Interrupted => continue,
                        kind => return Err(BenchError::Io(kind, "write")),
                    },
                }
            }
            if self.written == self.queued {
                return stream
                    .flush()
                    .map_err(|e| crate::tls::io_error(&e, "write"));
            }
            let frames = ((self.queued - self.written) as usize).min(BATCH);
            let mut prefixes = [[0u8; MAX_PREFIX]; BATCH];
            let mut lens = [0usize; BATCH];
            for (k, (p, len)) in prefixes
                .iter_mut()
                .zip(lens.iter_mut())
                .take(frames)
                .enumerate()
            {
                *len = template.prefix(self.written + k as u64, p);
            }
            let mut iov = [IoSlice::new(&[]); 2 * BATCH];
            let mut cnt = 0;
            let mut wanted = 0;
            for k in 0..frames {
                let (mut p, mut t) = (&prefixes[k][..lens[k]], tail);
                if k == 0 {
                    // Skip what an earlier partial write already sent of the first frame.
                    let skip = self.write_off;
                    if skip < p.len() {
                        p = &p[skip..];
                    } else {
                        t = &t[skip - p.len()..];
                        p = &[];
                    }
                }
                for part in [p, t] {
                    if !part.is_empty() {
                        iov[cnt] = IoSlice::new(part);
                        cnt += 1;
                        wanted += part.len();
                    }
                }
            }
            let n = match stream.write_vectored(&iov[..cnt]) {
                Ok(0) => return Err(BenchError::Io(ErrorKind::WriteZero, "write")),
                Ok(n) => n,
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => return Ok(()),
                    ErrorKind::Interrupted => continue,
                    kind => return Err(BenchError::Io(kind, "write")),
                },
            };
            let done = self.write_off + n;
            self.written += (done / frame_len) as u64;
            self.write_off = done % frame_len;
            if n < wanted {
                return Ok(());
            }
        }
    }
}
