//! Broadcast with permessage-deflate, still encoded once: one plain frame for the receivers
//! that run uncompressed, one compressed frame per group of receivers that agreed on the same
//! compression parameters.
//!
//! A compressed broadcast frame starts from an empty window
//! ([`encode_message_deflated`]), so it depends on no connection's history and any receiver
//! whose agreed server window is at least the one it was compressed with can inflate it. The
//! groups are keyed on what changes the bytes (window bits, level) and on the threshold, so
//! in practice (every browser offers the same thing) a broadcast costs one compression.
//!
//! A receiver with context takeover gets the shared frame too; its protocol state then cuts
//! its compressor's history (`Connection::send` of an `Outgoing::Shared`), which costs that connection some ratio
//! on its next own message. That is the price of compressing once instead of once per
//! receiver.

use std::cell::RefCell;
use std::sync::Arc;

use wss_proto::encode_message_deflated;
use wss_proto::{DeflateParams, Scratch};

use crate::frame::Frame;

thread_local! {
    /// The compressors of the threads that broadcast (a server's worker, or any thread that
    /// calls `broadcast`): a broadcast compressed without context takeover borrows one per
    /// setting instead of making and initialising about 300 KiB of zlib state each time.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// What makes two receivers' compressed frames identical.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    window_bits: u8,
    level: u32,
    threshold: usize,
}

impl Key {
    fn of(params: &DeflateParams) -> Key {
        Key {
            window_bits: params.server_max_window_bits,
            level: params.level,
            threshold: params.threshold,
        }
    }
}

/// The frames of one broadcast, made on demand per receiver.
pub(crate) struct Fanout<'a> {
    frame: &'a Frame,
    plain: Arc<[u8]>,
    /// Few (usually one): a linear scan beats hashing.
    groups: Vec<(Key, Arc<[u8]>)>,
    /// Compressions made, for the tests.
    compressions: usize,
}

impl<'a> Fanout<'a> {
    pub(crate) fn new(frame: &'a Frame) -> Self {
        Fanout {
            frame,
            plain: frame.shared(),
            groups: Vec::new(),
            compressions: 0,
        }
    }

    /// The bytes for a receiver that agreed on `deflate` (`None`: uncompressed).
    pub(crate) fn bytes_for(&mut self, deflate: Option<&DeflateParams>) -> Arc<[u8]> {
        let Some(params) = deflate else {
            return self.plain.clone();
        };
        let key = Key::of(params);
        if let Some((_, bytes)) = self.groups.iter().find(|(k, _)| *k == key) {
            return bytes.clone();
        }
        let bytes = self.compress(params);
        self.groups.push((key, bytes.clone()));
        bytes
    }

    /// The frame compressed for `params`, or the plain one when it stays plain (below the
    /// threshold, a window too small to compress with, a compressor failure).
    fn compress(&mut self, params: &DeflateParams) -> Arc<[u8]> {
        let Some((opcode, payload)) = self.frame.message() else {
            return self.plain.clone();
        };
        if payload.len() < params.threshold.max(1) {
            return self.plain.clone();
        }
        let mut out = Vec::with_capacity(payload.len() / 2 + 16);
        self.compressions += 1;
        let compressed = SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                encode_message_deflated(&mut scratch, &mut out, params, opcode, payload)
            }
            // Only if a broadcast ran inside another on this thread (it does not today): a
            // scratch of its own then.
            Err(_) => {
                encode_message_deflated(&mut Scratch::new(), &mut out, params, opcode, payload)
            }
        });
        if compressed {
            out.into()
        } else {
            self.plain.clone()
        }
    }

    #[cfg(test)]
    fn compressions(&self) -> usize {
        self.compressions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Data;

    fn params(bits: u8, no_context_takeover: bool) -> DeflateParams {
        DeflateParams {
            server_max_window_bits: bits,
            server_no_context_takeover: no_context_takeover,
            ..DeflateParams::default()
        }
    }

    fn long_text() -> Frame {
        Frame::encode(&Data::Text("{\"text\":\"hello there\"} ".repeat(40)))
    }

    #[test]
    fn one_compression_per_group_and_one_buffer_per_group() {
        let frame = long_text();
        let mut fanout = Fanout::new(&frame);
        let (a, b) = (params(15, false), params(15, true));
        let small = params(10, true);
        let plain1 = fanout.bytes_for(None);
        let a1 = fanout.bytes_for(Some(&a));
        let b1 = fanout.bytes_for(Some(&b));
        let s1 = fanout.bytes_for(Some(&small));
        let a2 = fanout.bytes_for(Some(&a));
        let s2 = fanout.bytes_for(Some(&small));
        let plain2 = fanout.bytes_for(None);
        assert_eq!(fanout.compressions(), 2, "window 15 and window 10");
        assert!(Arc::ptr_eq(&plain1, &plain2));
        assert!(
            Arc::ptr_eq(&plain1, &frame.shared()),
            "plain is the frame itself"
        );
        // Context takeover or not, the same window shares one buffer.
        assert!(Arc::ptr_eq(&a1, &b1) && Arc::ptr_eq(&a1, &a2));
        assert!(Arc::ptr_eq(&s1, &s2) && !Arc::ptr_eq(&a1, &s1));
        assert_eq!(a1[0] & 0x40, 0x40, "RSV1 set");
        assert!(a1.len() < frame.len() / 3);
        assert_eq!(plain1[0] & 0x40, 0);
    }

    #[test]
    fn below_the_threshold_everyone_gets_the_plain_frame_uncompressed() {
        let frame = Frame::encode(&Data::Text("hi".into()));
        let mut fanout = Fanout::new(&frame);
        let got = fanout.bytes_for(Some(&params(15, false)));
        assert!(Arc::ptr_eq(&got, &frame.shared()));
        assert_eq!(fanout.compressions(), 0);
    }

    #[test]
    fn a_window_too_small_to_compress_with_falls_back_to_plain() {
        let frame = long_text();
        let mut fanout = Fanout::new(&frame);
        let got = fanout.bytes_for(Some(&params(8, true)));
        assert_eq!(&*got, frame.as_bytes());
    }
}
