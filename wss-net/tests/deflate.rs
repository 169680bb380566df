//! permessage-deflate through the loops: negotiation in the 101, compressed echo both ways,
//! the decompressed-size limit, and shared compressed frames on a context-takeover stream.

mod util;

use std::time::Duration;

use util::deflate::{is_compressed, DeflateClient};
use util::*;
use wss_net::{NetConfig, NetEvent, Outgoing};
use wss_proto::encode_message_deflated;
use wss_proto::{CloseCode, DeflateConfig, DeflateParams, Opcode};

fn deflate_config() -> NetConfig {
    NetConfig {
        deflate: DeflateConfig::default(),
        ..quick_config()
    }
}

fn opened_params(server: &Server) -> (wss_net::ConnId, Option<DeflateParams>) {
    match server.next_event() {
        NetEvent::Opened { conn, deflate, .. } => (conn, deflate),
        other => panic!("expected Opened, got {other:?}"),
    }
}

fn chat_text(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"user\":\"ann\",\"text\":\"message number {i}\"}} "))
        .collect()
}

#[test]
fn offer_is_answered_in_the_101_and_echo_is_compressed_both_ways() {
    let server = start(deflate_config(), true);
    let offer = DeflateConfig::default();
    let mut client = DeflateClient::connect(server.addr, "/ws", Some(&offer), &[]).unwrap();
    assert_eq!(client.extensions.as_deref(), Some("permessage-deflate"));
    let (_, params) = opened_params(&server);
    assert_eq!(params.as_ref(), client.params());
    assert!(params.is_some());

    let text = chat_text(40);
    client.send_text(&text);
    let frame = client.next_frame().expect("the echo");
    assert!(is_compressed(&frame), "a long echo goes out compressed");
    assert!(
        frame.len() < text.len() / 3,
        "{} bytes for {}",
        frame.len(),
        text.len()
    );
    assert_eq!(client.read_text(), text);
    // Context takeover: the same text again refers to the first and shrinks further.
    client.send_text(&text);
    let again = client.next_frame().expect("the second echo");
    assert!(is_compressed(&again) && again.len() < frame.len());
    assert_eq!(client.read_text(), text);

    client.send_binary(&[7u8; 5000]);
    let frame = client.next_frame().expect("the binary echo");
    assert!(is_compressed(&frame) && frame.len() < 100);
    assert!(matches!(
        client.next_event(),
        Some(wss_proto::Event::Message(wss_proto::Message::Binary(b))) if b == [7u8; 5000]
    ));

    client.send_text("short");
    let frame = client.next_frame().expect("the short echo");
    assert!(!is_compressed(&frame), "below the threshold: plain");
    assert_eq!(client.read_text(), "short");
}

#[test]
fn deflate_is_off_by_default_and_without_an_offer() {
    let server = start(quick_config(), true);
    let mut client =
        DeflateClient::connect(server.addr, "/ws", Some(&DeflateConfig::default()), &[]).unwrap();
    assert_eq!(client.extensions, None, "NetConfig::default() declines");
    assert_eq!(opened_params(&server).1, None);
    let text = chat_text(40);
    client.send_text(&text);
    assert!(!is_compressed(&client.next_frame().unwrap()));
    assert_eq!(client.read_text(), text);

    let server = start(deflate_config(), true);
    let client = DeflateClient::connect(server.addr, "/ws", None, &[]).unwrap();
    assert_eq!(client.extensions, None, "no offer, no answer");
    assert_eq!(opened_params(&server).1, None);
}

#[test]
fn agreed_parameters_are_reported() {
    let server = start(deflate_config(), true);
    let offer = DeflateConfig {
        server_no_context_takeover: true,
        server_max_window_bits: 10,
        ..DeflateConfig::default()
    };
    let mut client = DeflateClient::connect(server.addr, "/ws", Some(&offer), &[]).unwrap();
    assert_eq!(
        client.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
    );
    let params = opened_params(&server).1.expect("negotiated");
    assert!(params.server_no_context_takeover);
    assert_eq!(params.server_max_window_bits, 10);
    let text = chat_text(30);
    client.send_text(&text);
    assert!(is_compressed(&client.next_frame().unwrap()));
    assert_eq!(client.read_text(), text);
}

#[test]
fn compression_bomb_closes_with_1009_and_the_other_clients_carry_on() {
    let mut config = deflate_config();
    config.threads = 1;
    config.proto.max_message_size = 64 << 10;
    let server = start(config, true);
    let offer = DeflateConfig::default();
    let mut bystander = DeflateClient::connect(server.addr, "/ws", Some(&offer), &[]).unwrap();
    let (_, _) = opened_params(&server);
    let mut bomber = DeflateClient::connect(server.addr, "/ws", Some(&offer), &[]).unwrap();
    let (bomb_conn, _) = opened_params(&server);

    // 8 MiB of zeros is a few KiB compressed.
    bomber.send_binary(&vec![0u8; 8 << 20]);
    assert_eq!(bomber.read_close_code(), Some(1009));
    let (code, _, error) = server.expect_closed(bomb_conn);
    assert_eq!(code, CloseCode::TOO_BIG);
    assert!(
        matches!(error, Some(wss_net::ConnError::Protocol(_))),
        "{error:?}"
    );

    let text = chat_text(20);
    bystander.send_text(&text);
    assert_eq!(bystander.read_text(), text);
}

#[test]
fn shared_compressed_frames_keep_a_context_takeover_stream_decodable() {
    let server = start(deflate_config(), false);
    let mut client =
        DeflateClient::connect(server.addr, "/ws", Some(&DeflateConfig::default()), &[]).unwrap();
    let (conn, params) = opened_params(&server);
    let params = params.expect("negotiated");
    assert!(!params.server_no_context_takeover);

    let own = chat_text(30);
    let shared_text = chat_text(25).replace("ann", "bob");
    let mut shared = Vec::new();
    assert!(encode_message_deflated(
        &mut wss_proto::Scratch::new(),
        &mut shared,
        &params,
        Opcode::Text,
        shared_text.as_bytes()
    ));
    // Compressed by the connection, then a frame it did not compress, then the same text
    // again: without the history cut, its back-references would land in the wrong place.
    server.handle.send(conn, Outgoing::Text(own.clone()));
    server.handle.send(conn, Outgoing::Shared(shared.into()));
    server.handle.send(conn, Outgoing::Text(own.clone()));
    assert_eq!(client.read_text(), own);
    assert_eq!(client.read_text(), shared_text);
    assert_eq!(client.read_text(), own);
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn a_quiet_connection_hibernates_at_its_idle_ping_and_picks_up_exactly() {
    let mut config = deflate_config();
    // The idle ping (and with it the hibernation of the deflate state) after 300 ms of quiet.
    config.proto.idle_timeout = Some(Duration::from_millis(600));
    let server = start(config, true);
    let offer = DeflateConfig::default();
    let mut client = DeflateClient::connect(server.addr, "/ws", Some(&offer), &[]).unwrap();
    let text = chat_text(40);
    let mut sizes = Vec::new();
    for _ in 0..4 {
        client.send_text(&text);
        let frame = client.next_frame().expect("the echo");
        assert!(is_compressed(&frame));
        sizes.push(frame.len());
        assert_eq!(client.read_text(), text);
        // Quiet until the server's ping (answered by the client's connection).
        let ping = client.next_frame().expect("the idle ping");
        assert_eq!(ping[..2], [0x89, 0x00]);
    }
    // Each echo after a hibernation refers back into the window the compressor slept on.
    for later in &sizes[1..] {
        assert!(*later * 2 < sizes[0], "{sizes:?}");
    }
}
