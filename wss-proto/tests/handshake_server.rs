//! Upgrade validation (RFC 6455 §4.2.1), one test per rule, and the responses a server sends.

use wss_proto::handshake::{
    accept_key, is_upgrade_request, validate_upgrade, HandshakeError, HeadLimits, Request,
    RequestParser, Response, UpgradeRequest,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The upgrade request of RFC 6455 §1.2, minus the optional fields.
fn fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
}

fn request_with(method: &str, version: u8, fields: &[(&str, &str)]) -> Request {
    Request::new(method, "/chat", version, fields.iter().copied().collect())
}

fn valid() -> Request {
    request_with("GET", 1, &fields())
}

fn without(name: &str) -> Request {
    let fields: Vec<_> = fields().into_iter().filter(|(n, _)| *n != name).collect();
    request_with("GET", 1, &fields)
}

fn replaced(name: &str, value: &'static str) -> Request {
    let fields: Vec<_> = fields()
        .into_iter()
        .map(|(n, v)| if n == name { (n, value) } else { (n, v) })
        .collect();
    request_with("GET", 1, &fields)
}

fn added(name: &'static str, value: &'static str) -> Request {
    let mut fields = fields();
    fields.push((name, value));
    request_with("GET", 1, &fields)
}

fn refusal(request: &Request) -> HandshakeError {
    validate_upgrade(request).expect_err("request should be refused")
}

fn wire(response: &Response) -> String {
    String::from_utf8(response.to_bytes()).unwrap()
}

#[test]
fn rfc6455_section_1_3_accept_key() {
    assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn valid_request_is_accepted_with_its_key() {
    let upgrade = validate_upgrade(&valid()).unwrap();
    assert_eq!(upgrade.key, KEY);
    assert!(upgrade.protocols.is_empty());
    assert!(upgrade.extensions.is_empty());
}

#[test]
fn switching_protocols_response_carries_the_accept_key() {
    let upgrade = validate_upgrade(&valid()).unwrap();
    let extra = [("Sec-WebSocket-Protocol".to_owned(), "chat".to_owned())];
    let text = wire(&Response::switching_protocols(&upgrade, &extra));
    assert_eq!(
        text,
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: chat\r\n\r\n"
    );
}

#[test]
fn method_other_than_get_is_405_with_allow() {
    let err = refusal(&request_with("POST", 1, &fields()));
    assert_eq!(err, HandshakeError::MethodNotGet);
    assert_eq!(err.status(), 405);
    assert_eq!(err.reason(), "websocket upgrade needs GET");
    let text = wire(&err.response());
    assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(text.contains("Allow: GET\r\n"));
}

#[test]
fn method_is_case_sensitive() {
    assert_eq!(
        refusal(&request_with("get", 1, &fields())),
        HandshakeError::MethodNotGet
    );
}

#[test]
fn http_1_0_is_400() {
    let err = refusal(&request_with("GET", 0, &fields()));
    assert_eq!(err, HandshakeError::NotHttp11);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "websocket upgrade needs HTTP/1.1");
}

#[test]
fn missing_host_is_400() {
    let err = refusal(&without("Host"));
    assert_eq!(err, HandshakeError::MissingHost);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "missing Host header");
}

#[test]
fn duplicate_host_is_400() {
    let err = refusal(&added("host", "other.example.com"));
    assert_eq!(err, HandshakeError::DuplicateHost);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "more than one Host header");
}

#[test]
fn missing_upgrade_is_400() {
    let err = refusal(&without("Upgrade"));
    assert_eq!(err, HandshakeError::MissingUpgrade);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "missing Upgrade: websocket header");
}

#[test]
fn upgrade_to_another_protocol_is_400() {
    assert_eq!(
        refusal(&replaced("Upgrade", "h2c")),
        HandshakeError::MissingUpgrade
    );
}

#[test]
fn upgrade_token_is_case_insensitive_and_may_be_in_a_list() {
    assert!(validate_upgrade(&replaced("Upgrade", "WebSocket")).is_ok());
    assert!(validate_upgrade(&replaced("Upgrade", "h2c, websocket")).is_ok());
}

#[test]
fn missing_connection_upgrade_is_400() {
    let err = refusal(&without("Connection"));
    assert_eq!(err, HandshakeError::MissingConnectionUpgrade);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "missing Connection: Upgrade header");
}

#[test]
fn connection_without_upgrade_token_is_400() {
    assert_eq!(
        refusal(&replaced("Connection", "keep-alive")),
        HandshakeError::MissingConnectionUpgrade
    );
    // a token that merely contains "upgrade" does not count
    assert_eq!(
        refusal(&replaced("Connection", "upgraded")),
        HandshakeError::MissingConnectionUpgrade
    );
}

#[test]
fn connection_token_list_is_accepted_in_any_case() {
    assert!(validate_upgrade(&replaced("Connection", "keep-alive, Upgrade")).is_ok());
    assert!(validate_upgrade(&replaced("Connection", "UPGRADE")).is_ok());
    let split = request_with(
        "GET",
        1,
        &[
            ("Host", "h"),
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive"),
            ("connection", "upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ],
    );
    assert!(validate_upgrade(&split).is_ok());
}

#[test]
fn missing_key_is_400() {
    let err = refusal(&without("Sec-WebSocket-Key"));
    assert_eq!(err, HandshakeError::MissingKey);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "missing Sec-WebSocket-Key header");
}

#[test]
fn key_not_base64_is_400() {
    let err = refusal(&replaced("Sec-WebSocket-Key", "not base64 at all!!!!!!!"));
    assert_eq!(err, HandshakeError::InvalidKey);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "invalid Sec-WebSocket-Key");
}

#[test]
fn key_of_wrong_decoded_length_is_400() {
    // 15 and 17 bytes once decoded; 16 bytes of zeros is fine
    for key in ["AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA="] {
        let result = validate_upgrade(&replaced("Sec-WebSocket-Key", key));
        assert_eq!(result, Err(HandshakeError::InvalidKey), "{key}");
    }
    assert!(validate_upgrade(&replaced("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")).is_ok());
}

#[test]
fn duplicate_key_is_400() {
    let err = refusal(&added("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_eq!(err, HandshakeError::DuplicateKey);
    assert_eq!(err.status(), 400);
    assert_eq!(err.reason(), "more than one Sec-WebSocket-Key header");
}

#[test]
fn missing_version_is_426_with_version_13() {
    let err = refusal(&without("Sec-WebSocket-Version"));
    assert_eq!(err, HandshakeError::MissingVersion);
    assert_eq!(err.status(), 426);
    assert_eq!(err.reason(), "missing Sec-WebSocket-Version header");
    assert!(wire(&err.response()).contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn unsupported_version_is_426_with_version_13() {
    let err = refusal(&replaced("Sec-WebSocket-Version", "8"));
    assert_eq!(err, HandshakeError::UnsupportedVersion("8".to_owned()));
    assert_eq!(err.status(), 426);
    assert_eq!(err.reason(), "unsupported Sec-WebSocket-Version");
    let text = wire(&err.response());
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    assert!(text.contains("Connection: close\r\n"));
}

#[test]
fn repeated_version_is_426() {
    assert_eq!(
        refusal(&added("Sec-WebSocket-Version", "8")),
        HandshakeError::UnsupportedVersion("13, 8".to_owned())
    );
}

#[test]
fn version_is_checked_before_the_key() {
    let old_draft = request_with(
        "GET",
        1,
        &[
            ("Host", "h"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
        ],
    );
    assert_eq!(refusal(&old_draft), HandshakeError::MissingVersion);
}

#[test]
fn offered_protocols_are_collected_across_fields() {
    let mut fields = fields();
    fields.push(("Sec-WebSocket-Protocol", "chat, superchat"));
    fields.push(("sec-websocket-protocol", " v2.chat ,"));
    let upgrade = validate_upgrade(&request_with("GET", 1, &fields)).unwrap();
    assert_eq!(upgrade.protocols, ["chat", "superchat", "v2.chat"]);
}

#[test]
fn extension_offers_are_kept_raw_and_in_order() {
    let mut fields = fields();
    fields.push((
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits, x-foo; p=\"a,b\"",
    ));
    fields.push(("Sec-WebSocket-Extensions", "permessage-deflate"));
    let upgrade = validate_upgrade(&request_with("GET", 1, &fields)).unwrap();
    assert_eq!(
        upgrade.extensions,
        [
            "permessage-deflate; client_max_window_bits",
            "x-foo; p=\"a,b\"",
            "permessage-deflate"
        ]
    );
}

#[test]
fn upgrade_request_is_told_from_plain_get() {
    assert!(is_upgrade_request(&valid()));
    assert!(is_upgrade_request(&replaced("Upgrade", "WEBSOCKET")));
    // a key alone marks an (invalid) upgrade attempt, to be refused rather than served
    assert!(is_upgrade_request(&without("Upgrade")));
    let plain = request_with("GET", 1, &[("Host", "h"), ("Upgrade", "h2c")]);
    assert!(!is_upgrade_request(&plain));
    assert!(!is_upgrade_request(&request_with("GET", 1, &[])));
}

#[test]
fn parsed_request_from_the_wire_validates() {
    let wire = b"GET /chat HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\n\
connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
sec-websocket-version: 13\r\n\r\n";
    let (request, _) = RequestParser::new(HeadLimits::default())
        .feed(wire)
        .unwrap()
        .unwrap();
    let upgrade = validate_upgrade(&request).unwrap();
    assert_eq!(accept_key(&upgrade.key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn error_responses_have_status_close_and_text_body() {
    for (status, line) in [
        (400, "HTTP/1.1 400 Bad Request\r\n"),
        (403, "HTTP/1.1 403 Forbidden\r\n"),
        (404, "HTTP/1.1 404 Not Found\r\n"),
        (405, "HTTP/1.1 405 Method Not Allowed\r\n"),
        (426, "HTTP/1.1 426 Upgrade Required\r\n"),
        (431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (503, "HTTP/1.1 503 Service Unavailable\r\n"),
    ] {
        let text = wire(&Response::error(status, "why"));
        assert!(text.starts_with(line), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(text.ends_with("Content-Length: 3\r\n\r\nwhy"), "{text}");
    }
}

#[test]
fn refusal_without_text_has_zero_length_and_no_type() {
    let text = wire(&Response::error(403, ""));
    assert_eq!(
        text,
        "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn explicit_content_length_is_not_doubled() {
    let mut response = Response::new(200).header("Content-Length", "42");
    response.body.clear();
    let text = wire(&response);
    assert_eq!(text.matches("Content-Length").count(), 1);
    assert!(text.contains("Content-Length: 42\r\n"));
}

#[test]
fn header_values_cannot_inject_lines() {
    let text = wire(&Response::new(200).header("X-A", "a\r\nSet-Cookie: evil"));
    assert!(text.contains("X-A: a  Set-Cookie: evil\r\n"), "{text}");
    assert_eq!(text.matches("\r\n").count(), 4);
}

#[test]
fn unknown_status_has_empty_reason() {
    assert!(wire(&Response::new(599)).starts_with("HTTP/1.1 599 \r\n"));
}

#[test]
fn handshake_error_display_names_the_rule() {
    assert_eq!(
        HandshakeError::UnsupportedVersion("8".into()).to_string(),
        "unsupported Sec-WebSocket-Version (426): \"8\""
    );
}

#[test]
fn upgrade_request_fields_are_public_for_building_responses() {
    let upgrade = UpgradeRequest {
        key: KEY.to_owned(),
        protocols: vec![],
        extensions: vec![],
    };
    let text = wire(&Response::switching_protocols(&upgrade, &[]));
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert!(!text.contains("Content-Length"));
}
