//! Runs every case of an Autobahn fuzzing server (kosoku `-m fuzzingserver`) with this
//! client echoing each message back through its callbacks, then asks for the reports.
//!
//! ```sh
//! cargo run --release -p wss-client --example autobahn_client -- ws://127.0.0.1:9001
//! ```
//!
//! `scripts/autobahn-client` starts the fuzzing server, runs this and judges the report.
//! Exits 0 once the reports were asked for, 1 when the fuzzing server cannot be used.

use std::process::ExitCode;
use std::time::Duration;

use wss_client::{ClientHandler, ClientOptions, Data, DeflateConfig, MessageEvent, WebSocket};

/// The agent name the reports carry.
const AGENT: &str = "wss";

/// Longest a case may run (the slowest, 9.x with 16 MiB messages, take a few seconds).
const CASE_LIMIT: Duration = Duration::from_secs(120);

/// Sends every message back as it came: text as text, binary as binary.
struct Echo;

impl ClientHandler for Echo {
    fn on_message(&mut self, ws: &WebSocket, event: &MessageEvent) {
        let _ = ws.send(&event.data);
    }

    fn on_message_owned(&mut self, ws: &WebSocket, event: MessageEvent) {
        let _ = ws.send(event.data);
    }
}

fn options() -> ClientOptions {
    let deflate = DeflateConfig {
        // Sections 12-13 run with compression on. The fuzzing server asks a client to drop
        // its compression context (13.2, 13.5, 13.6) only when the client's offer says it
        // would (the RFC 7692 hint `client_no_context_takeover`), so the offer carries it.
        client_no_context_takeover: true,
        // kosoku 0.1.0 fails on an uncompressed message inside a compressed connection
        // ("Strings must be encoded before hashing"), so everything is compressed, as in the
        // server run (`scripts/autobahn --deflate` starts wss with --deflate-threshold 0).
        threshold: 0,
        ..DeflateConfig::default()
    };
    // Section 9 sends messages of up to 16 MiB; leave room above it, as the server run does.
    ClientOptions::default()
        .with_max_message_size(64 << 20)
        .with_deflate_config(deflate)
}

fn case_count(base: &str) -> Result<u32, String> {
    let url = format!("{base}/getCaseCount");
    let ws =
        WebSocket::connect_blocking_with(&url, options()).map_err(|e| format!("{url}: {e}"))?;
    let reply = ws
        .recv(Some(Duration::from_secs(30)))
        .map_err(|e| format!("{url}: {e}"))?;
    let count = match &reply {
        Data::Text(t) => t.trim().parse().ok(),
        _ => None,
    };
    drop(ws);
    count.ok_or_else(|| format!("{url}: not a case count: {reply:?}"))
}

fn run_case(base: &str, case: u32) -> Result<(), String> {
    let url = format!("{base}/runCase?case={case}&agent={AGENT}");
    let ws = WebSocket::connect(&url, Echo, options()).map_err(|e| format!("{url}: {e}"))?;
    if !ws.wait_terminated(Some(CASE_LIMIT)) {
        ws.terminate(None, None);
        ws.wait_terminated(Some(Duration::from_secs(10)));
        return Err(format!("case {case} still open after {CASE_LIMIT:?}"));
    }
    Ok(())
}

fn update_reports(base: &str) -> Result<(), String> {
    let url = format!("{base}/updateReports?agent={AGENT}");
    let ws =
        WebSocket::connect_blocking_with(&url, options()).map_err(|e| format!("{url}: {e}"))?;
    // The fuzzing server closes once the reports are written.
    loop {
        match ws.recv(Some(Duration::from_secs(120))) {
            Ok(_) => continue,
            Err(wss_client::RecvError::Closed { .. }) => return Ok(()),
            Err(e) => return Err(format!("{url}: {e}")),
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(base), None) = (args.next(), args.next()) else {
        eprintln!("usage: autobahn_client ws://HOST:PORT");
        return ExitCode::from(2);
    };
    let base = base.trim_end_matches('/').to_owned();
    let count = match case_count(&base) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("autobahn_client: {count} cases");
    for case in 1..=count {
        if case % 50 == 0 {
            // A sign of life in CI logs: the whole run takes minutes.
            eprintln!("autobahn_client: case {case} of {count}");
        }
        if let Err(e) = run_case(&base, case) {
            // The report shows the case as failed; carry on with the others.
            eprintln!("autobahn_client: {e}");
        }
    }
    match update_reports(&base) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}
