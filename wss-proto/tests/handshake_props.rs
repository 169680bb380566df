//! Property tests of the handshake: input splits do not matter, arbitrary input never panics,
//! query encoding round-trips.

use proptest::prelude::*;
use wss_proto::handshake::{
    validate_upgrade, ClientHandshake, HeadLimits, Query, Request, RequestParser,
};

/// A request head from generated parts, and the header fields it holds.
fn head_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<(String, String)>)> {
    let name = "[A-Za-z][A-Za-z0-9-]{0,15}";
    let value = "[!-~]([ -~]{0,28}[!-~])?";
    (
        "/[a-z0-9/%._-]{0,20}",
        proptest::option::of("[a-z0-9=&%+]{0,20}"),
        proptest::collection::vec((name, value), 0..20),
        any::<bool>(),
    )
        .prop_map(|(path, query, fields, bare_lf)| {
            let eol = if bare_lf { "\n" } else { "\r\n" };
            let target = match query {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let mut head = format!("GET {target} HTTP/1.1{eol}");
            for (name, value) in &fields {
                head.push_str(&format!("{name}: {value}{eol}"));
            }
            head.push_str(eol);
            (head.into_bytes(), fields)
        })
}

/// Feeds `input` in the pieces given by `cuts` and returns the request and the total of
/// the `used` counts.
fn feed_in_pieces(input: &[u8], cuts: &[usize]) -> (Request, usize) {
    let mut parser = RequestParser::new(HeadLimits::default());
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    points.dedup();
    let mut consumed = 0;
    for pair in points.windows(2) {
        let piece = &input[pair[0]..pair[1]];
        match parser.feed(piece).expect("valid head") {
            None => consumed += piece.len(),
            Some((request, used)) => return (request, consumed + used),
        }
    }
    panic!("head never completed")
}

fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

proptest! {
    #[test]
    fn any_split_of_a_head_parses_to_the_same_request(
        (head, fields) in head_strategy(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        trailing in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let whole = {
            let mut parser = RequestParser::new(HeadLimits::default());
            let (request, used) = parser.feed(&head).unwrap().unwrap();
            prop_assert_eq!(used, head.len());
            request
        };
        let got: Vec<(String, String)> = whole
            .headers()
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        prop_assert_eq!(&got, &fields);

        let mut input = head.clone();
        input.extend_from_slice(&trailing);
        let (split, used) = feed_in_pieces(&input, &cuts);
        prop_assert_eq!(used, head.len());
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn random_bytes_never_panic_the_request_parser(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut parser = RequestParser::new(HeadLimits { max_head_bytes: 1024, max_headers: 8 });
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.extend([0, data.len()]);
        points.sort_unstable();
        points.dedup();
        for pair in points.windows(2) {
            let mut piece = &data[pair[0]..pair[1]];
            while let Ok(Some((request, used))) = parser.feed(piece) {
                prop_assert!(used <= piece.len());
                let _ = validate_upgrade(&request);
                piece = &piece[used..];
            }
            prop_assert!(parser.buffered() <= 1024 + data.len());
        }
    }

    #[test]
    fn corrupted_heads_never_panic(
        (head, _) in head_strategy(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut head = head;
        for (at, byte) in flips {
            let len = head.len();
            head[at % len] = byte;
        }
        for piece_len in [1, 3, head.len()] {
            let mut parser = RequestParser::new(HeadLimits::default());
            for piece in head.chunks(piece_len) {
                match parser.feed(piece) {
                    Ok(None) => {}
                    Ok(Some((request, used))) => {
                        prop_assert!(used <= piece.len());
                        let _ = validate_upgrade(&request);
                        break;
                    }
                    Err(err) => {
                        prop_assert!(matches!(err.status(), 400 | 431));
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_the_client(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut client = ClientHandshake::new("h", "/", [1; 16], &[]);
        for piece in data.chunks(37) {
            match client.feed_response(piece) {
                Ok(None) => {}
                Ok(Some(used)) => {
                    prop_assert!(used <= piece.len());
                    break;
                }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn encoded_query_decodes_to_the_original_pairs(
        pairs in proptest::collection::vec(("\\PC{1,8}", "\\PC{0,8}"), 0..6),
    ) {
        let raw: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        let query = Query::parse(&raw.join("&"));
        let decoded: Vec<(String, String)> =
            query.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(decoded, pairs);
    }
}
