//! The decoder on its own: what it holds while a frame is partial, and what it hands back.

use super::*;
use crate::frame::encode_frame;

const SERVER: Limits = Limits {
    role: Role::Server,
    allowed_rsv: 0,
    max_frame: 16 << 20,
    max_message: 16 << 20,
    recycle: false,
};

#[test]
fn slow_huge_frame_holds_only_what_arrived() {
    let mut d = Decoder::default();
    let mut scratch = Scratch::default();
    let mut bytes = Vec::new();
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: Opcode::Binary,
        mask: Some([1, 2, 3, 4]),
        payload_len: (16 << 20) - 1,
    }
    .encode(&mut bytes);
    bytes.extend_from_slice(&[0u8; 100]);
    let (used, item) = d.step(&mut scratch, &bytes, SERVER, None);
    assert_eq!(used, bytes.len());
    assert!(item.is_none());
    let Some(Assembling::Plain(buf)) = d.partial.as_mut().and_then(|p| p.message.take()) else {
        panic!("a plain message is assembling")
    };
    let Ok(Message::Binary(held)) = buf.into_message() else {
        panic!("binary")
    };
    assert!(
        held.capacity() < 4096,
        "holds {} bytes for 100 received",
        held.capacity()
    );
}

#[test]
fn the_partial_state_exists_only_while_something_is_partial_and_is_reused() {
    let mut d = Decoder::default();
    let mut scratch = Scratch::default();
    let mut bytes = Vec::new();
    encode_frame(
        &mut bytes,
        true,
        Opcode::Binary,
        b"abcdef",
        Some([1, 2, 3, 4]),
    );
    // A header split across reads: its first byte is kept.
    let (used, item) = d.step(&mut scratch, &bytes[..1], SERVER, None);
    assert_eq!((used, item.is_none()), (1, true));
    let lent: *const Partial = d.partial.as_deref().map_or(std::ptr::null(), |p| p);
    assert!(!lent.is_null(), "a header byte is kept");
    let (used, item) = d.step(&mut scratch, &bytes[1..], SERVER, None);
    assert_eq!(used, bytes.len() - 1);
    assert!(matches!(item, Some(Item::Whole { len: 6, .. })));
    assert!(d.partial.is_none(), "given back once the header is read");
    // A payload split across reads borrows the same box, cleared.
    let (used, item) = d.step(&mut scratch, &bytes[..8], SERVER, None);
    assert_eq!((used, item.is_none()), (8, true));
    let again: *const Partial = d.partial.as_deref().map_or(std::ptr::null(), |p| p);
    assert_eq!(lent, again, "the scratch's box came back");
    let (_, item) = d.step(&mut scratch, &bytes[8..], SERVER, None);
    assert!(matches!(item, Some(Item::Message(Message::Binary(ref b))) if b == b"abcdef"));
    assert!(d.partial.is_none(), "given back once the message is out");
}

#[test]
fn a_split_control_frame_keeps_its_payload_until_taken() {
    let mut d = Decoder::default();
    let mut scratch = Scratch::default();
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, true, Opcode::Ping, b"hello", Some([9, 8, 7, 6]));
    let _ = d.step(&mut scratch, &bytes[..7], SERVER, None);
    let (_, item) = d.step(&mut scratch, &bytes[7..], SERVER, None);
    assert!(matches!(item, Some(Item::ControlBuffered(Opcode::Ping))));
    assert!(d.partial.is_some(), "the payload waits to be taken");
    let (payload, len) = d.take_control(&mut scratch);
    assert_eq!(&payload[..len], b"hello");
    assert!(d.partial.is_none());
}

#[test]
fn step_stops_after_each_complete_item() {
    let mut d = Decoder::default();
    let mut scratch = Scratch::default();
    let client = Limits {
        role: Role::Client,
        ..SERVER
    };
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, true, Opcode::Text, b"ab", None);
    encode_frame(&mut bytes, true, Opcode::Ping, b"c", None);
    let (used, item) = d.step(&mut scratch, &bytes, client, None);
    assert_eq!(used, 4);
    assert!(matches!(
        item,
        Some(Item::Whole {
            kind: Kind::Text,
            at: 2,
            len: 2,
            mask: None
        })
    ));
    let (used, item) = d.step(&mut scratch, &bytes[4..], client, None);
    assert_eq!(used, 3);
    assert!(matches!(
        item,
        Some(Item::Control {
            opcode: Opcode::Ping,
            at: 2,
            len: 1,
            mask: None
        })
    ));
}

#[test]
fn whole_masked_text_frame_is_one_exact_allocation() {
    let mut d = Decoder::default();
    let mut scratch = Scratch::default();
    let text = "héllo ✓".repeat(100);
    let mut bytes = Vec::new();
    encode_frame(
        &mut bytes,
        true,
        Opcode::Text,
        text.as_bytes(),
        Some([5, 6, 7, 8]),
    );
    let (used, item) = d.step(&mut scratch, &bytes, SERVER, None);
    assert_eq!(used, bytes.len());
    let Some(Item::Whole {
        kind,
        at,
        len,
        mask,
    }) = item
    else {
        panic!("a whole message in the input")
    };
    let owned = crate::text::whole_message(&mut scratch.buffers, kind, &bytes[at..at + len], mask);
    let Ok(Message::Text(got)) = owned else {
        panic!("a text message")
    };
    assert_eq!(got, text);
    assert_eq!(got.capacity(), text.len());
}
