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

/// Realistic JSON chat messages for the message-level client ([`crate::deflate`]): a room, a
/// user, a few words of text and a timestamp, 80 to 300 bytes, e.g.
/// `{"type":"message","id":7,"room":"general","user":"alice42","text":"see you at the
/// standup","ts":1764300000123}`.
///
/// Each message is a pure function of (seed, connection, sequence number), so a run is
/// repeatable, two runs with the same seed send the same bytes, and an echo is checked by
/// writing the expected message again and comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatJson {
    seed: u64,
}

/// Shortest chat message [`ChatJson`] writes, in bytes.
pub const CHAT_MIN: usize = 80;
/// Longest chat message [`ChatJson`] writes, in bytes.
pub const CHAT_MAX: usize = 300;

const ROOMS: [&str; 8] = [
    "general", "random", "dev", "ops", "design", "support", "sales", "offtopic",
];
const USERS: [&str; 12] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "trent",
];
const WORDS: [&str; 64] = [
    "the",
    "a",
    "to",
    "and",
    "is",
    "it",
    "we",
    "you",
    "i",
    "that",
    "this",
    "for",
    "on",
    "in",
    "with",
    "can",
    "just",
    "deploy",
    "build",
    "test",
    "server",
    "client",
    "release",
    "today",
    "tomorrow",
    "meeting",
    "standup",
    "review",
    "merge",
    "branch",
    "fixed",
    "broken",
    "lunch",
    "coffee",
    "ok",
    "thanks",
    "sure",
    "please",
    "check",
    "logs",
    "latency",
    "error",
    "ticket",
    "customer",
    "dashboard",
    "graph",
    "looks",
    "good",
    "bad",
    "weird",
    "again",
    "now",
    "later",
    "see",
    "at",
    "about",
    "new",
    "old",
    "version",
    "config",
    "here",
    "there",
    "lol",
    "great",
];
const PUNCT: [&str; 4] = ["", "", "?", "!"];

/// splitmix64: a tiny, well-mixed generator, enough to vary lengths and words.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl ChatJson {
    /// Messages drawn from `seed`.
    pub fn new(seed: u64) -> ChatJson {
        ChatJson { seed }
    }

    /// Replaces `out`'s content with message `seq` of connection `conn`. `out` keeps its
    /// capacity, so a reused buffer costs no allocation once it reached [`CHAT_MAX`].
    pub fn write(&self, conn: u64, seq: u64, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.clear();
        let mut state = mix(self.seed ^ mix(conn ^ mix(seq)));
        let mut next = || {
            state = mix(state);
            state
        };
        let room = ROOMS[(next() % ROOMS.len() as u64) as usize];
        let user = USERS[(conn % USERS.len() as u64) as usize];
        let ts = 1_764_300_000_123 + seq.wrapping_mul(37) + conn;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"type":"message","id":{seq},"room":"{room}","user":"{user}{n}","text":""#,
            n = conn % 100
        );
        let mut tail = [0u8; 40];
        let tail_len = {
            let mut t = &mut tail[..];
            let _ = write!(t, r#"","ts":{ts}}}"#);
            40 - t.len()
        };
        // Lengths skew short, as chat does: the smaller of two draws over the range.
        let span = (CHAT_MAX - CHAT_MIN + 1) as u64;
        let want = CHAT_MIN + (next() % span).min(next() % span) as usize;
        let room_for_text = want.saturating_sub(out.len() + tail_len);
        let start = out.len();
        loop {
            let word = WORDS[(next() % WORDS.len() as u64) as usize];
            let sep = usize::from(out.len() > start);
            if out.len() + sep + word.len() + 1 > start + room_for_text && out.len() > start {
                break;
            }
            if sep == 1 {
                out.push(b' ');
            }
            out.extend_from_slice(word.as_bytes());
            if next() % 8 == 0 {
                out.extend_from_slice(PUNCT[(next() % PUNCT.len() as u64) as usize].as_bytes());
            }
        }
        // Short targets can leave the message under the minimum: pad the text with words.
        while out.len() + tail_len < CHAT_MIN {
            out.extend_from_slice(b" ok");
        }
        out.extend_from_slice(&tail[..tail_len]);
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

    #[test]
    fn chat_json_is_valid_varied_bounded_and_repeatable() {
        let chat = ChatJson::new(1);
        let mut buf = Vec::new();
        let mut lens = std::collections::BTreeSet::new();
        let mut texts = std::collections::BTreeSet::new();
        for conn in 0..20u64 {
            for seq in 0..200u64 {
                chat.write(conn, seq, &mut buf);
                assert!(
                    (CHAT_MIN..=CHAT_MAX).contains(&buf.len()),
                    "length {} out of range",
                    buf.len()
                );
                let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
                assert_eq!(v["type"], "message");
                assert_eq!(v["id"], seq);
                assert!(v["ts"].as_u64().unwrap() >= 1_764_300_000_123);
                lens.insert(buf.len());
                texts.insert(v["text"].as_str().unwrap().to_owned());
                let mut again = Vec::new();
                chat.write(conn, seq, &mut again);
                assert_eq!(again, buf, "same inputs, same bytes");
            }
        }
        assert!(lens.len() > 100, "only {} distinct lengths", lens.len());
        assert!(texts.len() > 3000, "only {} distinct texts", texts.len());
        let mean = {
            let mut total = 0;
            for seq in 0..1000 {
                chat.write(0, seq, &mut buf);
                total += buf.len();
            }
            total / 1000
        };
        assert!((120..220).contains(&mean), "mean length {mean}");
    }

    #[test]
    fn chat_json_differs_by_seed_connection_and_sequence() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ChatJson::new(1).write(0, 5, &mut a);
        ChatJson::new(2).write(0, 5, &mut b);
        assert_ne!(a, b, "seed");
        ChatJson::new(1).write(1, 5, &mut b);
        assert_ne!(a, b, "connection");
        ChatJson::new(1).write(0, 6, &mut b);
        assert_ne!(a, b, "sequence");
    }
}
