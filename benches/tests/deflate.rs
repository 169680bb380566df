//! The message-level client (permessage-deflate and chat-json payloads) against real servers
//! on loopback: an in-process server built on wss-proto's server side (so deflate is really
//! negotiated and inflated by independent code), and tokio-tungstenite for chat-json without
//! deflate. Unhappy paths: a server that declines deflate, one that alters an echo.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wss_benches::deflate::{run_echo, MessageArgs, PayloadKind};
use wss_benches::peers::{self, Mode};
use wss_benches::{echo, idle, BenchError, Target};
use wss_proto::handshake::deflate::{negotiate, DeflateConfig};
use wss_proto::handshake::{validate_upgrade, HeadLimits, RequestParser, Response};
use wss_proto::{Config, Connection, Event, Message, Role, Scratch};

/// What the test server does.
#[derive(Clone)]
struct ServerSpec {
    /// Accept permessage-deflate with this config; `None`: decline every offer.
    deflate: Option<DeflateConfig>,
    /// Flip a byte of this (0-based) echo of every connection.
    corrupt: Option<usize>,
}

#[derive(Default)]
struct Seen {
    /// Connections on which deflate was negotiated.
    negotiated: AtomicUsize,
    /// Frames received with RSV1 set (compressed by the client).
    compressed_frames: AtomicUsize,
}

fn spawn_server(spec: ServerSpec) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (spec, seen) = (spec.clone(), Arc::clone(&seen2));
            std::thread::spawn(move || serve(stream, &spec, &seen));
        }
    });
    (addr, seen)
}

/// One connection: upgrade (negotiating deflate as `spec` says), then echo until close.
fn serve(mut stream: TcpStream, spec: &ServerSpec, seen: &Seen) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut parser = RequestParser::new(HeadLimits::default());
    let mut buf = vec![0u8; 64 * 1024];
    let (request, used, n) = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "client left during the upgrade");
        if let Some((request, used)) = parser.feed(&buf[..n]).unwrap() {
            break (request, used, n);
        }
    };
    assert_eq!(used, n, "the client sent frames before the 101");
    let upgrade = validate_upgrade(&request).unwrap();
    let accepted = spec
        .deflate
        .as_ref()
        .and_then(|cfg| negotiate(&upgrade.extensions, cfg));
    let headers: Vec<_> = accepted.iter().map(|a| a.header()).collect();
    stream
        .write_all(&Response::switching_protocols(&upgrade, &headers).to_bytes())
        .unwrap();
    if accepted.is_some() {
        seen.negotiated.fetch_add(1, Ordering::SeqCst);
    }
    let config = Config {
        deflate: accepted.map(|a| a.params),
        ..Config::default()
    };
    let mut conn = Connection::new(Role::Server, config, Instant::now());
    let mut scratch = Scratch::new();
    let mut out = Vec::new();
    let mut echoed = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        count_rsv1(&buf[..n], seen);
        conn.receive(&mut scratch, Instant::now(), &buf[..n]);
        while let Some(ev) = conn.poll_event(&mut scratch) {
            match ev {
                Event::Message(m) => {
                    let mut bytes = m.as_bytes().to_vec();
                    if spec.corrupt == Some(echoed) {
                        let mid = bytes.len() / 2;
                        bytes[mid] ^= 0x01;
                    }
                    echoed += 1;
                    let sent = match m {
                        Message::Text(_) => conn.send_text(std::str::from_utf8(&bytes).unwrap()),
                        Message::Binary(_) => conn.send_binary(&bytes),
                    };
                    sent.unwrap();
                }
                Event::Failed(e) => panic!("the client broke the protocol: {e:?}"),
                _ => {}
            }
        }
        conn.poll_transmit(&mut out);
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

/// Counts first bytes of client frames with RSV1 set. Good enough here: the client's frames
/// are small, so most reads start on a frame boundary; the test only needs "some".
fn count_rsv1(bytes: &[u8], seen: &Seen) {
    if bytes.first().is_some_and(|b| b & 0x40 != 0) {
        seen.compressed_frames.fetch_add(1, Ordering::SeqCst);
    }
}

fn echo_config(addr: SocketAddr, size: usize, n: u64) -> echo::EchoConfig {
    echo::EchoConfig {
        target: Target::parse(&format!("ws://{addr}/")).unwrap(),
        connections: 3,
        size,
        in_flight: 4,
        text: true,
        threads: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(20),
        max_messages: n,
        sources: 1,
        server_pid: None,
        tls: None,
    }
}

fn chat(deflate: bool) -> MessageArgs {
    MessageArgs {
        payload: PayloadKind::ChatJson,
        seed: 7,
        deflate,
        deflate_level: 1,
        ..MessageArgs::default()
    }
}

fn wss_like() -> ServerSpec {
    ServerSpec {
        deflate: Some(DeflateConfig::default()),
        corrupt: None,
    }
}

#[test]
fn chat_json_with_deflate_is_compressed_both_ways_and_verified() {
    let (addr, seen) = spawn_server(wss_like());
    let (r, stats) = run_echo(&echo_config(addr, 0, 600), &chat(true)).unwrap();
    assert_eq!((r.sent, r.received, r.messages), (600, 600, 600));
    assert_eq!(seen.negotiated.load(Ordering::SeqCst), 3);
    assert!(seen.compressed_frames.load(Ordering::SeqCst) > 0);
    let b = &stats.bytes;
    assert_eq!(b.app_out, b.app_in, "every echo is the message sent");
    assert!(b.app_out > 600 * 80 && b.app_out < 600 * 300);
    // Chat JSON from a small vocabulary with context takeover: well over 2x both ways.
    assert!(b.wire_out * 2 < b.app_out, "out {b:?}");
    assert!(b.wire_in * 2 < b.app_in, "in {b:?}");
    assert_eq!(
        stats.response.as_deref(),
        Some("permessage-deflate"),
        "wss-proto's answer to the default offer"
    );
    assert_eq!(
        stats.offered.as_deref(),
        Some("permessage-deflate; client_max_window_bits")
    );
}

#[test]
fn no_context_takeover_offers_are_honoured_and_still_verified() {
    let (addr, _seen) = spawn_server(wss_like());
    let args = MessageArgs {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_window_bits: Some(10),
        ..chat(true)
    };
    let (r, stats) = run_echo(&echo_config(addr, 0, 90), &args).unwrap();
    assert_eq!(r.received, 90);
    let response = stats.response.unwrap();
    assert!(
        response.contains("server_no_context_takeover")
            && response.contains("client_no_context_takeover")
            && response.contains("server_max_window_bits=10"),
        "{response}"
    );
    // Each message compressed on its own still shrinks, but less than with context takeover.
    let b = &stats.bytes;
    assert!(b.wire_in < b.app_in, "{b:?}");
}

#[test]
fn fixed_payloads_go_through_deflate_too() {
    let (addr, _seen) = spawn_server(wss_like());
    let args = MessageArgs {
        deflate: true,
        deflate_level: 1,
        ..MessageArgs::default()
    };
    let (r, stats) = run_echo(&echo_config(addr, 2000, 60), &args).unwrap();
    assert_eq!(r.received, 60);
    assert_eq!(stats.payload, "fixed");
    assert_eq!(stats.bytes.app_in, 60 * 2000);
    assert!(stats.bytes.wire_in * 10 < stats.bytes.app_in);
}

#[test]
fn chat_json_without_deflate_counts_frame_overhead_against_tokio_tungstenite() {
    let addr = peers::spawn_local(peers::tt::serve, Mode::Echo).unwrap();
    let (r, stats) = run_echo(&echo_config(addr, 0, 300), &chat(false)).unwrap();
    assert_eq!((r.sent, r.received), (300, 300));
    let b = &stats.bytes;
    assert!(stats.offered.is_none() && stats.response.is_none());
    // Client frames: 2-4 header bytes + 4 mask bytes each; the server's: 2-4 bytes, plus the
    // close frames.
    assert!(b.wire_out >= b.app_out + 300 * 6, "{b:?}");
    assert!(b.wire_in >= b.app_in + 300 * 2, "{b:?}");
    assert!(b.wire_out <= b.app_out + 300 * 8 + 64, "{b:?}");
}

#[test]
fn a_server_that_declines_deflate_fails_the_run() {
    let (addr, _seen) = spawn_server(ServerSpec {
        deflate: None,
        corrupt: None,
    });
    let err = run_echo(&echo_config(addr, 0, 30), &chat(true)).unwrap_err();
    assert!(
        matches!(err, BenchError::Handshake(m) if m.contains("declined")),
        "{err:?}"
    );
    // The same server is fine for a run that does not offer deflate.
    let (r, _) = run_echo(&echo_config(addr, 0, 30), &chat(false)).unwrap();
    assert_eq!(r.received, 30);
}

#[test]
fn an_altered_compressed_echo_is_a_mismatch() {
    let (addr, _seen) = spawn_server(ServerSpec {
        deflate: Some(DeflateConfig::default()),
        corrupt: Some(5),
    });
    let err = run_echo(&echo_config(addr, 0, 60), &chat(true)).unwrap_err();
    assert!(
        matches!(err, BenchError::Mismatch { seq: 5, .. }),
        "{err:?}"
    );
}

#[test]
fn idle_with_deflate_negotiates_warms_and_keeps_every_connection() {
    let (addr, seen) = spawn_server(wss_like());
    let config = idle::IdleConfig {
        target: Target::parse(&format!("ws://{addr}/")).unwrap(),
        connections: 20,
        settle: Duration::ZERO,
        sources: 1,
        server_pid: Some(std::process::id()),
    };
    let extra = idle::IdleDeflate {
        offer: chat(true).offer(),
        warm: 2,
        seed: 7,
    };
    let r = idle::run_with(&config, &extra).unwrap();
    assert_eq!((r.connected, r.alive, r.deflate_negotiated), (20, 20, 20));
    assert_eq!(seen.negotiated.load(Ordering::SeqCst), 20);
    let b = &r.warm_bytes;
    assert_eq!(b.app_out, b.app_in);
    assert!(b.wire_out < b.app_out && b.wire_in < b.app_in, "{b:?}");
    assert_eq!(r.deflate_response.as_deref(), Some("permessage-deflate"));

    // Declined deflate fails an idle run as well.
    let (plain, _) = spawn_server(ServerSpec {
        deflate: None,
        corrupt: None,
    });
    let config = idle::IdleConfig {
        target: Target::parse(&format!("ws://{plain}/")).unwrap(),
        ..config
    };
    assert!(matches!(
        idle::run_with(&config, &extra),
        Err(BenchError::Handshake(_))
    ));
}
