//! What each fuzz target does with one input, shared with the stable corpus replay test
//! (`wss-proto/tests/fuzz_corpus_replay.rs` includes this file by path), so that libFuzzer and
//! `cargo test` judge an input by the same rules.
//!
//! A driver returns normally for any input the protocol core handles correctly, whatever its
//! verdict on the bytes; it panics only when an invariant breaks. Besides "no panic, no
//! unbounded allocation", the invariants are differential: a byte stream must give the same
//! result however it is split across reads, and what the server writes must be valid for a
//! client to read.
//!
//! Inputs that need split points start with one control byte (see [`Splits`]); the rest is the
//! byte stream.

use std::time::Instant;

use wss_proto::handshake::{
    accept_key, is_upgrade_request, validate_upgrade, ClientHandshake, ClientHandshakeError,
    HeadError, HeadLimits, Request, RequestParser, Response,
};
use wss_proto::internal::{apply_mask, apply_mask_offset};
use wss_proto::{
    CloseCode, Config, Connection, Event, FrameHeader, Message, Opcode, Role, Scratch, State,
};

/// The nonce of RFC 6455 §1.3 ("the sample nonce"); its accept key is the RFC's
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`, so the RFC's example response completes the handshake.
pub const RFC_NONCE: [u8; 16] = *b"the sample nonce";

/// How one control byte cuts a stream into reads.
///
/// Bits 0-2 pick the largest read: 1, 2, 3, 7, 16, 64, 512 bytes, or everything at once.
/// Bits 3-6 seed the sizes between 1 and that bound. Bit 7 is left to the driver (smaller
/// limits), so every target can reach its limit paths with short inputs.
#[derive(Clone, Copy, Debug)]
pub struct Splits {
    max: usize,
    seed: u64,
}

impl Splits {
    /// Reads the control byte.
    pub fn new(control: u8) -> Splits {
        const MAX: [usize; 8] = [1, 2, 3, 7, 16, 64, 512, usize::MAX];
        Splits {
            max: MAX[usize::from(control & 7)],
            seed: u64::from((control >> 3) & 0x0f) + 1,
        }
    }

    /// Cuts `data` into non-empty chunks, in order, covering all of it.
    pub fn cut<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut state = self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut chunks = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            // xorshift64: a deterministic spread of sizes, different per seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let size = if self.max == usize::MAX {
                rest.len()
            } else {
                1 + (state % self.max as u64) as usize
            };
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }
}

/// Splits off the control byte; `None` for an empty input.
fn control_and_stream(data: &[u8]) -> Option<(u8, Splits, &[u8])> {
    let (&control, stream) = data.split_first()?;
    Some((control, Splits::new(control), stream))
}

// ------------------------------------------------------------------------------------------
// request_head: the server's HTTP/1.1 request parser and the upgrade checks after it.

/// What a parser made of a stream: every head it completed or the error it stopped on.
#[derive(Debug, PartialEq)]
enum HeadOutcome {
    Head(Request),
    Failed(HeadError),
}

fn parse_heads(parser: &mut RequestParser, chunks: &[&[u8]]) -> Vec<HeadOutcome> {
    let mut outcomes = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        // A chunk may end one head and start the next (pipelining): feed its tail again.
        loop {
            match parser.feed(rest) {
                Ok(None) => break,
                Ok(Some((request, used))) => {
                    assert!(
                        used > 0 && used <= rest.len(),
                        "used {used} of {}",
                        rest.len()
                    );
                    outcomes.push(HeadOutcome::Head(request));
                    rest = &rest[used..];
                    if rest.is_empty() {
                        break;
                    }
                }
                Err(err) => {
                    // Sticky: the same error again, whatever comes next.
                    assert_eq!(parser.feed(b"GET / HTTP/1.1\r\n\r\n"), Err(err));
                    outcomes.push(HeadOutcome::Failed(err));
                    return outcomes;
                }
            }
        }
    }
    outcomes
}

/// Checks the head of an encoded response: it ends at its first empty line, has no bare CR
/// or LF (no header injection from anything the request carried), and Content-Length, when
/// written, counts exactly the body.
fn assert_well_formed_response(bytes: &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head ends with an empty line");
    let head = &bytes[..end + 2];
    let body = &bytes[end + 4..];
    let text = std::str::from_utf8(head).expect("response head is UTF-8");
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    assert!(status.starts_with("HTTP/1.1 "), "status line {status:?}");
    for line in lines.filter(|l| !l.is_empty()) {
        assert!(!line.contains(['\r', '\n']), "bare CR/LF in {line:?}");
        let (name, value) = line.split_once(':').expect("header line has a colon");
        assert!(
            !name.is_empty() && !name.contains(' '),
            "header name {name:?}"
        );
        if name.eq_ignore_ascii_case("content-length") {
            assert_eq!(
                value.trim().parse::<usize>().ok(),
                Some(body.len()),
                "{line:?}"
            );
        }
    }
}

fn check_request(request: &Request) {
    // Every accessor must cope with whatever the parser accepted.
    let _ = (
        request.method(),
        request.url(),
        request.path(),
        request.version(),
    );
    assert!(request.version() <= 1, "version {}", request.version());
    for (key, value) in request.query().iter() {
        let _ = (key.len(), value.len());
    }
    for (name, value) in request.headers().iter() {
        assert!(!name.is_empty(), "empty header name accepted");
        assert!(!value.contains(['\r', '\n']), "CR/LF inside a header value");
    }
    let _ = request.headers().contains_token("connection", "upgrade");
    let _ = is_upgrade_request(request);

    let mut out = Vec::new();
    match validate_upgrade(request) {
        Ok(upgrade) => {
            Response::switching_protocols(&upgrade, &[]).encode(&mut out);
            assert_well_formed_response(&out);
            let accept = format!("Sec-WebSocket-Accept: {}\r\n", accept_key(&upgrade.key));
            assert!(
                out.windows(accept.len()).any(|w| w == accept.as_bytes()),
                "101 without the accept key of {:?}",
                upgrade.key
            );
        }
        Err(refusal) => {
            let response = refusal.response();
            assert!((400..500).contains(&response.status), "{refusal:?}");
            response.encode(&mut out);
            assert_well_formed_response(&out);
        }
    }
}

/// Target `request_head`: control byte, then bytes as a client would send them before the
/// upgrade (one or more pipelined heads, maybe followed by frames).
pub fn request_head(data: &[u8]) {
    let Some((control, splits, stream)) = control_and_stream(data) else {
        return;
    };
    let limits = if control & 0x80 != 0 {
        HeadLimits {
            max_head_bytes: 256,
            max_headers: 4,
        }
    } else {
        HeadLimits::default()
    };
    let whole = parse_heads(&mut RequestParser::new(limits), &[stream]);
    let split = parse_heads(&mut RequestParser::new(limits), &splits.cut(stream));
    assert_eq!(whole, split, "the split points changed the parse");
    for outcome in &whole {
        match outcome {
            HeadOutcome::Head(request) => check_request(request),
            HeadOutcome::Failed(err) => {
                let mut out = Vec::new();
                err.response().encode(&mut out);
                assert_well_formed_response(&out);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// frame_header: header parse/encode, whole frames and masking.

/// Target `frame_header`: the raw bytes are parsed as a frame header; then the same bytes are
/// used as the fields and payload of a frame that is encoded, parsed back and unmasked.
pub fn frame_header(data: &[u8]) {
    match FrameHeader::parse(data) {
        Ok(Some((header, len))) => {
            assert!(
                len <= data.len() && len <= FrameHeader::MAX_SIZE,
                "header length {len}"
            );
            assert!(
                header.payload_len >> 63 == 0,
                "length with the top bit accepted"
            );
            assert!(header.rsv <= 7);
            if header.opcode.is_control() {
                assert!(
                    header.fin && header.payload_len <= 125,
                    "bad control frame accepted"
                );
            }
            for short in 0..len {
                assert_eq!(
                    FrameHeader::parse(&data[..short]),
                    Ok(None),
                    "prefix of {short}"
                );
            }
            // Encoding (shortest length form) and parsing again gives the same header.
            let mut again = Vec::new();
            header.encode(&mut again);
            assert_eq!(again.len(), header.encoded_len());
            assert_eq!(FrameHeader::parse(&again), Ok(Some((header, again.len()))));
        }
        Ok(None) => assert!(
            data.len() < FrameHeader::MAX_SIZE,
            "{} bytes not enough",
            data.len()
        ),
        Err(err) => {
            let code = err.close_code();
            assert!(
                code == CloseCode::PROTOCOL_ERROR,
                "header error {err:?} closes with {code}"
            );
        }
    }

    // A frame built from the input: first byte picks FIN, opcode and masking, the next four the
    // mask key, the rest is the payload.
    let Some((&b0, rest)) = data.split_first() else {
        return;
    };
    let opcodes = [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
    ];
    let opcode = if b0 & 0x40 != 0 {
        [Opcode::Ping, Opcode::Pong][usize::from(b0 & 1)]
    } else {
        opcodes[usize::from(b0 & 3)]
    };
    let fin = b0 & 0x80 != 0 || opcode.is_control();
    let (key, payload) = if rest.len() >= 4 {
        let (key, payload) = rest.split_at(4);
        (Some([key[0], key[1], key[2], key[3]]), payload)
    } else {
        (None, rest)
    };
    let payload = if opcode.is_control() && payload.len() > 125 {
        &payload[..125]
    } else {
        payload
    };
    let mask = if b0 & 0x20 != 0 { key } else { None };
    let mut wire = Vec::new();
    wss_proto::encode_frame(&mut wire, fin, opcode, payload, mask);
    let (header, len) = FrameHeader::parse(&wire)
        .expect("an encoded frame parses")
        .expect("an encoded frame is complete");
    assert_eq!(
        (header.fin, header.opcode, header.mask),
        (fin, opcode, mask)
    );
    assert_eq!(header.payload_len, payload.len() as u64);
    let mut body = wire[len..].to_vec();
    assert_eq!(body.len(), payload.len());
    if let Some(key) = mask {
        // Unmasking in two pieces at any offset equals unmasking at once.
        let cut = usize::from(b0 >> 3) % (body.len() + 1);
        let mut pieces = body.clone();
        let (first, second) = pieces.split_at_mut(cut);
        apply_mask_offset(first, key, 0);
        apply_mask_offset(second, key, cut);
        apply_mask(&mut body, key);
        assert_eq!(pieces, body, "apply_mask_offset split at {cut}");
    }
    assert_eq!(body, payload, "mask then unmask is not the identity");
}

// ------------------------------------------------------------------------------------------
// server_connection: the whole message layer, fed like a socket would feed it.

/// Everything one run of a connection produced.
#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<Event>,
    echoed: Vec<Message>,
    wire: Vec<u8>,
    state: State,
}

/// Feeds `chunks` to a connection, collecting its events and everything it writes. With
/// `echo`, every message is sent back as soon as it is polled, as the echo handler does; what
/// gets echoed then depends on where the reads end (a close in the same read as a message
/// stops the echo), so only runs without echo are compared across split points.
fn drive(mut conn: Connection, now: Instant, chunks: &[&[u8]], echo: bool) -> Run {
    let mut run = Run {
        events: Vec::new(),
        echoed: Vec::new(),
        wire: Vec::new(),
        state: State::Open,
    };
    let mut scratch = Scratch::new();
    for chunk in chunks {
        conn.receive(&mut scratch, now, chunk);
        while let Some(event) = conn.poll_event(&mut scratch) {
            if let Event::Message(message) = &event {
                if echo && conn.can_send() {
                    let sent = match message {
                        Message::Text(text) => conn.send_text(text),
                        Message::Binary(data) => conn.send_binary(data),
                    };
                    assert!(sent.is_ok(), "can_send() but sending failed: {sent:?}");
                    run.echoed.push(message.clone());
                }
            }
            run.events.push(event);
        }
        conn.poll_transmit(&mut run.wire);
    }
    run.state = conn.state();
    run
}

fn small_config(control: u8) -> Config {
    if control & 0x80 != 0 {
        // Limits a short input can reach: the 1009 paths.
        Config {
            max_frame_size: 100,
            max_message_size: 300,
            ..Config::default()
        }
    } else {
        Config {
            max_frame_size: 1 << 20,
            max_message_size: 1 << 20,
            ..Config::default()
        }
    }
}

/// Checks the order rules of one side's events.
fn check_events(events: &[Event], state: State, config: &Config) {
    let mut finished = false;
    for event in events {
        assert!(!finished, "event {event:?} after the close or failure");
        match event {
            Event::Message(message) => {
                assert!(
                    message.len() <= config.max_message_size,
                    "message over the limit"
                );
            }
            Event::Ping(payload) | Event::Pong(payload) => assert!(payload.len() <= 125),
            Event::CloseReceived { code, reason } => {
                if let Some(code) = code {
                    assert!(code.is_valid_on_wire(), "reported close code {code}");
                }
                assert!(
                    reason.len() <= 123,
                    "close reason of {} bytes",
                    reason.len()
                );
                finished = true;
            }
            Event::Failed(_) | Event::TimedOut(_) => finished = true,
        }
    }
    if finished {
        assert_eq!(state, State::Closed, "closed or failed but state {state:?}");
    }
}

/// Target `server_connection`: control byte, then what a client sends after the handshake.
pub fn server_connection(data: &[u8]) {
    let Some((control, splits, stream)) = control_and_stream(data) else {
        return;
    };
    let config = small_config(control);
    let now = Instant::now();
    let chunks = splits.cut(stream);
    let server = || Connection::new(Role::Server, config.clone(), now);
    let whole = drive(server(), now, &[stream], false);
    let split = drive(server(), now, &chunks, false);
    assert_eq!(whole, split, "the split points changed what the server did");
    check_events(&whole.events, whole.state, &config);
    let echo = drive(server(), now, &chunks, true);
    assert_eq!(
        echo.events, whole.events,
        "echoing changed what the server read"
    );

    // What the server wrote must be valid for a client, and say what the server saw.
    let client_config = Config {
        max_frame_size: 4 << 20,
        max_message_size: 4 << 20,
        ..Config::default()
    };
    let mut client = Connection::new(Role::Client, client_config, now);
    let mut scratch = Scratch::new();
    client.receive(&mut scratch, now, &echo.wire);
    let mut got = Vec::new();
    let mut pongs = Vec::new();
    let mut close = None;
    while let Some(event) = client.poll_event(&mut scratch) {
        match event {
            Event::Message(message) => got.push(message),
            Event::Pong(payload) => pongs.push(payload),
            Event::CloseReceived { code, .. } => close = Some(code),
            other => panic!("the server wrote something a client rejects: {other:?}"),
        }
    }
    assert_eq!(got, echo.echoed, "the echoes differ from the messages");
    let pings: Vec<_> = whole
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Ping(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(pongs, pings, "one pong per ping, same payload");
    match whole.events.last() {
        Some(Event::Failed(err)) => assert_eq!(close, Some(Some(err.close_code())), "{err:?}"),
        Some(Event::CloseReceived { code, .. }) => assert_eq!(close, Some(*code), "close echo"),
        _ => assert_eq!(close, None, "a close frame nobody asked for"),
    }
}

// ------------------------------------------------------------------------------------------
// client_handshake: the client reading the server's 101 (and the frames after it).

#[derive(Debug, PartialEq)]
enum ClientOutcome {
    Pending,
    Refused(ClientHandshakeError),
    Upgraded { frames: Vec<u8> },
}

fn client_read(chunks: &[&[u8]]) -> ClientOutcome {
    let mut handshake = ClientHandshake::new("server.example.com", "/chat", RFC_NONCE, &[]);
    let mut frames: Option<Vec<u8>> = None;
    for chunk in chunks {
        if let Some(frames) = frames.as_mut() {
            frames.extend_from_slice(chunk);
            assert_eq!(
                handshake.feed_response(chunk),
                Ok(Some(0)),
                "done stays done"
            );
            continue;
        }
        match handshake.feed_response(chunk) {
            Ok(None) => assert!(!handshake.is_done()),
            Ok(Some(used)) => {
                assert!(used <= chunk.len(), "used {used} of {}", chunk.len());
                assert!(handshake.is_done());
                frames = Some(chunk[used..].to_vec());
            }
            Err(err) => {
                assert_eq!(
                    handshake.feed_response(b"\r\n\r\n"),
                    Err(err.clone()),
                    "sticky"
                );
                return ClientOutcome::Refused(err);
            }
        }
    }
    match frames {
        Some(frames) => ClientOutcome::Upgraded { frames },
        None => ClientOutcome::Pending,
    }
}

/// Target `client_handshake`: control byte, then what a server answers to the upgrade
/// request of [`RFC_NONCE`] (a 101 and maybe frames after it).
pub fn client_handshake(data: &[u8]) {
    let Some((control, splits, stream)) = control_and_stream(data) else {
        return;
    };
    let whole = client_read(&[stream]);
    let split = client_read(&splits.cut(stream));
    assert_eq!(whole, split, "the split points changed the handshake");
    let ClientOutcome::Upgraded { frames } = whole else {
        return;
    };
    // The frames after the 101 go to a client connection: it must hold up to anything.
    let now = Instant::now();
    let config = small_config(control);
    let client = || Connection::new(Role::Client, config.clone(), now);
    let one = drive(client(), now, &[&frames], false);
    let many = drive(client(), now, &splits.cut(&frames), false);
    assert_eq!(one, many, "the split points changed what the client did");
    check_events(&one.events, one.state, &config);
    let echo = drive(client(), now, &splits.cut(&frames), true);
    assert_eq!(
        echo.events, one.events,
        "echoing changed what the client read"
    );
}
