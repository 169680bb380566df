//! Incremental reader of the frames a server sends (unmasked), fed whatever `read` returned.
//!
//! It never buffers a data payload: each piece is handed to the caller with its offset inside
//! the message, so a 1 MiB echo is checked as it streams in, with no per-message allocation.

use crate::client::{OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::BenchError;

/// What the reader found in the bytes it was fed.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Payload bytes of the current data message, starting at `offset` within that message.
    Data {
        /// Opcode of the message (text or binary), from its first frame.
        opcode: u8,
        /// Where these bytes sit in the message.
        offset: usize,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// The current data message is complete.
    End {
        /// Opcode of the message.
        opcode: u8,
        /// Total payload length.
        len: usize,
    },
    /// A ping with its payload.
    Ping(&'a [u8]),
    /// A pong with its payload.
    Pong(&'a [u8]),
    /// A close frame with its payload (code and reason).
    Close(&'a [u8]),
}

/// State carried between reads of one connection.
#[derive(Debug)]
pub struct FrameReader {
    header: [u8; 14],
    header_have: usize,
    in_payload: bool,
    remaining: u64,
    frame_opcode: u8,
    frame_fin: bool,
    msg_opcode: u8,
    msg_len: usize,
    control: [u8; 125],
    control_len: usize,
    max_message: usize,
}

impl FrameReader {
    /// A reader that fails on messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> FrameReader {
        FrameReader {
            header: [0; 14],
            header_have: 0,
            in_payload: false,
            remaining: 0,
            frame_opcode: 0,
            frame_fin: false,
            msg_opcode: 0,
            msg_len: 0,
            control: [0; 125],
            control_len: 0,
            max_message,
        }
    }

    /// Feeds received bytes; `on` is called for every piece, in order. An error from `on`
    /// stops the feed and is returned.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on: impl FnMut(Piece<'_>) -> Result<(), BenchError>,
    ) -> Result<(), BenchError> {
        loop {
            if !self.in_payload {
                if input.is_empty() {
                    return Ok(());
                }
                let used = self.take_header(input)?;
                input = &input[used..];
                if !self.in_payload {
                    return Ok(()); // header still incomplete: all input consumed
                }
            }
            let n = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(input.len());
            let (bytes, rest) = input.split_at(n);
            input = rest;
            if is_control(self.frame_opcode) {
                self.control[self.control_len..self.control_len + n].copy_from_slice(bytes);
                self.control_len += n;
            } else if n > 0 {
                on(Piece::Data {
                    opcode: self.msg_opcode,
                    offset: self.msg_len,
                    bytes,
                })?;
                self.msg_len += n;
            }
            self.remaining -= n as u64;
            if self.remaining > 0 {
                return Ok(()); // input exhausted inside the payload
            }
            self.in_payload = false;
            self.finish_frame(&mut on)?;
        }
    }

    /// Copies header bytes; once the header is whole, checks it and enters the payload.
    fn take_header(&mut self, input: &[u8]) -> Result<usize, BenchError> {
        let mut used = 0;
        let mut need = header_len(&self.header[..self.header_have])?;
        while self.header_have < need && used < input.len() {
            let n = (need - self.header_have).min(input.len() - used);
            self.header[self.header_have..self.header_have + n]
                .copy_from_slice(&input[used..used + n]);
            self.header_have += n;
            used += n;
            need = header_len(&self.header[..self.header_have])?;
        }
        if self.header_have < need {
            return Ok(used);
        }
        self.start_frame()?;
        self.header_have = 0;
        Ok(used)
    }

    fn start_frame(&mut self) -> Result<(), BenchError> {
        let b0 = self.header[0];
        let b1 = self.header[1];
        if b0 & 0x70 != 0 {
            return Err(BenchError::Protocol("reserved bits set"));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > 125 {
                    return Err(BenchError::Protocol("bad control frame"));
                }
                self.control_len = 0;
            }
            0 if self.msg_opcode == 0 => {
                return Err(BenchError::Protocol("continuation without a message"))
            }
            OP_TEXT | OP_BINARY if self.msg_opcode != 0 => {
                return Err(BenchError::Protocol("new message inside a fragmented one"))
            }
            0 => {}
            OP_TEXT | OP_BINARY => {
                self.msg_opcode = opcode;
                self.msg_len = 0;
            }
            _ => return Err(BenchError::Protocol("reserved opcode")),
        }
        if !is_control(opcode)
            && (self.msg_len as u64).saturating_add(len) > self.max_message as u64
        {
            return Err(BenchError::Protocol("message longer than expected"));
        }
        self.frame_opcode = opcode;
        self.frame_fin = fin;
        self.remaining = len;
        self.in_payload = true;
        Ok(())
    }

    fn finish_frame(
        &mut self,
        on: &mut impl FnMut(Piece<'_>) -> Result<(), BenchError>,
    ) -> Result<(), BenchError> {
        let control = &self.control[..self.control_len];
        match self.frame_opcode {
            OP_PING => on(Piece::Ping(control)),
            OP_PONG => on(Piece::Pong(control)),
            OP_CLOSE => on(Piece::Close(control)),
            _ if self.frame_fin => {
                let opcode = std::mem::replace(&mut self.msg_opcode, 0);
                on(Piece::End {
                    opcode,
                    len: self.msg_len,
                })
            }
            _ => Ok(()),
        }
    }
}

fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

/// Header length implied by the bytes seen so far (2 until the length byte is known).
fn header_len(seen: &[u8]) -> Result<usize, BenchError> {
    let Some(&b1) = seen.get(1) else {
        return Ok(2);
    };
    if b1 & 0x80 != 0 {
        return Err(BenchError::Protocol("masked frame from the server"));
    }
    Ok(match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Data(u8, usize, Vec<u8>),
        End(u8, usize),
        Ping(Vec<u8>),
        Close(Vec<u8>),
        Pong(Vec<u8>),
    }

    fn collect(reader: &mut FrameReader, input: &[u8], step: usize) -> Vec<Owned> {
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            reader
                .feed(chunk, |p| {
                    out.push(match p {
                        Piece::Data {
                            opcode,
                            offset,
                            bytes,
                        } => Owned::Data(opcode, offset, bytes.to_vec()),
                        Piece::End { opcode, len } => Owned::End(opcode, len),
                        Piece::Ping(b) => Owned::Ping(b.to_vec()),
                        Piece::Pong(b) => Owned::Pong(b.to_vec()),
                        Piece::Close(b) => Owned::Close(b.to_vec()),
                    });
                    Ok(())
                })
                .unwrap();
        }
        out
    }

    /// Joins consecutive data pieces so results compare across input splits.
    fn merged(pieces: Vec<Owned>) -> Vec<Owned> {
        let mut out: Vec<Owned> = Vec::new();
        for p in pieces {
            if let (Some(Owned::Data(_, off, prev)), Owned::Data(_, o, b)) = (out.last_mut(), &p) {
                if *off + prev.len() == *o {
                    prev.extend_from_slice(b);
                    continue;
                }
            }
            out.push(p);
        }
        out
    }

    fn unmasked(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![opcode_byte];
        let len = payload.len();
        if len < 126 {
            f.push(len as u8);
        } else if len < 65536 {
            f.push(126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn rfc_fragmented_hello_with_ping_between_reads_in_any_split() {
        // §5.7: "Hel" + "lo" in two frames, with a ping in between.
        let mut wire = vec![0x01, 0x03, b'H', b'e', b'l'];
        wire.extend_from_slice(&[0x89, 0x05, b'H', b'e', b'l', b'l', b'o']);
        wire.extend_from_slice(&[0x80, 0x02, b'l', b'o']);
        let expected = vec![
            Owned::Data(OP_TEXT, 0, b"Hel".to_vec()),
            Owned::Ping(b"Hello".to_vec()),
            Owned::Data(OP_TEXT, 3, b"lo".to_vec()),
            Owned::End(OP_TEXT, 5),
        ];
        for step in 1..wire.len() + 1 {
            let mut r = FrameReader::new(100);
            assert_eq!(
                merged(collect(&mut r, &wire, step)),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn long_length_forms_and_empty_frames_are_read() {
        let big = vec![7u8; 70_000];
        let mut wire = unmasked(0x82, &big);
        wire.extend_from_slice(&unmasked(0x82, &big[..300]));
        wire.extend_from_slice(&unmasked(0x81, b""));
        wire.extend_from_slice(&unmasked(0x88, &[0x03, 0xe8]));
        let mut r = FrameReader::new(1 << 20);
        let got = merged(collect(&mut r, &wire, 4096));
        assert_eq!(
            got,
            vec![
                Owned::Data(OP_BINARY, 0, big.clone()),
                Owned::End(OP_BINARY, 70_000),
                Owned::Data(OP_BINARY, 0, big[..300].to_vec()),
                Owned::End(OP_BINARY, 300),
                Owned::End(OP_TEXT, 0),
                Owned::Close(vec![0x03, 0xe8]),
            ]
        );
        let mut r = FrameReader::new(1 << 20);
        assert_eq!(
            collect(&mut r, &unmasked(0x8A, b"p"), 1),
            vec![Owned::Pong(b"p".to_vec())]
        );
    }

    #[test]
    fn broken_server_frames_are_errors() {
        let cases: [&[u8]; 6] = [
            &[0x81, 0x81, 0, 0, 0, 0, b'a'], // masked
            &[0xC1, 0x00],                   // RSV1
            &[0x80, 0x00],                   // continuation first
            &[0x01, 0x00, 0x81, 0x00],       // new message inside fragmented one
            &[0x09, 0x00],                   // fragmented ping
            &[0x83, 0x00],                   // reserved opcode
        ];
        for wire in cases {
            let mut r = FrameReader::new(100);
            assert!(
                r.feed(wire, |_| Ok(())).is_err(),
                "{wire:02x?} was accepted"
            );
        }
        let mut r = FrameReader::new(10);
        assert!(r.feed(&unmasked(0x82, &[0; 11]), |_| Ok(())).is_err());
    }
}
