//! `wsbench`: load generator for WebSocket servers on this machine. One JSON line per run on
//! stdout; exit status 1 when the run failed (the line then carries `"ok": false` and `error`).
//! Run `wsbench --help` or see benches/README.md.

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::process::ExitCode;
use std::time::Duration;
use wss_benches::deflate::MessageArgs;
use wss_benches::histogram::Histogram;
use wss_benches::window::CpuSpent;
use wss_benches::{broadcast, connect, echo, idle, tls, BenchError, Target};

#[derive(Parser)]
#[command(
    about = "Load generator for WebSocket servers on loopback; prints one JSON line per run",
    version
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args, Clone)]
struct Common {
    /// Server URL: ws://HOST:PORT/PATH, HOST in 127.0.0.0/8, localhost or bracketed ::1.
    #[arg(long)]
    url: String,
    /// Free text copied into the JSON line (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Scenario name copied into the JSON line (used by compare.sh and the report).
    #[arg(long, default_value = "")]
    scenario: String,
    /// Round number copied into the JSON line.
    #[arg(long, default_value_t = 0)]
    round: u32,
    /// Server pid: adds its CPU time (and, for idle, its memory) to the result.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Client threads, one event loop each.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Source addresses to spread connections over (127.0.0.1, .2, ...).
    #[arg(long, default_value_t = 1)]
    sources: usize,
    /// Speak TLS (as a wss:// URL does); needs --ca. echo, connect and idle only.
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA to trust for TLS (e.g. ca.pem from `wsbench-cert --out DIR`).
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
}

/// The target and, for a wss:// URL or --tls, the TLS client; a TLS run first opens one
/// connection to record what is negotiated (version, suite, group, ALPN) in the JSON line.
fn target_tls(
    common: &Common,
    out: &mut Map<String, Value>,
) -> Result<(Target, Option<tls::TlsClient>), BenchError> {
    let (target, client) = tls::parse_url(&common.url, common.tls, common.ca.as_deref())?;
    out.insert("tls".into(), json!(client.is_some()));
    if let Some(c) = &client {
        let n = tls::probe(&target, c)?;
        out.insert("tls_version".into(), json!(n.version));
        out.insert("tls_suite".into(), json!(n.suite));
        out.insert("tls_kx".into(), json!(n.kx));
        out.insert("tls_alpn".into(), json!(n.alpn));
    }
    Ok((target, client))
}

#[derive(Subcommand)]
enum Mode {
    /// C connections, S-byte messages, D in flight each; every echo checked byte for byte.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Connections (C).
        #[arg(short = 'c', long, default_value_t = 100)]
        connections: usize,
        /// Payload bytes (S).
        #[arg(short = 's', long, default_value_t = 1024)]
        size: usize,
        /// Messages in flight per connection (D).
        #[arg(short = 'd', long, default_value_t = 1)]
        in_flight: usize,
        /// Text frames (default: binary).
        #[arg(long)]
        text: bool,
        /// Stop after this many messages in all (0: time only).
        #[arg(long, default_value_t = 0)]
        messages: u64,
        #[command(flatten)]
        msg: MessageArgs,
    },
    /// Upgrade + close handshakes per second with K concurrent workers.
    Connect {
        #[command(flatten)]
        common: Common,
        /// Concurrent handshakes (K).
        #[arg(short = 'k', long, default_value_t = 32)]
        workers: usize,
        /// Stop after this many handshakes (0: time only).
        #[arg(long, default_value_t = 0)]
        handshakes: u64,
    },
    /// Holds N connections and reports the server's memory per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Connections to hold (N).
        #[arg(short = 'n', long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds to wait after the last connect before reading the server's memory.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
        /// Chat messages each connection sends and gets echoed before going quiet (the server
        /// must echo); with --deflate, makes the server allocate its compression state.
        #[arg(long, default_value_t = 0)]
        warm: u32,
        #[command(flatten)]
        msg: MessageArgs,
    },
    /// R receivers, one sender; the server must relay each message to every other client.
    Broadcast {
        #[command(flatten)]
        common: Common,
        /// Receivers (R).
        #[arg(short = 'r', long, default_value_t = 100)]
        receivers: usize,
        /// Payload bytes (at least 12).
        #[arg(short = 's', long, default_value_t = 64)]
        size: usize,
        /// Messages the sender may be ahead of the slowest receiver.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Binary frames (default: text, which chat-style servers expect).
        #[arg(long)]
        binary: bool,
        /// Stop after this many messages sent (0: time only).
        #[arg(long, default_value_t = 0)]
        messages: u64,
        /// Spread the receivers over these servers, round robin (repeatable: a cluster's
        /// nodes); the sender stays on --url. Default: all on --url.
        #[arg(long = "receiver-url", value_name = "URL")]
        receiver_urls: Vec<String>,
        /// Speak Socket.IO (Engine.IO v4 over WebSocket): join the default namespace, emit
        /// "msg" events, answer pings. A URL path of / becomes
        /// /socket.io/?EIO=4&transport=websocket.
        #[arg(long)]
        socketio: bool,
    },
}

/// Parses a broadcast URL; with Socket.IO a bare `/` path becomes Socket.IO's.
fn broadcast_target(url: &str, socketio: bool) -> Result<Target, BenchError> {
    let mut target = Target::parse(url)?;
    if socketio && target.path == "/" {
        target.path = broadcast::socketio::PATH.to_owned();
    }
    Ok(target)
}

fn secs(s: f64, what: &'static str) -> Result<Duration, BenchError> {
    if !(0.0..=600.0).contains(&s) {
        return Err(BenchError::BadArgument(what));
    }
    Ok(Duration::from_secs_f64(s))
}

fn latency_json(h: &Histogram) -> Value {
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    json!({
        "p50": us(h.quantile(0.5)),
        "p99": us(h.quantile(0.99)),
        "p999": us(h.quantile(0.999)),
        "max": us(h.max()),
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// Adds the CPU figures: seconds, and nanoseconds per unit of work (message, handshake, ...).
/// `worker_cpu_ns_per_op` is the CPU of the server's worker threads alone (wss in worker
/// dispatch): the ceiling of one WebSocket server is 1e9 / that figure operations per second.
fn cpu_json(out: &mut Map<String, Value>, cpu: CpuSpent, work: u64, elapsed: f64) {
    let CpuSpent {
        server,
        worker,
        client,
    } = cpu;
    if let Some(w) = worker {
        out.insert("worker_cpu_s".into(), json!(round(w, 3)));
        if work > 0 {
            out.insert(
                "worker_cpu_ns_per_op".into(),
                json!(round(w * 1e9 / work as f64, 1)),
            );
        }
    }
    if let Some(s) = server {
        out.insert("server_cpu_s".into(), json!(round(s, 3)));
        if work > 0 {
            out.insert(
                "server_cpu_ns_per_op".into(),
                json!(round(s * 1e9 / work as f64, 1)),
            );
        }
    }
    if let Some(c) = client {
        out.insert("client_cpu_s".into(), json!(round(c, 3)));
        if elapsed > 0.0 {
            out.insert("client_cpu_util".into(), json!(round(c / elapsed, 3)));
        }
    }
}

fn per_s(n: u64, elapsed: f64) -> f64 {
    if elapsed > 0.0 {
        round(n as f64 / elapsed, 1)
    } else {
        0.0
    }
}

fn run(mode: &Mode, out: &mut Map<String, Value>) -> Result<(), BenchError> {
    match mode {
        Mode::Echo {
            common,
            connections,
            size,
            in_flight,
            text,
            messages,
            msg,
        } => {
            let (target, tls) = target_tls(common, out)?;
            let config = echo::EchoConfig {
                target,
                connections: *connections,
                size: *size,
                in_flight: *in_flight,
                text: *text,
                threads: common.threads,
                warmup: secs(common.warmup, "warmup must be 0..=600 s")?,
                duration: secs(common.duration, "duration must be 0..=600 s")?,
                max_messages: *messages,
                sources: common.sources.max(1),
                server_pid: common.server_pid,
                tls,
            };
            out.insert("connections".into(), json!(connections));
            out.insert("size".into(), json!(size));
            out.insert("in_flight".into(), json!(in_flight));
            out.insert("kind".into(), json!(if *text { "text" } else { "binary" }));
            let (r, stats) = if msg.message_level() {
                let (r, stats) = wss_benches::deflate::run_echo(&config, msg)?;
                (r, Some(stats))
            } else {
                (echo::run(&config)?, None)
            };
            let el = r.elapsed.as_secs_f64();
            out.insert("elapsed_s".into(), json!(round(el, 3)));
            out.insert("messages".into(), json!(r.messages));
            out.insert("msg_per_s".into(), json!(per_s(r.messages, el)));
            out.insert(
                "mb_per_s".into(),
                json!(round(per_s(r.messages, el) * *size as f64 / 1e6, 2)),
            );
            out.insert("latency_us".into(), latency_json(&r.latency));
            out.insert("sent".into(), json!(r.sent));
            out.insert("received".into(), json!(r.received));
            out.insert("pings".into(), json!(r.pings));
            cpu_json(out, r.cpu, r.messages, el);
            if let Some(stats) = stats {
                stats.add_json(out);
            }
        }
        Mode::Connect {
            common,
            workers,
            handshakes,
        } => {
            let (target, tls) = target_tls(common, out)?;
            let config = connect::ConnectConfig {
                target,
                workers: *workers,
                threads: common.threads,
                warmup: secs(common.warmup, "warmup must be 0..=600 s")?,
                duration: secs(common.duration, "duration must be 0..=600 s")?,
                max_handshakes: *handshakes,
                sources: common.sources.max(1),
                server_pid: common.server_pid,
                tls,
            };
            out.insert("workers".into(), json!(workers));
            let r = connect::run(&config)?;
            let el = r.elapsed.as_secs_f64();
            out.insert("elapsed_s".into(), json!(round(el, 3)));
            out.insert("handshakes".into(), json!(r.handshakes));
            out.insert("handshakes_per_s".into(), json!(per_s(r.handshakes, el)));
            out.insert("latency_us".into(), latency_json(&r.latency));
            out.insert("failures".into(), json!(r.failures));
            if let Some(e) = &r.first_failure {
                out.insert("first_failure".into(), json!(e.to_string()));
            }
            cpu_json(out, r.cpu, r.handshakes, el);
        }
        Mode::Idle {
            common,
            connections,
            settle,
            warm,
            msg,
        } => {
            let (target, tls) = target_tls(common, out)?;
            let config = idle::IdleConfig {
                target,
                connections: *connections,
                settle: secs(*settle, "settle must be 0..=600 s")?,
                sources: common.sources,
                server_pid: common.server_pid,
            };
            out.insert("connections".into(), json!(connections));
            let extra = idle::IdleDeflate {
                offer: msg.offer(),
                warm: *warm,
                seed: msg.seed,
            };
            let r = match &tls {
                Some(client) if extra.offer.is_none() && *warm == 0 => {
                    idle::run_over(&config, client)?
                }
                Some(_) => {
                    return Err(BenchError::BadArgument(
                        "idle: deflate or warm-up over TLS is not supported",
                    ))
                }
                None => idle::run_with(&config, &extra)?,
            };
            if extra.offer.is_some() || *warm > 0 {
                r.add_deflate_json(out);
            }
            out.insert("connected".into(), json!(r.connected));
            out.insert("alive".into(), json!(r.alive));
            out.insert(
                "connect_s".into(),
                json!(round(r.connect_time.as_secs_f64(), 3)),
            );
            out.insert("sources".into(), json!(r.sources));
            if let (Some(before), Some(after)) = (r.rss_before_kib, r.rss_after_kib) {
                out.insert("server_rss_before_kib".into(), json!(before));
                out.insert("server_rss_after_kib".into(), json!(after));
                if r.connected > 0 {
                    let per = (after as f64 - before as f64) / r.connected as f64;
                    out.insert("rss_per_conn_kib".into(), json!(round(per, 3)));
                }
            }
            if r.alive < r.connected {
                return Err(BenchError::Lost((r.connected - r.alive) as u64));
            }
        }
        Mode::Broadcast {
            common,
            receivers,
            size,
            window,
            binary,
            messages,
            receiver_urls,
            socketio,
        } => {
            if common.tls || common.ca.is_some() {
                return Err(BenchError::BadArgument("broadcast does not speak TLS"));
            }
            let topology = broadcast::Topology {
                receivers: receiver_urls
                    .iter()
                    .map(|u| broadcast_target(u, *socketio))
                    .collect::<Result<_, _>>()?,
                socketio: *socketio,
            };
            if *socketio && *binary {
                return Err(BenchError::BadArgument(
                    "--socketio sends text events; --binary does not apply",
                ));
            }
            let config = broadcast::BroadcastConfig {
                target: broadcast_target(&common.url, *socketio)?,
                receivers: *receivers,
                size: *size,
                window: *window,
                text: !*binary,
                threads: common.threads,
                warmup: secs(common.warmup, "warmup must be 0..=600 s")?,
                duration: secs(common.duration, "duration must be 0..=600 s")?,
                max_messages: *messages,
                sources: common.sources.max(1),
                server_pid: common.server_pid,
            };
            out.insert("receivers".into(), json!(receivers));
            out.insert("size".into(), json!(size));
            out.insert("window".into(), json!(window));
            out.insert("receiver_urls".into(), json!(receiver_urls));
            out.insert("socketio".into(), json!(socketio));
            let r = broadcast::run_with(&config, &topology)?;
            let el = r.elapsed.as_secs_f64();
            out.insert("elapsed_s".into(), json!(round(el, 3)));
            out.insert("sent".into(), json!(r.sent));
            out.insert("deliveries".into(), json!(r.deliveries));
            out.insert("deliveries_per_s".into(), json!(per_s(r.deliveries, el)));
            out.insert("latency_us".into(), json!(latency_json(&r.latency)));
            out.insert("foreign".into(), json!(r.foreign));
            cpu_json(out, r.cpu, r.deliveries, el);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, common) = match &cli.mode {
        Mode::Echo { common, .. } => ("echo", common),
        Mode::Connect { common, .. } => ("connect", common),
        Mode::Idle { common, .. } => ("idle", common),
        Mode::Broadcast { common, .. } => ("broadcast", common),
    };
    let mut out = Map::new();
    out.insert("tool".into(), json!("wsbench"));
    out.insert("mode".into(), json!(name));
    out.insert("label".into(), json!(common.label));
    out.insert("scenario".into(), json!(common.scenario));
    out.insert("round".into(), json!(common.round));
    out.insert("url".into(), json!(common.url));
    out.insert("threads".into(), json!(common.threads));
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out.insert("unix_time".into(), json!(unix));
    let result = run(&cli.mode, &mut out);
    out.insert("ok".into(), json!(result.is_ok()));
    if let Err(e) = &result {
        out.insert("error".into(), json!(e.to_string()));
    }
    println!("{}", Value::Object(out));
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
