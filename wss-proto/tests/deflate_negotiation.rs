//! permessage-deflate negotiation (RFC 7692 §5, §7.1): which offers a server accepts or
//! declines, what it answers, and how a client checks that answer.

use wss_proto::handshake::deflate::{
    accept_response, client_offer, negotiate, DeflateOffer, NegotiationError,
};
use wss_proto::handshake::{
    accept_key, validate_upgrade, ClientHandshake, ClientHandshakeError, HeadLimits, RequestParser,
    Response,
};
use wss_proto::{DeflateConfig, DeflateParams};

#[cfg_attr(not(feature = "deflate"), allow(dead_code))]
fn accept(offer: &str) -> Result<(String, DeflateParams), NegotiationError> {
    DeflateConfig::default()
        .accept(offer)
        .map(|a| (a.response, a.params))
}

fn declined(offer: &str) -> NegotiationError {
    let err = DeflateConfig::default().accept(offer).unwrap_err();
    assert_eq!(negotiate(&[offer], &DeflateConfig::default()), None);
    err
}

fn invalid(name: &str) -> NegotiationError {
    NegotiationError::InvalidValue(name.into())
}

#[cfg(feature = "deflate")]
mod accepted {
    use super::*;

    #[test]
    fn browser_offers_are_accepted_as_they_are() {
        for offer in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
        ] {
            let (response, params) = accept(offer).unwrap();
            assert_eq!(response, "permessage-deflate");
            assert_eq!(
                params,
                DeflateParams::default(),
                "no parameter: takeover, 2^15"
            );
        }
    }

    #[test]
    fn every_parameter_is_echoed_as_section_7_1_requires() {
        let (response, params) = accept(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12",
        )
        .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        assert_eq!(
            (params.server_max_window_bits, params.client_max_window_bits),
            (10, 12)
        );
    }

    #[test]
    fn quoted_values_and_odd_spacing_are_accepted() {
        let (response, params) =
            accept("Permessage-Deflate ;server_max_window_bits = \"9\";\tclient_max_window_bits")
                .unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=9");
        assert_eq!(params.server_max_window_bits, 9);
    }

    #[test]
    fn server_wishes_are_added_to_the_answer() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 11,
            client_max_window_bits: 10,
            threshold: 7,
            level: 4,
            ..DeflateConfig::default()
        };
        // The client allows client_max_window_bits: the server asks for 10.
        let a = config
            .accept("permessage-deflate; client_max_window_bits")
            .unwrap();
        assert_eq!(
            a.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits=10"
        );
        assert_eq!(
            a.params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 11, // used, not announced: unsolicited
                client_max_window_bits: 10,
                level: 4,
                threshold: 7,
            }
        );
        assert_eq!(a.header().0, "Sec-WebSocket-Extensions");
        // Without client_max_window_bits in the offer the server must not ask (§7.1.2.2).
        let a = config.accept("permessage-deflate").unwrap();
        assert!(!a.response.contains("client_max_window_bits"));
        assert_eq!(a.params.client_max_window_bits, 15);
        // A smaller offered server window wins over the server's own.
        let a = config
            .accept("permessage-deflate; server_max_window_bits=9")
            .unwrap();
        assert!(a.response.ends_with("server_max_window_bits=9"));
        assert_eq!(a.params.server_max_window_bits, 9);
    }

    #[test]
    fn a_window_of_8_bits_is_agreed_and_honoured_by_not_compressing() {
        let (response, params) = accept("permessage-deflate; server_max_window_bits=8").unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=8");
        assert_eq!(params.server_max_window_bits, 8);
    }

    #[test]
    fn the_first_acceptable_offer_wins_across_fields_and_commas() {
        let wire = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; foo=\"a,b\"\r\n\
                    Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12, permessage-deflate\r\n\r\n";
        let mut parser = RequestParser::new(HeadLimits::default());
        let (request, _) = parser.feed(wire.as_bytes()).unwrap().unwrap();
        let upgrade = validate_upgrade(&request).unwrap();
        assert_eq!(upgrade.extensions.len(), 4);
        let a = negotiate(&upgrade.extensions, &DeflateConfig::default()).unwrap();
        assert_eq!(a.response, "permessage-deflate; server_max_window_bits=12");
        assert_eq!(a.params.server_max_window_bits, 12);
    }
}

#[cfg(not(feature = "deflate"))]
#[test]
fn without_the_deflate_feature_valid_offers_are_declined() {
    assert_eq!(
        accept("permessage-deflate"),
        Err(NegotiationError::Disabled)
    );
}

#[test]
fn unknown_parameters_are_declined() {
    assert_eq!(
        declined("permessage-deflate; foo"),
        NegotiationError::UnknownParameter("foo".into())
    );
    assert_eq!(
        declined("permessage-deflate; max_window_bits=10"),
        NegotiationError::UnknownParameter("max_window_bits".into())
    );
}

#[test]
fn duplicate_parameters_are_declined() {
    for p in [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "client_max_window_bits",
    ] {
        assert_eq!(
            declined(&format!("permessage-deflate; {p}; {p}")),
            NegotiationError::DuplicateParameter(p.into())
        );
    }
    assert_eq!(
        declined("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"),
        NegotiationError::DuplicateParameter("server_max_window_bits".into())
    );
}

#[test]
fn bad_window_bits_values_are_declined() {
    for value in [
        "", "7", "16", "08", "+9", "9.0", "0x9", "\"16\"", "1 0", "15a",
    ] {
        let offer = format!("permessage-deflate; server_max_window_bits={value}");
        let err = DeflateConfig::default().accept(&offer).unwrap_err();
        assert!(
            matches!(
                err,
                NegotiationError::InvalidValue(_) | NegotiationError::Syntax(_)
            ),
            "{offer}: {err:?}"
        );
        let offer = format!("permessage-deflate; client_max_window_bits={value}");
        let err = DeflateConfig::default().accept(&offer).unwrap_err();
        assert!(
            matches!(
                err,
                NegotiationError::InvalidValue(_) | NegotiationError::Syntax(_)
            ),
            "{offer}: {err:?}"
        );
    }
    // server_max_window_bits needs a value; client_max_window_bits may go without.
    assert_eq!(
        declined("permessage-deflate; server_max_window_bits"),
        invalid("server_max_window_bits")
    );
}

#[test]
fn values_on_parameters_that_take_none_are_declined() {
    assert_eq!(
        declined("permessage-deflate; server_no_context_takeover=1"),
        invalid("server_no_context_takeover")
    );
    assert_eq!(
        declined("permessage-deflate; client_no_context_takeover=\"true\""),
        invalid("client_no_context_takeover")
    );
}

#[test]
fn malformed_offers_and_other_extensions_are_declined() {
    assert!(matches!(
        declined("permessage-deflate client_max_window_bits"),
        NegotiationError::Syntax(_)
    ));
    assert!(matches!(
        declined("permessage-deflate; server_max_window_bits=\"10"),
        NegotiationError::Syntax(_)
    ));
    assert_eq!(
        declined("x-webkit-deflate-frame"),
        NegotiationError::OtherExtension("x-webkit-deflate-frame".into())
    );
}

#[test]
fn disabled_config_declines_everything() {
    let config = DeflateConfig {
        enabled: false,
        ..DeflateConfig::default()
    };
    assert_eq!(
        config.accept("permessage-deflate"),
        Err(NegotiationError::Disabled)
    );
    assert_eq!(negotiate(&["permessage-deflate"], &config), None);
}

#[test]
fn offer_parser_reports_what_was_offered() {
    let offer = DeflateOffer::parse(
        "permessage-deflate; client_max_window_bits; server_max_window_bits=15",
    )
    .unwrap();
    assert_eq!(offer.client_max_window_bits, Some(None));
    assert_eq!(offer.server_max_window_bits, Some(15));
    assert!(!offer.server_no_context_takeover);
}

// ---- client side ----

#[test]
fn client_offers_follow_the_config() {
    assert_eq!(
        client_offer(&DeflateConfig::default()),
        "permessage-deflate; client_max_window_bits"
    );
    let config = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 10,
        client_max_window_bits: 9,
        ..DeflateConfig::default()
    };
    assert_eq!(
        client_offer(&config),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=9"
    );
}

#[test]
fn client_accepts_valid_answers() {
    let config = DeflateConfig::default();
    let p = accept_response("permessage-deflate", &config).unwrap();
    assert_eq!(p, DeflateParams::default());
    let p = accept_response(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=9",
        &config,
    )
    .unwrap();
    assert!(p.server_no_context_takeover && p.client_no_context_takeover);
    assert_eq!(
        (p.server_max_window_bits, p.client_max_window_bits),
        (10, 9)
    );
}

#[test]
fn client_refuses_answers_beyond_its_offer() {
    let asked = DeflateConfig {
        server_no_context_takeover: true,
        server_max_window_bits: 10,
        client_max_window_bits: 11,
        ..DeflateConfig::default()
    };
    let ok = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
    assert!(accept_response(ok, &asked).is_ok());
    for (answer, err) in [
        (
            "permessage-deflate; server_max_window_bits=10",
            NegotiationError::Missing("server_no_context_takeover".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            NegotiationError::Missing("server_max_window_bits".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
            NegotiationError::NotOffered("server_max_window_bits".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
            NegotiationError::NotOffered("client_max_window_bits".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
            NegotiationError::InvalidValue("client_max_window_bits".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; x=1",
            NegotiationError::UnknownParameter("x".into()),
        ),
    ] {
        assert_eq!(accept_response(answer, &asked), Err(err), "{answer}");
    }
}

/// The server half of a handshake: parses the client's request, negotiates, answers.
fn server_answer(request: &[u8], config: &DeflateConfig) -> (Vec<u8>, Option<DeflateParams>) {
    let mut parser = RequestParser::new(HeadLimits::default());
    let (request, _) = parser.feed(request).unwrap().unwrap();
    let upgrade = validate_upgrade(&request).unwrap();
    let accepted = negotiate(&upgrade.extensions, config);
    let extra: Vec<_> = accepted.iter().map(|a| a.header()).collect();
    let response = Response::switching_protocols(&upgrade, &extra).to_bytes();
    (response, accepted.map(|a| a.params))
}

#[cfg(feature = "deflate")]
#[test]
fn client_and_server_handshakes_agree_on_the_params() {
    let server_config = DeflateConfig {
        client_max_window_bits: 10,
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let mut client =
        ClientHandshake::new("a", "/", [3; 16], &[]).with_deflate(&DeflateConfig::default());
    let (response, server_params) = server_answer(&client.request_bytes(), &server_config);
    let used = client.feed_response(&response).unwrap().unwrap();
    assert_eq!(used, response.len());
    let server_params = server_params.unwrap();
    assert_eq!(client.deflate_params(), Some(&server_params));
    assert_eq!(server_params.client_max_window_bits, 10);
    assert!(server_params.server_no_context_takeover);
}

#[test]
fn client_without_deflate_answer_runs_uncompressed() {
    let mut client =
        ClientHandshake::new("a", "/", [3; 16], &[]).with_deflate(&DeflateConfig::default());
    let disabled = DeflateConfig {
        enabled: false,
        ..DeflateConfig::default()
    };
    let (response, params) = server_answer(&client.request_bytes(), &disabled);
    assert_eq!(params, None);
    assert!(client.feed_response(&response).unwrap().is_some());
    assert_eq!(client.deflate_params(), None);
}

fn answer_101(client: &ClientHandshake, extensions: &[&str]) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(client.key())
    );
    for e in extensions {
        text.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

#[test]
fn client_handshake_fails_on_a_bad_or_repeated_answer() {
    let fresh =
        || ClientHandshake::new("a", "/", [9; 16], &[]).with_deflate(&DeflateConfig::default());
    let mut c = fresh();
    let bad = answer_101(&c, &["permessage-deflate; client_max_window_bits"]);
    assert_eq!(
        c.feed_response(&bad),
        Err(ClientHandshakeError::InvalidDeflateResponse(invalid(
            "client_max_window_bits"
        )))
    );
    let mut c = fresh();
    let twice = answer_101(&c, &["permessage-deflate", "permessage-deflate"]);
    assert_eq!(
        c.feed_response(&twice),
        Err(ClientHandshakeError::InvalidDeflateResponse(
            NegotiationError::Repeated
        ))
    );
    // Without with_deflate, an answer naming permessage-deflate was never offered.
    let mut c = ClientHandshake::new("a", "/", [9; 16], &[]);
    let unoffered = answer_101(&c, &["permessage-deflate"]);
    assert_eq!(
        c.feed_response(&unoffered),
        Err(ClientHandshakeError::UnofferedExtension(
            "permessage-deflate".into()
        ))
    );
}
