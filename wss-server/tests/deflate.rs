//! permessage-deflate through the web server: negotiation, compressed echo, the
//! decompressed-size limit, and broadcasts compressed once per group of alike receivers.

mod support;

use std::time::Duration;

use support::deflate::{is_compressed, DeflateClient};
use support::*;
use wss_server::*;

fn chat_text(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"user\":\"ann\",\"text\":\"message number {i}\"}} "))
        .collect()
}

fn deflate_web(log: &Log, max_message_size: usize) -> (WebServer, WebSocketServer) {
    let web = web_with(
        WebServerOptions {
            max_message_size,
            ..WebServerOptions::default()
        }
        .with_deflate(DeflateConfig::default()),
    );
    let wss = WebSocketServer::new(&web, Rec::new(log), ServerOptions::default()).unwrap();
    (web, wss)
}

fn offer() -> DeflateConfig {
    DeflateConfig::default()
}

#[test]
fn deflate_is_off_unless_the_option_turns_it_on() {
    let log = Log::default();
    let web = web();
    let _wss = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let mut client = DeflateClient::connect(web.local_addr(), "/", Some(&offer()), &[]).unwrap();
    assert_eq!(client.extensions, None);
    let text = chat_text(20);
    client.send_text(&text);
    assert!(!is_compressed(&client.next_frame().unwrap()));
    assert_eq!(client.read_text(), text);
}

#[test]
fn negotiated_in_the_101_and_the_echo_is_compressed_both_ways() {
    let log = Log::default();
    let (web, _wss) = deflate_web(&log, 1 << 20);
    let mut client = DeflateClient::connect(web.local_addr(), "/", Some(&offer()), &[]).unwrap();
    assert_eq!(client.extensions.as_deref(), Some("permessage-deflate"));
    assert!(client.params().is_some());

    let text = chat_text(40);
    client.send_text(&text);
    // The handler saw the inflated text.
    assert!(log.wait_for("message:").is_some());
    assert!(log.lines().iter().any(|l| l.ends_with(&text)));
    let frame = client.next_frame().expect("the echo");
    assert!(is_compressed(&frame));
    assert!(
        frame.len() < text.len() / 3,
        "{} of {}",
        frame.len(),
        text.len()
    );
    assert_eq!(client.read_text(), text);

    client.send_text("tiny");
    assert!(
        !is_compressed(&client.next_frame().unwrap()),
        "below the threshold"
    );
    assert_eq!(client.read_text(), "tiny");
}

#[test]
fn a_compression_bomb_closes_with_1009_and_the_other_clients_are_unaffected() {
    let log = Log::default();
    let (web, _wss) = deflate_web(&log, 64 << 10);
    let addr = web.local_addr();
    let mut plain = connect(addr, "/");
    let mut other = DeflateClient::connect(addr, "/", Some(&offer()), &[]).unwrap();
    let mut bomber = DeflateClient::connect(addr, "/", Some(&offer()), &[]).unwrap();
    assert!(log.wait_count("open:", 3));

    // 8 MiB of zeros: a few KiB on the wire, 128 times the limit once inflated.
    bomber.send_binary(&vec![0u8; 8 << 20]);
    assert_eq!(bomber.read_close_code(), Some(1009));
    assert!(log
        .wait_for("terminate:")
        .is_some_and(|l| l.contains(":1009:")));

    plain
        .send(tungstenite::Message::text("plain still"))
        .unwrap();
    assert_eq!(read_text(&mut plain), "plain still");
    let text = chat_text(20);
    other.send_text(&text);
    assert_eq!(other.read_text(), text);
    assert_eq!(log.count("terminate:"), 1);
}

#[test]
fn broadcast_reaches_plain_and_deflate_receivers_compressed_once_per_group() {
    let log = Log::default();
    let (web, wss) = deflate_web(&log, 1 << 20);
    let addr = web.local_addr();
    let mut plain = connect(addr, "/");
    // Two groups: the default window (with and without context takeover: same bytes), and a
    // client that asked for a 2^10 window.
    let mut a = DeflateClient::connect(addr, "/", Some(&offer()), &[]).unwrap();
    let nct = DeflateConfig {
        server_no_context_takeover: true,
        ..offer()
    };
    let mut b = DeflateClient::connect(addr, "/", Some(&nct), &[]).unwrap();
    let small = DeflateConfig {
        server_max_window_bits: 10,
        ..offer()
    };
    let mut c = DeflateClient::connect(addr, "/", Some(&small), &[]).unwrap();
    assert_eq!(c.params().map(|p| p.server_max_window_bits), Some(10));
    assert!(log.wait_count("open:", 4));

    // Repeats at a distance of 1500 bytes: only a 2^15 window can refer back that far.
    let mut seed = 7u32;
    let block: String = (0..1500)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + (seed >> 16) as u8 % 26)
        })
        .collect();
    let text = format!("{}{block}{block}", chat_text(20));
    for round in 0..2 {
        assert_eq!(wss.broadcast(text.as_str(), None), 4);
        let (fa, fb, fc) = (
            a.next_frame().unwrap(),
            b.next_frame().unwrap(),
            c.next_frame().unwrap(),
        );
        for (name, f) in [("a", &fa), ("b", &fb), ("c", &fc)] {
            assert!(is_compressed(f), "{name} got a compressed frame");
        }
        assert!(
            fa.len() + 1000 < text.len(),
            "{} of {}",
            fa.len(),
            text.len()
        );
        assert!(
            fc.len() > fa.len() + 500,
            "the small window cannot reach back"
        );
        // One compression for a and b: the very same bytes, and the same again next round
        // (a's own compressor, with context takeover, would have referred to round one).
        assert_eq!(fa, fb, "round {round}");
        assert_ne!(fa, fc, "another window, another compression");
        for client in [&mut a, &mut b, &mut c] {
            assert_eq!(client.read_text(), text);
        }
        assert_eq!(read_text(&mut plain), text);
    }

    // Below the threshold everyone gets the plain frame.
    assert_eq!(wss.broadcast("hi all", None), 4);
    for client in [&mut a, &mut b, &mut c] {
        assert!(!is_compressed(&client.next_frame().unwrap()));
        assert_eq!(client.read_text(), "hi all");
    }
    assert_eq!(read_text(&mut plain), "hi all");

    // A receiver with context takeover still decodes its own compressed messages after
    // shared ones (its compressor history was cut when the shared frames went out).
    let own = chat_text(40);
    a.send_text(&own);
    assert_eq!(a.read_text(), own);
    std::thread::sleep(Duration::from_millis(10));
}
