//! `wss://` against the wss server with a test CA (made at test time with rcgen): trusted
//! through a given root store it works, echo and close included; with the default roots the
//! same server fails the TLS handshake with a clear error.

mod support;

use support::tls::{pki, ServerPki};
use support::{Ev, Recorder};
use wss_client::{codes, rustls, ClientOptions, ConnectError, Data, WebSocket};
use wss_handlers::Echo;
use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};

fn tls_echo() -> (WebServer, WebSocketServer, support::tls::TestPki, u16) {
    let pki = pki();
    let mut options = WebServerOptions::default().with_address("127.0.0.1", 0);
    options.tls = Some(pki.server_config());
    options.deflate.enabled = true;
    let web = WebServer::start(options).unwrap();
    let wss =
        WebSocketServer::new(&web, Echo, ServerOptions::default().with_path("/echo")).unwrap();
    let port = web.tls_local_addr().expect("a TLS listener").port();
    (web, wss, pki, port)
}

fn trusting(pki: &support::tls::TestPki) -> ClientOptions {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    ClientOptions::default().with_root_store(roots)
}

#[test]
fn wss_with_a_given_root_store_echoes_and_closes() {
    let (_web, _wss, pki, port) = tls_echo();
    let (rec, events) = Recorder::new();
    let big = vec![9u8; 3 << 20];
    let big2 = big.clone();
    let rec = rec.with_on_open(move |ws| {
        ws.send("over tls").unwrap();
        ws.send(big2.clone()).unwrap();
    });
    let url = format!("wss://localhost:{port}/echo");
    let ws = WebSocket::connect(&url, rec, trusting(&pki)).unwrap();
    events.expect_open();
    assert_eq!(events.message(), Data::Text("over tls".into()));
    assert_eq!(events.message(), Data::Blob(big));
    assert!(ws.extensions().is_some(), "deflate works under TLS too");
    ws.terminate(Some(3000), Some("bye"));
    assert_eq!(events.next(), Ev::Terminate(3000, None));
    events.assert_finished();
}

#[test]
fn wss_by_ip_address_checks_the_address_in_the_certificate() {
    let (_web, _wss, pki, port) = tls_echo();
    let ws =
        WebSocket::connect_blocking_with(&format!("wss://127.0.0.1:{port}/echo"), trusting(&pki))
            .unwrap();
    ws.send("by address").unwrap();
    assert_eq!(
        ws.recv(Some(support::WAIT)).unwrap(),
        Data::Text("by address".into())
    );
    assert_eq!(ws.close().map(|t| t.code), Some(1000));
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_with_a_tls_error() {
    let (_web, _wss, _pki, port) = tls_echo();
    let url = format!("wss://localhost:{port}/echo");
    // The default roots (Mozilla's) do not know the test CA.
    let (rec, events) = Recorder::new();
    let _ws = WebSocket::connect(&url, rec, ClientOptions::default()).unwrap();
    match events.next() {
        Ev::Error(e) => {
            assert_eq!(e.err_code, codes::TLS_FAILED);
            assert!(e.message.contains("certificate"), "{}", e.message);
        }
        other => panic!("expected on_error, got {other:?}"),
    }
    assert_eq!(events.next(), Ev::Terminate(1006, None));
    match WebSocket::connect_blocking(&url) {
        Err(ConnectError::Tls(why)) => assert!(why.contains("certificate"), "{why}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}
