//! `wsbench-cert --out DIR`: writes a benchmark CA and a certificate for `localhost`,
//! 127.0.0.1 and ::1 signed by it, as `DIR/ca.pem` (for `wsbench --ca`), `DIR/cert.pem` (leaf
//! then CA, for the servers' `--cert`) and `DIR/key.pem` (`--key`). No openssl needed.
//! For benchmarks on loopback only: the key is written unencrypted.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wss_benches::tls;

#[derive(Parser)]
#[command(about = "Writes ca.pem, cert.pem and key.pem for TLS benchmarks on loopback")]
struct Args {
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match tls::write_bench_pki(&args.out) {
        Ok(_) => {
            println!("{}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsbench-cert: {e}");
            ExitCode::FAILURE
        }
    }
}
