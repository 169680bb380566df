//! The `wss` binary over TLS (`--cert`, `--key`, `--tls-port`), with a certificate made at
//! test time: wss:// echoes, both listeners at once, the chat page over https://, and the
//! certificate problems that must stop the start with one line.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::tls::{self, path_str, PkiFiles};
use support::{connect, next_message, run_to_exit, Wss};
use tungstenite::Message;

fn with_tls<'a>(pki: &'a PkiFiles, args: &[&'a str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(pki.args());
    all
}

fn start(args: &[String]) -> Wss {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Wss::start(&refs)
}

#[test]
fn cert_and_key_make_the_port_speak_wss_only() {
    let pki = PkiFiles::new();
    let wss = start(&with_tls(&pki, &["--handler", "echo"]));
    assert_eq!(wss.scheme, "wss", "the readiness line says wss://");
    assert_eq!(wss.addr.ip(), Ipv4Addr::LOCALHOST);
    let config = pki.client_config();
    let mut ws = tls::wss_connect(wss.addr, &wss.path, &config).expect("wss:// handshake");
    ws.send(Message::text("over tls")).unwrap();
    assert_eq!(tls::next_message(&mut ws), Message::text("over tls"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(
        tls::next_message(&mut ws),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    // The same port does not speak plain WebSocket.
    assert!(
        support::try_connect(&format!("ws://{}{}", wss.addr, wss.path), &[]).is_err(),
        "a plain handshake on the TLS port must fail"
    );
}

#[test]
fn chat_page_is_served_over_https() {
    let pki = PkiFiles::new();
    let wss = start(&with_tls(&pki, &["--handler", "chat"]));
    let response = tls::https_get(wss.addr, "/", &pki.client_config());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#"<script src="/chat.js" defer></script>"#));
}

#[test]
fn tls_port_adds_a_wss_listener_next_to_the_plain_one() {
    let pki = PkiFiles::new();
    let mut wss = start(&with_tls(
        &pki,
        &["--handler", "echo", "--tls-port", "0", "--path", "/both"],
    ));
    assert_eq!(wss.scheme, "ws", "stdout keeps the plain listener's line");
    let (tls_addr, tls_path) = wss
        .stderr_tls_listener()
        .unwrap_or_else(|| panic!("no wss:// line on stderr:\n{}", wss.stderr()));
    assert_ne!(tls_addr.port(), 0, "--tls-port 0 must report the real port");
    assert_ne!(tls_addr.port(), wss.addr.port());
    assert_eq!(tls_path, "/both");

    let mut plain = connect(&wss.ws_url(""));
    let mut secure =
        tls::wss_connect(tls_addr, &tls_path, &pki.client_config()).expect("wss:// handshake");
    plain.send(Message::text("plain")).unwrap();
    secure.send(Message::text("secure")).unwrap();
    assert_eq!(next_message(&mut plain), Message::text("plain"));
    assert_eq!(tls::next_message(&mut secure), Message::text("secure"));

    support::close(plain);
    // Closed from our side too, so the stop below needs no --shutdown-timeout.
    secure.close(None).unwrap();
    while secure.read().is_ok() {}
    wss.signal("TERM");
    let status = wss.wait_exit(Duration::from_secs(10)).expect("wss exits");
    assert!(status.success(), "{status:?}\n{}", wss.stderr());
    assert_eq!(wss.extra_stdout(), "", "exactly one line on stdout");
}

fn assert_start_fails(args: &[String], needle: &str) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run_to_exit(&refs);
    assert_eq!(status.code(), Some(1), "{args:?}: a failed start\n{stderr}");
    assert_eq!(stdout, "", "{args:?}: no readiness line");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{stderr}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
}

fn tls_args(cert: &std::path::Path, key: &std::path::Path) -> Vec<String> {
    [
        "--handler",
        "echo",
        "--port",
        "0",
        "--cert",
        &path_str(cert),
        "--key",
        &path_str(key),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn expired_certificate_stops_the_start_with_one_line() {
    let pki = PkiFiles::new();
    assert_start_fails(
        &tls_args(&pki.expired_cert, &pki.expired_key),
        "not valid now",
    );
}

#[test]
fn key_of_another_certificate_stops_the_start_with_one_line() {
    let pki = PkiFiles::new();
    assert_start_fails(
        &tls_args(&pki.cert, &pki.other_key),
        "does not match the certificate",
    );
}

#[test]
fn missing_certificate_file_stops_the_start_with_one_line() {
    let pki = PkiFiles::new();
    let missing = pki.dir.0.join("missing.pem");
    assert_start_fails(&tls_args(&missing, &pki.key), &path_str(&missing));
}

#[test]
fn cert_without_key_is_a_usage_error() {
    let pki = PkiFiles::new();
    let cert = path_str(&pki.cert);
    let (status, stdout, stderr) = run_to_exit(&["--handler", "echo", "--cert", &cert]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("--key"), "{stderr}");
    let (status, _, stderr) = run_to_exit(&["--handler", "echo", "--tls-port", "0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cert"), "{stderr}");
}
