//! Client side of the handshake: the request it writes and its checks of the server's 101,
//! in memory and against our own server code over a loopback socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use wss_proto::handshake::{
    accept_key, validate_upgrade, ClientHandshake, ClientHandshakeError, HeadLimits, HeadSyntax,
    RequestParser, Response,
};

const KEY_BYTES: [u8; 16] = *b"the sample nonce";

fn client() -> ClientHandshake {
    ClientHandshake::new("server.example.com", "/chat?x=1", KEY_BYTES, &[])
}

fn client_offering(name: &str, value: &str) -> ClientHandshake {
    let extra = [(name.to_owned(), value.to_owned())];
    ClientHandshake::new("server.example.com", "/chat", KEY_BYTES, &extra)
}

/// A 101 for `client` with the given extra lines (each ending in CRLF).
fn reply(client: &ClientHandshake, extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
        accept_key(client.key())
    )
}

fn feed_all(
    client: &mut ClientHandshake,
    text: &str,
) -> Result<Option<usize>, ClientHandshakeError> {
    client.feed_response(text.as_bytes())
}

#[test]
fn key_is_base64_of_the_given_bytes() {
    // RFC 6455 §1.3: "the sample nonce" encodes to the key of the example
    assert_eq!(client().key(), "dGhlIHNhbXBsZSBub25jZQ==");
}

#[test]
fn request_is_a_valid_upgrade_for_our_server() {
    let client = client_offering("Sec-WebSocket-Protocol", "chat");
    let bytes = client.request_bytes();
    let (request, used) = RequestParser::new(HeadLimits::default())
        .feed(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(request.url(), "/chat");
    assert_eq!(request.headers().get("host"), Some("server.example.com"));
    let upgrade = validate_upgrade(&request).unwrap();
    assert_eq!(upgrade.key, client.key());
    assert_eq!(upgrade.protocols, ["chat"]);
}

#[test]
fn request_strings_cannot_inject_header_lines() {
    let client = ClientHandshake::new("h\r\nX-Evil: 1", "/", KEY_BYTES, &[]);
    let text = String::from_utf8(client.request_bytes()).unwrap();
    assert!(text.contains("Host: h  X-Evil: 1\r\n"), "{text}");
}

#[test]
fn valid_101_completes_and_reports_bytes_used() {
    let mut client = client();
    let head = reply(&client, "");
    let mut input = head.clone().into_bytes();
    input.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(client.feed_response(&input), Ok(Some(head.len())));
    assert!(client.is_done());
    assert_eq!(client.protocol(), None);
    assert_eq!(client.response_headers().get("upgrade"), Some("websocket"));
    // later input is all frames
    assert_eq!(client.feed_response(b"\x81\x00"), Ok(Some(0)));
}

#[test]
fn response_fed_one_byte_at_a_time_completes_on_the_last_byte() {
    let mut client = client();
    let head = reply(&client, "");
    let bytes = head.as_bytes();
    for byte in &bytes[..bytes.len() - 1] {
        assert_eq!(client.feed_response(std::slice::from_ref(byte)), Ok(None));
    }
    assert_eq!(client.feed_response(&bytes[bytes.len() - 1..]), Ok(Some(1)));
}

#[test]
fn selected_offered_protocol_is_reported() {
    let mut client = client_offering("Sec-WebSocket-Protocol", "chat, superchat");
    let head = reply(&client, "Sec-WebSocket-Protocol: superchat\r\n");
    assert!(feed_all(&mut client, &head).unwrap().is_some());
    assert_eq!(client.protocol(), Some("superchat"));
}

#[test]
fn refusal_status_fails() {
    let mut client = client();
    let result = feed_all(
        &mut client,
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(result, Err(ClientHandshakeError::UnexpectedStatus(403)));
}

#[test]
fn missing_upgrade_fails() {
    let mut client = client();
    let head = reply(&client, "").replace("Upgrade: websocket\r\n", "");
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::MissingUpgrade)
    );
}

#[test]
fn missing_connection_upgrade_fails() {
    let mut client = client();
    let head = reply(&client, "").replace("Connection: Upgrade\r\n", "Connection: close\r\n");
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::MissingConnectionUpgrade)
    );
}

#[test]
fn missing_accept_fails() {
    let mut client = client();
    let head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_eq!(
        feed_all(&mut client, head),
        Err(ClientHandshakeError::MissingAccept)
    );
}

#[test]
fn wrong_accept_fails() {
    let mut client = client();
    let head = reply(&client, "").replace(&accept_key(client.key()), &accept_key("other"));
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::WrongAccept)
    );
}

#[test]
fn duplicate_accept_fails() {
    let mut client = client();
    let extra = format!("Sec-WebSocket-Accept: {}\r\n", accept_key(client.key()));
    let head = reply(&client, &extra);
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::WrongAccept)
    );
}

#[test]
fn unoffered_protocol_fails() {
    let mut client = client_offering("Sec-WebSocket-Protocol", "chat");
    let head = reply(&client, "Sec-WebSocket-Protocol: superchat\r\n");
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::UnofferedProtocol("superchat".into()))
    );
}

#[test]
fn protocol_selected_without_any_offer_fails() {
    let mut client = client();
    let head = reply(&client, "Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::UnofferedProtocol("chat".into()))
    );
}

#[test]
fn unoffered_extension_fails() {
    let mut client = client();
    let head = reply(&client, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::UnofferedExtension(
            "permessage-deflate".into()
        ))
    );
}

#[test]
fn offered_extension_is_accepted() {
    let mut client = client_offering(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits",
    );
    let head = reply(
        &client,
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    );
    assert!(feed_all(&mut client, &head).unwrap().is_some());
}

#[test]
fn malformed_response_fails() {
    let mut client = client();
    assert_eq!(
        feed_all(&mut client, "HTTP/1.1 1x1 Oops\r\n\r\n"),
        Err(ClientHandshakeError::Malformed(HeadSyntax::Status))
    );
}

#[test]
fn endless_response_head_fails_at_the_limit() {
    let mut client = client();
    assert_eq!(client.feed_response(b"HTTP/1.1 101 OK\r\nX: "), Ok(None));
    let result = client.feed_response(&vec![b'a'; 17 * 1024]);
    assert_eq!(result, Err(ClientHandshakeError::TooLarge));
}

#[test]
fn too_many_response_headers_fail() {
    let mut client = client();
    let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
    let head = reply(&client, &many);
    assert_eq!(
        feed_all(&mut client, &head),
        Err(ClientHandshakeError::TooManyHeaders)
    );
}

#[test]
fn failure_is_sticky() {
    let mut client = client();
    let first = feed_all(&mut client, "HTTP/1.1 404 Not Found\r\n\r\n");
    let good = reply(&client, "");
    assert_eq!(feed_all(&mut client, &good), first);
    assert!(!client.is_done());
}

/// Our client and our server code complete a handshake over a real socket, the request and
/// the response both written in small pieces, and the first frame after the 101 is left over.
#[test]
fn client_and_server_complete_the_handshake_over_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut parser = RequestParser::new(HeadLimits::default());
        let mut buf = [0u8; 7];
        let request = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "client closed early");
            if let Some((request, _)) = parser.feed(&buf[..n]).unwrap() {
                break request;
            }
        };
        let upgrade = validate_upgrade(&request).unwrap();
        let mut out = Response::switching_protocols(&upgrade, &[]).to_bytes();
        out.extend_from_slice(&[0x81, 0x02, b'o', b'k']);
        for piece in out.chunks(5) {
            stream.write_all(piece).unwrap();
            stream.flush().unwrap();
        }
    });

    let mut stream = TcpStream::connect(addr).unwrap();
    let mut client = ClientHandshake::new(&addr.to_string(), "/", KEY_BYTES, &[]);
    for piece in client.request_bytes().chunks(11) {
        stream.write_all(piece).unwrap();
    }
    let mut received = Vec::new();
    let mut buf = [0u8; 64];
    let leftover = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "server closed before the 101 ended");
        received.extend_from_slice(&buf[..n]);
        if let Some(used) = client.feed_response(&buf[..n]).unwrap() {
            break buf[used..n].to_vec();
        }
    };
    // the frame may arrive with the head or after it
    let mut frames = leftover;
    while frames.len() < 4 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        frames.extend_from_slice(&buf[..n]);
    }
    assert_eq!(frames, [0x81, 0x02, b'o', b'k']);
    server.join().unwrap();
}
