//! Request-head parsing: incremental input, pipelining, limits, syntax errors, and the parsed
//! request (target, query, headers).

use wss_proto::handshake::{HeadError, HeadLimits, HeadSyntax, Request, RequestParser};

const UPGRADE: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
Host: example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

fn parser() -> RequestParser {
    RequestParser::new(HeadLimits::default())
}

fn parse(head: &[u8]) -> Result<Request, HeadError> {
    match parser().feed(head)? {
        Some((request, used)) => {
            assert_eq!(used, head.len(), "whole input should be the head");
            Ok(request)
        }
        None => panic!("head not complete"),
    }
}

fn parse_ok(head: &str) -> Request {
    parse(head.as_bytes()).expect("valid head")
}

/// A head with `fields` header fields padded to exactly `total` bytes.
fn head_of_size(total: usize, fields: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..fields {
        head.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
    }
    let pad_line_overhead = "X-Pad: \r\n".len() + 2;
    let pad = total - head.len() - pad_line_overhead;
    head.extend_from_slice(b"X-Pad: ");
    head.resize(head.len() + pad, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), total);
    head
}

#[test]
fn whole_head_in_one_read_parses() {
    let request = parse(UPGRADE).unwrap();
    assert_eq!(request.method(), "GET");
    assert_eq!(request.url(), "/chat?room=1");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.version(), 1);
    assert_eq!(request.headers().len(), 5);
}

#[test]
fn head_fed_one_byte_at_a_time_parses_to_the_same_request() {
    let mut parser = parser();
    let (last, rest) = UPGRADE.split_last().unwrap();
    for byte in rest {
        assert_eq!(parser.feed(std::slice::from_ref(byte)), Ok(None));
    }
    assert_eq!(parser.buffered(), UPGRADE.len() - 1);
    let (request, used) = parser.feed(&[*last]).unwrap().unwrap();
    assert_eq!(used, 1);
    assert_eq!(request, parse(UPGRADE).unwrap());
}

#[test]
fn bytes_after_the_head_are_reported_as_not_used() {
    let mut input = UPGRADE.to_vec();
    input.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
    let (_, used) = parser().feed(&input).unwrap().unwrap();
    assert_eq!(used, UPGRADE.len());
}

#[test]
fn head_split_before_its_last_line_reports_used_of_the_final_call_only() {
    let mut parser = parser();
    let split = UPGRADE.len() - 3;
    assert_eq!(parser.feed(&UPGRADE[..split]), Ok(None));
    let mut tail = UPGRADE[split..].to_vec();
    tail.extend_from_slice(b"GET /next");
    let (request, used) = parser.feed(&tail).unwrap().unwrap();
    assert_eq!(used, 3);
    assert_eq!(request.path(), "/chat");
}

#[test]
fn pipelined_requests_parse_one_after_the_other() {
    let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\nGET /c";
    let mut parser = parser();
    let (first, used1) = parser.feed(input).unwrap().unwrap();
    assert_eq!(first.path(), "/a");
    let rest = &input[used1..];
    let (second, used2) = parser.feed(rest).unwrap().unwrap();
    assert_eq!(second.path(), "/b");
    assert_eq!(second.headers().get("host"), Some("y"));
    assert_eq!(parser.feed(&rest[used2..]), Ok(None));
    let (third, _) = parser.feed(b" HTTP/1.1\r\n\r\n").unwrap().unwrap();
    assert_eq!(third.path(), "/c");
}

#[test]
fn head_of_exactly_16_kib_is_accepted() {
    let head = head_of_size(16 * 1024, 3);
    assert!(parse(&head).is_ok());
}

#[test]
fn head_over_16_kib_is_refused_with_431() {
    let head = head_of_size(16 * 1024 + 1, 3);
    let err = parse(&head).unwrap_err();
    assert_eq!(err, HeadError::TooLarge);
    assert_eq!(err.status(), 431);
    let wire = String::from_utf8(err.response().to_bytes()).unwrap();
    assert!(wire.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert!(wire.contains("Connection: close\r\n"));
}

#[test]
fn endless_head_is_refused_at_the_limit_without_waiting_for_its_end() {
    let mut parser = parser();
    assert_eq!(parser.feed(b"GET / HTTP/1.1\r\nX-Long: "), Ok(None));
    let chunk = [b'a'; 1000];
    let mut fed = 24;
    let err = loop {
        match parser.feed(&chunk) {
            Ok(None) => fed += chunk.len(),
            Ok(Some(_)) => panic!("no end was sent"),
            Err(err) => break err,
        }
        assert!(fed <= 16 * 1024, "kept buffering past the limit");
    };
    assert_eq!(err, HeadError::TooLarge);
    assert!(parser.buffered() <= 16 * 1024 + chunk.len());
}

#[test]
fn newline_flood_counts_against_the_size_limit() {
    let flood = vec![b'\n'; 16 * 1024 + 1];
    assert_eq!(parser().feed(&flood), Err(HeadError::TooLarge));
}

#[test]
fn sixty_four_headers_are_accepted() {
    let head = head_of_size(4000, 63); // 63 + the padding field = 64
    assert_eq!(parse(&head).unwrap().headers().len(), 64);
}

#[test]
fn sixty_five_headers_are_refused_with_431() {
    let head = head_of_size(4000, 64);
    let err = parse(&head).unwrap_err();
    assert_eq!(err, HeadError::TooManyHeaders);
    assert_eq!(err.status(), 431);
}

#[test]
fn custom_limits_apply() {
    let limits = HeadLimits {
        max_head_bytes: 100,
        max_headers: 2,
    };
    let mut parser = RequestParser::new(limits);
    let err = parser
        .feed(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        .unwrap_err();
    assert_eq!(err, HeadError::TooManyHeaders);
    let limits = HeadLimits {
        max_head_bytes: 1000,
        max_headers: 100,
    };
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        head.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let (request, _) = RequestParser::new(limits).feed(&head).unwrap().unwrap();
    assert_eq!(request.headers().len(), 100);
}

#[test]
fn malformed_header_name_is_400_with_reason() {
    let err = parse(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n").unwrap_err();
    assert_eq!(err, HeadError::Malformed(HeadSyntax::HeaderName));
    assert_eq!(err.status(), 400);
    let wire = String::from_utf8(err.response().to_bytes()).unwrap();
    assert!(wire.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(wire.ends_with("\r\n\r\ninvalid header name"));
}

#[test]
fn malformed_request_line_is_400() {
    let err = parse(b"GET  HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!(err, HeadError::Malformed(HeadSyntax::RequestLine));
    assert_eq!(err.reason(), "invalid request line");
}

#[test]
fn unknown_http_version_is_400() {
    let err = parse(b"GET / HTTP/2.0\r\n\r\n").unwrap_err();
    assert_eq!(err, HeadError::Malformed(HeadSyntax::Version));
}

#[test]
fn control_byte_in_header_value_is_400() {
    let err = parse(b"GET / HTTP/1.1\r\nA: x\x01y\r\n\r\n").unwrap_err();
    assert_eq!(err, HeadError::Malformed(HeadSyntax::HeaderValue));
}

#[test]
fn bare_cr_line_ending_is_400() {
    let err = parse(b"GET / HTTP/1.1\rHost: x\r\n\r\n").unwrap_err();
    assert!(matches!(err, HeadError::Malformed(_)), "{err:?}");
}

#[test]
fn errors_are_sticky_until_reset() {
    let mut parser = parser();
    let err = parser.feed(b"GET / HTTP/9.9\r\n\r\n").unwrap_err();
    assert_eq!(parser.feed(b"GET / HTTP/1.1\r\n\r\n"), Err(err));
    parser.reset();
    assert!(parser.feed(b"GET / HTTP/1.1\r\n\r\n").unwrap().is_some());
}

#[test]
fn reset_drops_a_partial_head() {
    let mut parser = parser();
    assert_eq!(parser.feed(b"GET /old HTT"), Ok(None));
    parser.reset();
    assert_eq!(parser.buffered(), 0);
    let (request, _) = parser.feed(b"GET /new HTTP/1.1\r\n\r\n").unwrap().unwrap();
    assert_eq!(request.path(), "/new");
}

#[test]
fn empty_lines_before_the_request_line_are_skipped() {
    let request = parse(b"\r\n\r\nGET /x HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(request.path(), "/x");
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let request = parse(b"GET /x HTTP/1.1\nHost: a\n\n").unwrap();
    assert_eq!(request.headers().get("host"), Some("a"));
}

#[test]
fn http_1_0_is_version_0() {
    assert_eq!(parse_ok("GET / HTTP/1.0\r\n\r\n").version(), 0);
}

#[test]
fn url_is_the_raw_request_target() {
    let request = parse_ok("GET /a%20b/c?x=%41+b&y HTTP/1.1\r\n\r\n");
    assert_eq!(request.url(), "/a%20b/c?x=%41+b&y");
    assert_eq!(request.path(), "/a%20b/c");
}

#[test]
fn header_names_keep_their_case_and_lookup_ignores_it() {
    let request = parse_ok("GET / HTTP/1.1\r\nX-Custom-Name: v\r\nhost: h\r\n\r\n");
    let names: Vec<&str> = request.headers().iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["X-Custom-Name", "host"]);
    assert_eq!(request.headers().get("x-custom-name"), Some("v"));
    assert_eq!(request.headers().get("X-CUSTOM-NAME"), Some("v"));
    assert_eq!(request.headers().get("HOST"), Some("h"));
    assert_eq!(request.headers().get("missing"), None);
}

#[test]
fn repeated_headers_keep_arrival_order() {
    let request = parse_ok("GET / HTTP/1.1\r\nX-A: 1\r\nX-B: other\r\nx-a: 2\r\nX-A: 3\r\n\r\n");
    let values: Vec<&str> = request.headers().get_all("x-a").collect();
    assert_eq!(values, ["1", "2", "3"]);
    assert_eq!(request.headers().get("X-A"), Some("1"));
    let all: Vec<(&str, &str)> = request.headers().iter().collect();
    assert_eq!(
        all,
        [("X-A", "1"), ("X-B", "other"), ("x-a", "2"), ("X-A", "3")]
    );
}

#[test]
fn header_values_are_trimmed_of_surrounding_whitespace() {
    let request = parse_ok("GET / HTTP/1.1\r\nX-A:   padded value \t\r\n\r\n");
    assert_eq!(request.headers().get("x-a"), Some("padded value"));
}

#[test]
fn non_utf8_header_value_becomes_replacement_characters() {
    let request = parse(b"GET / HTTP/1.1\r\nX-A: caf\xe9\r\n\r\n").unwrap();
    assert_eq!(request.headers().get("x-a"), Some("caf\u{fffd}"));
}

#[test]
fn comma_token_lookup_is_case_insensitive() {
    let request = parse_ok("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n");
    assert!(request.headers().contains_token("connection", "upgrade"));
    assert!(request.headers().contains_token("Connection", "KEEP-ALIVE"));
    assert!(!request.headers().contains_token("connection", "keep"));
}

#[test]
fn query_is_percent_decoded() {
    let request = parse_ok("GET /?name=J%C3%A9r%C3%B4me&sym=%26%3D%25 HTTP/1.1\r\n\r\n");
    assert_eq!(request.query().get("name"), Some("Jérôme"));
    assert_eq!(request.query().get("sym"), Some("&=%"));
}

#[test]
fn query_plus_is_a_space_but_encoded_plus_is_a_plus() {
    let request = parse_ok("GET /?q=a+b%2Bc HTTP/1.1\r\n\r\n");
    assert_eq!(request.query().get("q"), Some("a b+c"));
}

#[test]
fn query_keys_are_decoded_too() {
    let request = parse_ok("GET /?first+name=x&a%5B%5D=1 HTTP/1.1\r\n\r\n");
    assert_eq!(request.query().get("first name"), Some("x"));
    assert_eq!(request.query().get("a[]"), Some("1"));
}

#[test]
fn query_repeated_keys_are_kept_in_order() {
    let request = parse_ok("GET /?t=1&u=x&t=2&t=3 HTTP/1.1\r\n\r\n");
    let values: Vec<&str> = request.query().get_all("t").collect();
    assert_eq!(values, ["1", "2", "3"]);
    assert_eq!(request.query().len(), 4);
}

#[test]
fn query_key_without_equals_gets_empty_value() {
    let request = parse_ok("GET /?flag&x=1&empty= HTTP/1.1\r\n\r\n");
    assert_eq!(request.query().get("flag"), Some(""));
    assert_eq!(request.query().get("empty"), Some(""));
    let pairs: Vec<(&str, &str)> = request.query().iter().collect();
    assert_eq!(pairs, [("flag", ""), ("x", "1"), ("empty", "")]);
}

#[test]
fn query_invalid_percent_escapes_stay_literal() {
    let request = parse_ok("GET /?a=%zz&b=100%&c=%4&d=%e9 HTTP/1.1\r\n\r\n");
    assert_eq!(request.query().get("a"), Some("%zz"));
    assert_eq!(request.query().get("b"), Some("100%"));
    assert_eq!(request.query().get("c"), Some("%4"));
    // a decoded byte that is not UTF-8 is replaced, not refused
    assert_eq!(request.query().get("d"), Some("\u{fffd}"));
}

#[test]
fn query_value_keeps_later_equals_signs() {
    let request = parse_ok("GET /?token=abc==&&x=1 HTTP/1.1\r\n\r\n");
    assert_eq!(request.query().get("token"), Some("abc=="));
    assert_eq!(request.query().len(), 2);
}

#[test]
fn no_query_gives_empty_query() {
    assert!(parse_ok("GET /plain HTTP/1.1\r\n\r\n").query().is_empty());
    assert!(parse_ok("GET /plain? HTTP/1.1\r\n\r\n").query().is_empty());
}
