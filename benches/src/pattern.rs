//! What the load generator puts in its messages, so that every reply can be checked byte for byte.
//!
//! A payload is an optional magic marker, the message's sequence number written as letters
//! (`a`..`p`, one per 4 bits, most significant first), then a fixed run of ASCII letters. It is
//! plain ASCII, so the same bytes serve as text or binary, and a reordered, lost, duplicated or
//! altered message shows up as a mismatch.

/// Most sequence digits a payload carries (32 bits of sequence number).
pub const MAX_DIGITS: usize = 8;

/// The expected payload of every message of one run, for any sequence number.
#[derive(Clone, Debug)]
pub struct Pattern {
    magic: &'static [u8],
    digits: usize,
    fill: Box<[u8]>,
}

impl Pattern {
    /// Echo payloads: `size` bytes, the first `min(size, 8)` of them the sequence number.
    pub fn echo(size: usize) -> Pattern {
        Pattern {
            magic: b"",
            digits: size.min(MAX_DIGITS),
            fill: fill(size),
        }
    }

    /// Broadcast payloads: the marker `wsb:`, 8 sequence digits, then fill up to `size`
    /// (at least [`Pattern::BROADCAST_MIN`]). The marker lets a receiver find the bench payload
    /// inside a message the server wrapped (a chat prefix, an HTML snippet) and skip notices.
    pub fn broadcast(size: usize) -> Option<Pattern> {
        (size >= Self::BROADCAST_MIN).then(|| Pattern {
            magic: BROADCAST_MAGIC,
            digits: MAX_DIGITS,
            fill: fill(size),
        })
    }

    /// Smallest broadcast payload: marker plus digits.
    pub const BROADCAST_MIN: usize = BROADCAST_MAGIC.len() + MAX_DIGITS;

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.fill.len()
    }

    /// True for zero-byte payloads.
    pub fn is_empty(&self) -> bool {
        self.fill.is_empty()
    }

    /// Length of the part that depends on the sequence number (marker included).
    pub fn head_len(&self) -> usize {
        self.magic.len() + self.digits
    }

    /// The sequence-dependent head of message `seq` (its first [`Pattern::head_len`] bytes).
    pub fn head(&self, seq: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..self.magic.len()].copy_from_slice(self.magic);
        let digits = &mut out[self.magic.len()..self.head_len()];
        write_digits(seq, digits);
        out
    }

    /// The part after the head: the same for every message.
    pub fn tail(&self) -> &[u8] {
        &self.fill[self.head_len()..]
    }

    /// Writes the whole payload of message `seq` into `out` (which must be `len()` long).
    pub fn write(&self, seq: u64, out: &mut [u8]) {
        let h = self.head_len();
        out[..h].copy_from_slice(&self.head(seq)[..h]);
        out[h..].copy_from_slice(self.tail());
    }

    /// Checks `bytes`, found at `offset` inside the payload of message `seq`.
    pub fn matches_at(&self, seq: u64, offset: usize, bytes: &[u8]) -> bool {
        let Some(end) = offset.checked_add(bytes.len()) else {
            return false;
        };
        if end > self.len() {
            return false;
        }
        let h = self.head_len();
        let mut bytes = bytes;
        let mut offset = offset;
        if offset < h {
            let head = self.head(seq);
            let n = (h - offset).min(bytes.len());
            if bytes[..n] != head[offset..offset + n] {
                return false;
            }
            bytes = &bytes[n..];
            offset += n;
        }
        bytes == &self.fill[offset..offset + bytes.len()]
    }

    /// Finds a broadcast payload inside `message` (which may wrap it) and returns its sequence
    /// number if the payload is complete and intact. `None`: no marker (a notice, not ours).
    /// `Some(Err(()))`: a marker followed by anything but an intact payload.
    pub fn find_in(&self, message: &[u8]) -> Option<Result<u64, ()>> {
        if self.magic.is_empty() {
            return None;
        }
        let at = message
            .windows(self.magic.len())
            .position(|w| w == self.magic)?;
        let body = &message[at..];
        let h = self.head_len();
        if body.len() < self.len() {
            return Some(Err(()));
        }
        let Some(seq) = read_digits(&body[self.magic.len()..h]) else {
            return Some(Err(()));
        };
        if body[h..self.len()] != *self.tail() {
            return Some(Err(()));
        }
        Some(Ok(seq))
    }
}

const BROADCAST_MAGIC: &[u8] = b"wsb:";

fn fill(size: usize) -> Box<[u8]> {
    (0..size).map(|i| b'A' + (i % 26) as u8).collect()
}

fn write_digits(seq: u64, out: &mut [u8]) {
    let n = out.len();
    for (i, d) in out.iter_mut().enumerate() {
        let shift = 4 * (n - 1 - i);
        *d = b'a' + ((seq >> shift) & 0xf) as u8;
    }
}

fn read_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = d.checked_sub(b'a').filter(|v| *v < 16)?;
        Some((acc << 4) | u64::from(v))
    })
}

/// Compares two sequence numbers of which only the low `4 * digits` bits travel on the wire.
pub fn wire_seq(seq: u64, digits: usize) -> u64 {
    if digits >= 16 {
        seq
    } else {
        seq & ((1u64 << (4 * digits)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_payload_carries_the_sequence_number_then_fill() {
        let p = Pattern::echo(16);
        let mut buf = vec![0u8; 16];
        p.write(0x1234_abcd, &mut buf);
        assert_eq!(&buf[..8], b"bcdeklmn");
        assert_eq!(&buf[8..], b"IJKLMNOP");
        assert!(p.matches_at(0x1234_abcd, 0, &buf));
        assert!(p.matches_at(0x1234_abcd, 5, &buf[5..11]));
        assert!(
            !p.matches_at(0x1234_abce, 0, &buf),
            "another seq must not match"
        );
    }

    #[test]
    fn any_altered_byte_is_a_mismatch() {
        let p = Pattern::echo(100);
        let mut buf = vec![0u8; 100];
        p.write(7, &mut buf);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x20;
            assert!(!p.matches_at(7, 0, &bad), "flip at {i} went unnoticed");
        }
        assert!(
            !p.matches_at(7, 99, &buf[..2]),
            "past the end must not match"
        );
    }

    #[test]
    fn short_payloads_carry_fewer_digits() {
        let p = Pattern::echo(3);
        assert_eq!(p.head_len(), 3);
        let mut buf = [0u8; 3];
        p.write(0xfff, &mut buf);
        assert_eq!(&buf, b"ppp");
        assert!(Pattern::echo(0).is_empty());
    }

    #[test]
    fn broadcast_payload_is_found_inside_a_wrapper() {
        let p = Pattern::broadcast(20).unwrap();
        let mut payload = vec![0u8; 20];
        p.write(42, &mut payload);
        let mut wrapped = b"<p>Client3: ".to_vec();
        wrapped.extend_from_slice(&payload);
        wrapped.extend_from_slice(b"</p>");
        assert_eq!(p.find_in(&wrapped), Some(Ok(42)));
        assert_eq!(p.find_in(b"Client4 connected!"), None);
        wrapped[20] ^= 1;
        assert_eq!(p.find_in(&wrapped), Some(Err(())));
        assert!(Pattern::broadcast(11).is_none());
    }

    #[test]
    fn wire_seq_keeps_only_the_transmitted_bits() {
        assert_eq!(wire_seq(0x1_0000_0005, 8), 5);
        assert_eq!(wire_seq(0x123, 2), 0x23);
    }
}
