//! tokio-tungstenite peer server: `tt-echo [--host H] [--port P] [--threads N]
//! [--mode echo|broadcast] [--cert FILE --key FILE]`. Prints `listening on ws://HOST:PORT/`
//! (`wss://` with a certificate) once accepting.

use clap::{Parser, ValueEnum};
use std::io::Write;
use std::process::ExitCode;
use wss_benches::peers::{self, Mode};
use wss_benches::tls;

#[derive(Parser)]
#[command(about = "tokio-tungstenite echo/broadcast server to compare wss with")]
struct Args {
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Runtime threads: 1 is tokio's current-thread scheduler.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// echo: back to the sender; broadcast: to every other client.
    #[arg(long, value_enum, default_value_t = PeerMode::Echo)]
    mode: PeerMode,
    /// PEM certificate chain: serve wss:// with tokio-rustls (the same rustls configuration
    /// as the wss binary: ring, TLS 1.2 and 1.3, default suites, ALPN http/1.1). Needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PeerMode {
    Echo,
    Broadcast,
}

fn main() -> ExitCode {
    let args = Args::parse();
    wss_benches::sys::raise_nofile(1 << 20);
    let mode = match args.mode {
        PeerMode::Echo => Mode::Echo,
        PeerMode::Broadcast => Mode::Broadcast,
    };
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => match tls::server_config_from_pem_files(cert, key) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("tt-echo: --cert/--key: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let (listener, mut line) = match peers::bind(&args.host, args.port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tt-echo: bind {}:{}: {e}", args.host, args.port);
            return ExitCode::FAILURE;
        }
    };
    if tls.is_some() {
        line = line.replacen("ws://", "wss://", 1);
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    match peers::tt::serve_tls(listener, mode, args.threads, tls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tt-echo: {e}");
            ExitCode::FAILURE
        }
    }
}
