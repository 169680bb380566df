//! A connection's outgoing bytes: a queue of chunks written with one `writev` per call.
//!
//! Chunks are either owned (frames encoded for this connection, small ones coalesced) or shared
//! (`Arc<[u8]>`: a broadcast frame encoded once for many connections, never copied). An idle
//! connection's queue holds no allocation.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Chunks up to this size are appended to the previous owned chunk instead of queued apart, so
/// a burst of small frames becomes a few iovecs.
const COALESCE_LIMIT: usize = 16 * 1024;

/// iovecs per `writev` call (Linux allows 1024; more buys nothing once the socket buffer is full).
const MAX_IOVECS: usize = 64;

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// Outgoing bytes of one connection, oldest first.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Unwritten bytes in the whole queue.
    len: usize,
}

impl OutQueue {
    /// Unwritten bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues bytes owned by this connection. Small ones are copied onto the tail chunk when it
    /// is owned, not yet being written, and has room.
    pub(crate) fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        // Appending to a partly written front chunk is fine: `front_written` counts from its start.
        if let Some(Chunk::Owned(tail)) = self.chunks.back_mut() {
            if bytes.len() <= COALESCE_LIMIT && tail.len() + bytes.len() <= 4 * COALESCE_LIMIT {
                tail.extend_from_slice(&bytes);
                return;
            }
        }
        self.chunks.push_back(Chunk::Owned(bytes));
    }

    /// Appends to the tail owned chunk through a closure writing into a `Vec`, so encoders can
    /// write in place. Used for the small frames the loop encodes itself.
    pub(crate) fn push_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let before;
        match self.chunks.back_mut() {
            Some(Chunk::Owned(tail)) if tail.len() < 4 * COALESCE_LIMIT => {
                before = tail.len();
                encode(tail);
                self.len += tail.len() - before;
            }
            _ => {
                let mut v = Vec::new();
                encode(&mut v);
                if v.is_empty() {
                    return;
                }
                self.len += v.len();
                self.chunks.push_back(Chunk::Owned(v));
            }
        }
    }

    /// Queues shared bytes without copying them.
    pub(crate) fn push_shared(&mut self, bytes: Arc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        self.chunks.push_back(Chunk::Shared(bytes));
    }

    /// One `writev` of the queued chunks. Returns the bytes written (0 only when the queue is
    /// empty); written bytes leave the queue.
    pub(crate) fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        if self.len == 0 {
            return Ok(0);
        }
        let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
            let bytes = chunk.bytes();
            let bytes = if i == 0 {
                bytes.get(self.front_written..).unwrap_or_default()
            } else {
                bytes
            };
            slices[i] = IoSlice::new(bytes);
            count = i + 1;
        }
        let n = w.write_vectored(&slices[..count])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.consume(n);
        Ok(n)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.front_written = 0;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            // Give back the ring's allocation: an idle connection keeps nothing.
            self.chunks = VecDeque::new();
        }
    }

    /// Drops everything queued.
    pub(crate) fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.front_written = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `cap` bytes per call and records them.
    struct Trickle {
        cap: usize,
        got: Vec<u8>,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.cap - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.cap {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_across_owned_and_shared_chunks() {
        let mut q = OutQueue::default();
        q.push_owned(b"abc".to_vec());
        q.push_shared(Arc::from(&b"defgh"[..]));
        q.push_owned(b"ij".to_vec());
        q.push_with(|v| v.extend_from_slice(b"kl"));
        assert_eq!(q.len(), 12);
        let mut w = Trickle {
            cap: 4,
            got: Vec::new(),
            calls: 0,
        };
        while !q.is_empty() {
            q.write_to(&mut w).unwrap();
        }
        assert_eq!(w.got, b"abcdefghijkl");
        assert_eq!(w.calls, 3);
        assert_eq!(q.len(), 0);
        assert_eq!(q.chunks.capacity(), 0);
    }

    #[test]
    fn small_owned_chunks_coalesce_into_one_iovec() {
        let mut q = OutQueue::default();
        for _ in 0..100 {
            q.push_owned(vec![1u8; 10]);
        }
        assert_eq!(q.chunks.len(), 1);
        assert_eq!(q.len(), 1000);
    }

    #[test]
    fn empty_pushes_queue_nothing() {
        let mut q = OutQueue::default();
        q.push_owned(Vec::new());
        q.push_shared(Arc::from(&b""[..]));
        q.push_with(|_| {});
        assert!(q.is_empty());
        assert!(q.chunks.is_empty());
    }

    #[test]
    fn clear_forgets_a_partly_written_queue() {
        let mut q = OutQueue::default();
        q.push_owned(vec![0u8; 100]);
        let mut w = Trickle {
            cap: 10,
            got: Vec::new(),
            calls: 0,
        };
        q.write_to(&mut w).unwrap();
        q.clear();
        assert!(q.is_empty());
        q.push_owned(b"x".to_vec());
        let mut w2 = Trickle {
            cap: 10,
            got: Vec::new(),
            calls: 0,
        };
        q.write_to(&mut w2).unwrap();
        assert_eq!(w2.got, b"x");
    }
}
