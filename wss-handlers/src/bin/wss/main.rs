//! `wss`: runs one of the ready-made handlers on a WebSocket server, with the chat page at `/`.
//!
//! The command line is a contract scripts rely on (DESIGN.md): the flags below, one readiness
//! line `listening on ws://HOST:PORT/PATH` (`wss://` when the port speaks TLS only) on stdout
//! and nothing else there, logs on stderr, SIGINT/SIGTERM for a graceful stop with exit status
//! 0 (a second signal: at once, status 128 + signal), SIGHUP to reopen the --log file, one
//! line on stderr and a non-zero status when it cannot start. Every flag also reads
//! `WSS_<FLAG>` from the environment.
//!
//! Why this file stays whole past 700 lines: about 360 of them are its unit tests; the code is
//! one idea, the command line (the `Cli` contract) turned into a start-up `Plan` and run. The
//! parts that are their own ideas already live beside it (cluster, listen, logs, values...).

mod cluster;
mod listen;
mod logs;
mod malloc;
mod nofile;
mod values;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wss_handlers::{
    AddressFilter, Broadcast, Chat, ChatPage, Echo, IpNet, LogFile, LogReopener, Uppercase,
};
use wss_server::{
    BuiltinFile, DataType, DeflateConfig, Dispatch, OriginPolicy, ServerHandler, ServerOptions,
    WebServer, WebServerOptions, WebSocketServer,
};

/// Exit status for a command line that does not parse or asks for something inconsistent.
const EXIT_USAGE: u8 = 2;
/// Exit status for a start that failed (port in use, unreadable root, ...), or a graceful stop
/// that overran its deadline.
const EXIT_START: u8 = 1;
/// How long past `--shutdown-timeout` the watchdog lets a graceful stop run.
const WATCHDOG_SLACK: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HandlerKind {
    /// Sends every message back unchanged (text as text, binary as binary).
    Echo,
    /// Sends every message back in capitals.
    Uppercase,
    /// A chat room; the built-in page at / speaks its protocol.
    Chat,
    /// Relays every message unchanged to every other client (on every node with --redis);
    /// needs --data-type text (the default).
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DataTypeArg {
    Text,
    Blob,
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
    Off,
}

impl LogLevel {
    fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
            LogLevel::Off => log::LevelFilter::Off,
        }
    }
}

/// A WebSocket server with 4D's WebSocketServer callback model, running a ready-made handler.
///
/// Once accepting, prints exactly one line `listening on ws://HOST:PORT/PATH` on stdout
/// (`wss://` when --cert is given without --tls-port). Logs go to stderr. SIGINT or SIGTERM
/// closes every connection with code 1001 (going away), waits at most --shutdown-timeout for
/// the peers, then exits with status 0 (with --drain-time, the closes are spread over that
/// time first); a second signal exits at once with status 128 + the signal. SIGHUP reopens the
/// --log file.
///
/// Every flag can also come from the environment as `WSS_<FLAG>` (--max-connections from
/// WSS_MAX_CONNECTIONS; lists separated by commas); a flag on the command line wins.
#[derive(Debug, Parser)]
#[command(name = "wss", version, max_term_width = 100)]
struct Cli {
    /// Handler that answers WebSocket connections.
    #[arg(long, env = "WSS_HANDLER", value_enum, value_name = "NAME")]
    handler: HandlerKind,

    /// Address or host name to listen on.
    #[arg(long, env = "WSS_HOST", default_value = "127.0.0.1")]
    host: String,

    /// TCP port to listen on; 0 picks a free one (read it from the readiness line).
    #[arg(long, env = "WSS_PORT", default_value_t = 8080)]
    port: u16,

    /// URL path of the WebSocket endpoint (upgrade requests elsewhere get 404).
    #[arg(long, env = "WSS_PATH", default_value = "/ws")]
    path: String,

    /// How messages reach the handler: text (text frames as text, binary as bytes), blob (all
    /// as bytes) or object (JSON; a frame that is not JSON is reported and, for the chat,
    /// answered with an error). Default: text (the chat reads JSON and plain text from it).
    #[arg(long, env = "WSS_DATA_TYPE", value_enum, value_name = "TYPE")]
    data_type: Option<DataTypeArg>,

    /// Folder served to plain HTTP GET requests instead of the built-in chat page.
    #[arg(long, env = "WSS_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    /// Only clients from this IP or CIDR network may connect (repeatable; IPv4 or IPv6).
    /// Others get 403. Without it, every address may connect.
    #[arg(long, env = "WSS_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    allow: Vec<String>,

    /// Append one line per server and connection event to FILE (reopened after rotation).
    #[arg(long, env = "WSS_LOG", value_name = "FILE")]
    log: Option<PathBuf>,

    /// Network threads; 0 uses one per CPU core.
    #[arg(long, env = "WSS_THREADS", value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Which threads run the handler's callbacks: `worker` (one thread per server, the
    /// default: a slow callback never delays network work) or `loop` (the network thread that
    /// owns the connection: no hand-over, and every core, but a slow callback stalls its
    /// loop's other connections).
    #[arg(
        long,
        env = "WSS_DISPATCH",
        value_name = "MODE",
        default_value = "worker"
    )]
    dispatch: Dispatch,

    /// Largest message accepted, in bytes; bigger ones close the connection with 1009.
    #[arg(long, env = "WSS_MAX_MESSAGE_SIZE", value_name = "BYTES", default_value_t = 16 << 20)]
    max_message_size: usize,

    /// On SIGINT/SIGTERM, how long to wait for peers to answer the close frame before
    /// dropping them (at most 86400).
    #[arg(long, env = "WSS_SHUTDOWN_TIMEOUT", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    shutdown_timeout: u64,

    /// permessage-deflate compression (RFC 7692): "on" accepts it from clients that offer it
    /// (every browser does), "off" never negotiates it.
    #[arg(
        long,
        env = "WSS_DEFLATE",
        value_enum,
        value_name = "on|off",
        default_value = "on"
    )]
    deflate: OnOff,

    /// With --deflate on, messages shorter than this many bytes go out uncompressed (on tiny
    /// messages deflate costs CPU and saves nothing). Refused with --deflate off.
    /// [default: 64]
    #[arg(long, env = "WSS_DEFLATE_THRESHOLD", value_name = "BYTES")]
    deflate_threshold: Option<usize>,

    /// PEM certificate chain (leaf first, then intermediates) to serve https:// and wss://.
    /// Needs --key. An unreadable file, an expired certificate or a key that does not match
    /// stops the start.
    #[arg(long, env = "WSS_CERT", value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --cert. Needs --cert.
    #[arg(long, env = "WSS_KEY", value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,

    /// With --cert: speak TLS on this port and keep --port plain (0 picks a free port; its
    /// address is logged on stderr as `listening on wss://HOST:PORT/PATH`). Without it,
    /// --port speaks TLS only.
    #[arg(long, env = "WSS_TLS_PORT", value_name = "PORT", requires = "cert")]
    tls_port: Option<u16>,

    /// A browser origin allowed to connect besides the page's own (repeatable; "*" allows
    /// any). Compared on scheme, host and port, e.g. http://localhost:3000.
    #[arg(
        long,
        env = "WSS_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    allow_origin: Vec<String>,

    /// A host name the server answers to (repeatable; "*" allows any; "*.example.com" its
    /// subdomains). localhost, *.localhost, 127.0.0.1 and ::1 always are. Without it: only
    /// those when --host is a loopback address, any name otherwise. Other names get 403
    /// (DNS rebinding protection).
    #[arg(
        long,
        env = "WSS_ALLOW_HOST",
        value_name = "NAME",
        value_delimiter = ','
    )]
    allow_host: Vec<String>,

    /// Most simultaneous connections; past it new sockets get 503. Default: 10000.
    #[arg(long, env = "WSS_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,

    /// Most simultaneous connections from one IP address (at least 1); past it new sockets
    /// from that address get 503. Default: no limit (clients behind one NAT or proxy share
    /// an address).
    #[arg(long, env = "WSS_MAX_PER_ADDRESS", value_name = "N", value_parser = values::positive)]
    max_per_address: Option<usize>,

    /// Most connections still in their handshake (TLS handshake and first request) at once
    /// (at least 1); past it new sockets get 503. Default: only --max-connections bounds them.
    #[arg(long, env = "WSS_MAX_PENDING_HANDSHAKES", value_name = "N", value_parser = values::positive)]
    max_pending_handshakes: Option<usize>,

    /// Time a client gets to complete its handshake (TLS included), in seconds (fractions
    /// allowed); past it the socket is closed.
    #[arg(long, env = "WSS_HANDSHAKE_TIMEOUT", value_name = "SECS", default_value = "10", value_parser = values::positive_secs)]
    handshake_timeout: Duration,

    /// A connection silent this long is dropped (a ping goes out at half of it), in seconds;
    /// 0 turns it off.
    #[arg(long, env = "WSS_IDLE_TIMEOUT", value_name = "SECS", default_value = "120", value_parser = values::secs)]
    idle_timeout: Duration,

    /// How long a peer gets to answer our close frame before the socket is dropped, in
    /// seconds.
    #[arg(long, env = "WSS_CLOSE_TIMEOUT", value_name = "SECS", default_value = "5", value_parser = values::positive_secs)]
    close_timeout: Duration,

    /// Bytes queued for one connection and not yet written (a slow reader); past it that
    /// connection is dropped, never the process.
    #[arg(long, env = "WSS_MAX_OUTGOING", value_name = "BYTES", default_value_t = 16 << 20,
          value_parser = values::positive)]
    max_outgoing: usize,

    /// Join a cluster: share broadcasts and presence (the chat's users) with every wss node
    /// using this Redis server (redis://HOST:PORT). Fails at start when Redis cannot be
    /// reached. Needs the `redis` cargo feature (on by default).
    #[arg(long, env = "WSS_REDIS", value_name = "URL")]
    redis: Option<String>,

    /// This node's name in the cluster (1 to 64 visible ASCII characters, unique among the
    /// live nodes). Needs --redis. Default: a random one.
    #[arg(long, env = "WSS_NODE_ID", value_name = "ID")]
    node_id: Option<String>,

    /// Serve /metrics (Prometheus text format), /healthz and /readyz on this address:
    /// HOST:PORT, or a bare PORT on 127.0.0.1 (0 picks a free port; the address is logged on
    /// stderr as `metrics on http://HOST:PORT/metrics`). Default: off.
    #[arg(long, env = "WSS_METRICS", value_name = "HOST:PORT", value_parser = values::metrics_addr)]
    metrics: Option<std::net::SocketAddr>,

    /// Also answer PATH/healthz and PATH/readyz on the main port ("/" gives /healthz and
    /// /readyz), with no cookie. Default: only on the --metrics listener.
    #[arg(long, env = "WSS_HEALTH_PATH", value_name = "PATH", value_parser = values::url_path)]
    health_path: Option<String>,

    /// On SIGINT/SIGTERM, close the WebSockets (1001) one by one, evenly over this many
    /// seconds, so clients do not reconnect all at once; --shutdown-timeout runs after it.
    /// 0 closes them all at once.
    #[arg(long, env = "WSS_DRAIN_TIME", value_name = "SECS", default_value = "0", value_parser = values::secs)]
    drain_time: Duration,

    /// Format of the log on stderr: text, or json (one object per line: ts, level, msg,
    /// target, and conn, path, remote, code where they apply).
    #[arg(
        long,
        env = "WSS_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT",
        default_value = "text"
    )]
    log_format: logs::LogFormat,

    /// Log level on stderr; overrides RUST_LOG (which may hold a finer filter).
    /// Default: RUST_LOG if set, else info.
    #[arg(
        long,
        env = "WSS_LOG_LEVEL",
        value_enum,
        value_name = "LEVEL",
        ignore_case = true
    )]
    log_level: Option<LogLevel>,
}

/// Why the command line or the start failed; each renders as one line.
#[derive(Debug)]
enum StartError {
    /// A flag whose cargo feature this binary was built without.
    #[cfg_attr(feature = "redis", allow(dead_code))]
    NotBuilt {
        flag: &'static str,
        feature: &'static str,
    },
    /// A flag value that does not make sense.
    Invalid(String),
    /// Starting the web server or the WebSocket server failed.
    Start(String),
}

impl StartError {
    fn exit_code(&self) -> u8 {
        match self {
            StartError::NotBuilt { .. } | StartError::Invalid(_) => EXIT_USAGE,
            StartError::Start(_) => EXIT_START,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::NotBuilt { flag, feature } => write!(
                f,
                "{flag} is not available: this wss was built without the `{feature}` cargo \
                 feature (rebuild with --features {feature})"
            ),
            StartError::Invalid(msg) | StartError::Start(msg) => f.write_str(msg),
        }
    }
}

/// `--deflate` and `--deflate-threshold` as the web server's setting (off: the server's
/// default, which negotiates nothing).
fn deflate(cli: &Cli) -> Result<Option<DeflateConfig>, StartError> {
    match (cli.deflate, cli.deflate_threshold) {
        (OnOff::Off, Some(_)) => Err(StartError::Invalid(
            "--deflate-threshold applies to compressed messages and needs --deflate on".into(),
        )),
        (OnOff::Off, None) => Ok(None),
        (OnOff::On, threshold) => {
            let defaults = DeflateConfig::default();
            Ok(Some(DeflateConfig {
                threshold: threshold.unwrap_or(defaults.threshold),
                ..defaults
            }))
        }
    }
}

fn parse_allow(list: &[String]) -> Result<Vec<IpNet>, StartError> {
    list.iter()
        .map(|s| {
            s.parse()
                .map_err(|e| StartError::Invalid(format!("--allow: {e}")))
        })
        .collect()
}

fn check_root(root: &std::path::Path) -> Result<(), StartError> {
    match std::fs::read_dir(root) {
        Ok(_) => Ok(()),
        Err(e) => Err(StartError::Start(format!(
            "cannot read --root {}: {e}",
            root.display()
        ))),
    }
}

/// Everything the generic start needs besides the handler.
struct Plan {
    web: WebServerOptions,
    server: ServerOptions,
    allow: Vec<IpNet>,
    log: Option<PathBuf>,
    shutdown_timeout: Duration,
    drain_time: Duration,
}

fn plan(cli: &Cli) -> Result<Plan, StartError> {
    if !cli.path.starts_with('/') {
        return Err(StartError::Invalid(format!(
            "--path {:?} must start with '/'",
            cli.path
        )));
    }
    let allow = parse_allow(&cli.allow)?;
    let mut web = WebServerOptions::default().with_address(cli.host.clone(), cli.port);
    web.threads = cli.threads;
    web.max_message_size = cli.max_message_size;
    if let Some(n) = cli.max_connections {
        web.max_connections = n;
    }
    web.max_per_address = cli.max_per_address;
    web.max_pending_handshakes = cli.max_pending_handshakes;
    web.handshake_timeout = cli.handshake_timeout;
    web.idle_timeout = Some(cli.idle_timeout).filter(|t| !t.is_zero());
    web.close_timeout = cli.close_timeout;
    web.max_outgoing = cli.max_outgoing;
    web.allowed_hosts.clone_from(&cli.allow_host);
    web.metrics = cli.metrics;
    web.health_path.clone_from(&cli.health_path);
    web.drain_time = cli.drain_time;
    if let Some(config) = deflate(cli)? {
        web = web.with_deflate(config);
    }
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        listen::apply_tls(&mut web, cert, key, cli.tls_port)?;
    }
    // The chat page and its socket share a session, so a name given once is remembered.
    web.scalable_session = true;
    match &cli.root {
        Some(root) => {
            check_root(root)?;
            web.root = Some(root.clone());
        }
        None => {
            let page = ChatPage::new(&cli.path);
            for asset in page.assets() {
                let mut file = BuiltinFile::new(asset.content_type, asset.body.clone());
                file.headers = asset.headers();
                web.files.insert(asset.path.to_string(), file.clone());
                if asset.path == "/index.html" {
                    web.files.insert("/".to_string(), file);
                }
            }
        }
    }
    let data_type = match (cli.data_type, cli.handler) {
        (Some(DataTypeArg::Text), _) => DataType::Text,
        (Some(DataTypeArg::Blob), _) => DataType::Blob,
        (Some(DataTypeArg::Object), _) => DataType::Object,
        // Also for the chat: it parses JSON frames itself and takes plain text as a message,
        // so a terminal client can chat (issue 20 item 8).
        (None, _) => DataType::Text,
    };
    if cli.handler == HandlerKind::Broadcast && data_type != DataType::Text {
        // Blob would turn text into binary frames and object would re-serialise JSON: the
        // relay promises the received frame unchanged.
        return Err(StartError::Invalid(
            "--handler broadcast relays frames unchanged and needs --data-type text".into(),
        ));
    }
    let mut server = ServerOptions::default()
        .with_path(cli.path.clone())
        .with_data_type(data_type)
        .with_dispatch(cli.dispatch);
    if !cli.allow_origin.is_empty() {
        server = server.with_origins(OriginPolicy::allow(cli.allow_origin.iter().cloned()));
    }
    Ok(Plan {
        web,
        server,
        allow,
        log: cli.log.clone(),
        shutdown_timeout: Duration::from_secs(cli.shutdown_timeout),
        drain_time: cli.drain_time,
    })
}

/// Wraps `handler` in the address filter and, with `--log`, the log file, then starts.
fn start<H: ServerHandler>(handler: H, plan: Plan) -> Result<Started, StartError> {
    let filtered = AddressFilter::new(handler).allow_all(plan.allow);
    match plan.log {
        Some(path) => {
            let logged = LogFile::open(&path, filtered).map_err(|e| {
                StartError::Start(format!("cannot open --log {}: {e}", path.display()))
            })?;
            let reopen = logged.reopener();
            let (web, wss) = with_event_log(logged, plan.web, plan.server)?;
            Ok((web, wss, Some(reopen)))
        }
        None => {
            let (web, wss) = with_event_log(filtered, plan.web, plan.server)?;
            Ok((web, wss, None))
        }
    }
}

/// The servers, and what SIGHUP reopens (the `--log` file).
type Started = (WebServer, WebSocketServer, Option<LogReopener>);

/// Starts `handler`, wrapped in the connection-event log when debug records are kept (so at
/// the default level no callback goes through it).
fn with_event_log<H: ServerHandler>(
    handler: H,
    web: WebServerOptions,
    server: ServerOptions,
) -> Result<(WebServer, WebSocketServer), StartError> {
    if log::log_enabled!(target: "wss::event", log::Level::Debug) {
        start_server(logs::EventLog::new(handler), web, server)
    } else {
        start_server(handler, web, server)
    }
}

fn start_server<H: ServerHandler>(
    handler: H,
    web_options: WebServerOptions,
    options: ServerOptions,
) -> Result<(WebServer, WebSocketServer), StartError> {
    let where_ = format!("{}:{}", web_options.host, web_options.port);
    let web = WebServer::start(web_options)
        .map_err(|e| StartError::Start(format!("cannot start on {where_}: {e}")))?;
    match WebSocketServer::new(&web, handler, options) {
        Ok(wss) => Ok((web, wss)),
        Err(e) => {
            web.stop();
            Err(StartError::Start(format!(
                "cannot start the WebSocket server: {e}"
            )))
        }
    }
}

fn fail(err: &StartError) -> ExitCode {
    // One line whatever a lower layer put in its message.
    let line = err.to_string().replace(['\r', '\n'], " ");
    eprintln!("wss: error: {line}");
    ExitCode::from(err.exit_code())
}

fn main() -> ExitCode {
    // Before any thread starts: the allocator's settings are process-wide.
    if !malloc::tune() {
        log::debug!("glibc refused the malloc thresholds; running with its defaults");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output on stdout, status 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Keep start errors to one line: clap's first paragraph, without its usage block.
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!("wss: error: {first} (see wss --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    logs::init(cli.log_level, cli.log_format);
    nofile::raise_and_log();

    // Registered before the server starts so an early signal is not fatal by default action.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => return fail(&StartError::Start(format!("cannot handle signals: {e}"))),
    };

    let mut plan = match plan(&cli) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    // Before binding: a node that cannot reach its cluster must not take traffic.
    let cluster = match cluster::join(cli.redis.as_deref(), cli.node_id.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if let Some(cluster) = &cluster {
        plan.web = plan.web.with_broker(cluster.broker());
    }
    let shutdown_timeout = plan.shutdown_timeout;
    let drain_time = plan.drain_time;
    let started = match cli.handler {
        HandlerKind::Echo => start(Echo, plan),
        HandlerKind::Uppercase => start(Uppercase, plan),
        HandlerKind::Chat => start(Chat::new(), plan),
        HandlerKind::Broadcast => start(Broadcast, plan),
    };
    let (web, wss, reopen) = match started {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Some(cluster) = &cluster {
        cluster.wait_connected();
    }

    let path = wss.path().unwrap_or("/").to_string();
    let listeners = listen::Listeners::of(&web);
    listeners.announce(&path);
    log::info!(
        "{:?} handler on {}; {}",
        cli.handler,
        listeners.urls(&path),
        match &cli.root {
            Some(root) => format!("static files from {}", root.display()),
            None => format!("chat page at {}", listeners.page_urls()),
        }
    );

    if let Some(addr) = web.metrics_addr() {
        log::info!("metrics on http://{addr}/metrics (and /healthz, /readyz)");
    }

    let mut first = 0;
    for signal in signals.forever() {
        if signal == SIGHUP {
            // logrotate's postrotate: the next line goes to a file opened afresh.
            match &reopen {
                Some(r) => {
                    r.reopen();
                    log::info!("SIGHUP: the --log file is reopened");
                }
                None => log::info!("SIGHUP: no --log file to reopen; ignored"),
            }
            continue;
        }
        first = signal;
        break;
    }
    log::info!(
        "signal {first} received: closing connections (1001) over {:.1}s, then at most {}s",
        drain_time.as_secs_f64(),
        shutdown_timeout.as_secs()
    );
    // A second signal means "now": the OS closes the sockets (peers see 1006). The status
    // says so (128 + the signal, as a shell reports a process killed by it), so a supervisor
    // can tell a forced stop from a clean one.
    let handle = signals.handle();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal != SIGHUP {
                log::warn!("second signal: exiting at once");
                std::process::exit(128 + signal);
            }
        }
    });
    // The server bounds its own wait by the timeout; this only guards against a bug there,
    // so a supervisor never waits on a stuck process. Exiting 1 makes such a bug visible.
    let grace = shutdown_timeout
        .saturating_add(drain_time)
        .saturating_add(WATCHDOG_SLACK);
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        log::error!(
            "graceful stop still running after {}s; exiting",
            grace.as_secs()
        );
        std::process::exit(i32::from(EXIT_START));
    });
    web.stop_gracefully(shutdown_timeout);
    if let Some(cluster) = &cluster {
        cluster.leave();
    }
    handle.close();
    log::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut full = vec!["wss"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).expect("parses")
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cli = parse(&["--handler", "echo"]);
        assert_eq!(cli.host, "127.0.0.1");
        assert_eq!(cli.port, 8080);
        assert_eq!(cli.path, "/ws");
        assert_eq!(
            cli.deflate,
            OnOff::On,
            "issue 8: on by default in the binary"
        );
        let p = plan(&cli).expect("plan");
        assert!(p.web.deflate.enabled);
        assert_eq!(p.web.deflate.threshold, DeflateConfig::default().threshold);
        assert!(p.web.tls.is_none());
        assert_eq!(p.web.max_per_address, None);
        assert_eq!(p.web.max_pending_handshakes, None);
        // The binary's defaults are the server's: a flag left out changes nothing.
        let server = WebServerOptions::default();
        assert_eq!(p.web.handshake_timeout, server.handshake_timeout);
        assert_eq!(p.web.idle_timeout, server.idle_timeout);
        assert_eq!(p.web.close_timeout, server.close_timeout);
        assert_eq!(p.web.max_outgoing, server.max_outgoing);
        assert_eq!(p.server.data_type, DataType::Text);
        assert!(p.web.scalable_session);
        assert!(p.web.files.contains_key("/"));
        assert!(p.web.files.contains_key("/chat.js"));
        let chat = plan(&parse(&["--handler", "chat"])).expect("plan");
        assert_eq!(
            chat.server.data_type,
            DataType::Text,
            "plain text chats too"
        );
        assert!(
            p.web.allowed_hosts.is_empty(),
            "the server's default Host policy"
        );
    }

    #[test]
    fn broadcast_relays_text_as_received_only() {
        let p = plan(&parse(&["--handler", "broadcast"])).expect("plan");
        assert_eq!(p.server.data_type, DataType::Text);
        let p = plan(&parse(&["--handler", "broadcast", "--data-type", "text"])).expect("plan");
        assert_eq!(p.server.data_type, DataType::Text);
        for other in ["blob", "object"] {
            let err = plan(&parse(&["--handler", "broadcast", "--data-type", other]))
                .err()
                .unwrap_or_else(|| panic!("--data-type {other} accepted"));
            assert!(matches!(err, StartError::Invalid(_)), "{err}");
            assert_eq!(err.exit_code(), EXIT_USAGE);
            assert!(err.to_string().contains("--data-type text"), "{err}");
        }
    }

    #[test]
    fn handler_is_required() {
        assert!(Cli::try_parse_from(["wss"]).is_err());
        assert!(Cli::try_parse_from(["wss", "--handler", "nope"]).is_err());
    }

    #[test]
    fn every_contract_flag_parses() {
        let cli = parse(&[
            "--handler",
            "chat",
            "--host",
            "::1",
            "--port",
            "0",
            "--path",
            "/chat",
            "--data-type",
            "text",
            "--root",
            "/tmp",
            "--allow",
            "10.0.0.0/8",
            "--allow",
            "::1",
            "--log",
            "/tmp/x.log",
            "--threads",
            "2",
            "--max-message-size",
            "1024",
            "--shutdown-timeout",
            "3",
            "--deflate",
            "on",
            "--deflate-threshold",
            "200",
            "--allow-origin",
            "http://a:1",
            "--allow-origin",
            "*",
            "--allow-host",
            "chat.example.com",
            "--allow-host",
            "*.example.org",
            "--max-connections",
            "50",
            "--max-per-address",
            "10",
            "--max-pending-handshakes",
            "7",
            "--handshake-timeout",
            "0.5",
            "--idle-timeout",
            "30",
            "--close-timeout",
            "2",
            "--max-outgoing",
            "65536",
            "--log-level",
            "debug",
            "--metrics",
            "127.0.0.1:9464",
            "--health-path",
            "/ops",
            "--drain-time",
            "2.5",
            "--log-format",
            "json",
        ]);
        let p = plan(&cli).expect("plan");
        assert_eq!(p.web.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(p.web.health_path.as_deref(), Some("/ops"));
        assert_eq!(p.web.drain_time, Duration::from_millis(2500));
        assert_eq!(p.drain_time, Duration::from_millis(2500));
        assert_eq!(cli.log_format, logs::LogFormat::Json);
        assert!(p.web.deflate.enabled);
        assert_eq!(p.web.deflate.threshold, 200);
        assert_eq!(p.web.max_per_address, Some(10));
        assert_eq!(p.web.max_pending_handshakes, Some(7));
        assert_eq!(p.web.handshake_timeout, Duration::from_millis(500));
        assert_eq!(p.web.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(p.web.close_timeout, Duration::from_secs(2));
        assert_eq!(p.web.max_outgoing, 65536);
        assert_eq!(p.allow.len(), 2);
        assert_eq!(p.web.max_connections, 50);
        assert_eq!(p.web.max_message_size, 1024);
        assert_eq!(p.server.origins.allowed, ["http://a:1", "*"]);
        assert_eq!(p.web.allowed_hosts, ["chat.example.com", "*.example.org"]);
        assert_eq!(p.shutdown_timeout, Duration::from_secs(3));
        assert!(p.web.files.is_empty(), "--root replaces the chat page");
    }

    #[test]
    fn deflate_off_negotiates_nothing_and_refuses_a_threshold() {
        let p = plan(&parse(&["--handler", "echo", "--deflate", "off"])).expect("plan");
        assert!(!p.web.deflate.enabled);
        let err = plan(&parse(&[
            "--handler",
            "echo",
            "--deflate",
            "off",
            "--deflate-threshold",
            "10",
        ]))
        .err()
        .expect("a threshold without compression");
        assert!(matches!(err, StartError::Invalid(_)));
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(err.to_string().contains("--deflate-threshold"), "{err}");
        assert!(Cli::try_parse_from(["wss", "--handler", "echo", "--deflate", "maybe"]).is_err());
    }

    #[test]
    fn help_states_the_real_deflate_threshold_default() {
        let help = Cli::command().render_long_help().to_string();
        let default = format!("[default: {}]", DeflateConfig::default().threshold);
        assert!(help.contains(&default), "--help must say {default}");
    }

    #[test]
    fn every_flag_reads_its_wss_variable_and_help_says_so() {
        let command = Cli::command();
        let help = Cli::command().render_long_help().to_string();
        let mut flags = 0;
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            flags += 1;
            let want = format!("WSS_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(want.as_str()),
                "--{long}"
            );
            assert!(
                help.contains(&format!("[env: {want}=")),
                "--help shows {want}"
            );
        }
        assert!(flags >= 31, "only {flags} flags seen");
    }

    #[test]
    fn metrics_default_to_off_and_a_bare_port_means_loopback() {
        let p = plan(&parse(&["--handler", "echo"])).expect("plan");
        assert_eq!(p.web.metrics, None);
        assert_eq!(p.web.health_path, None);
        assert_eq!(p.web.drain_time, Duration::ZERO);
        let cli = parse(&["--handler", "echo", "--metrics", "9100"]);
        assert_eq!(cli.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(cli.log_format, logs::LogFormat::Text);
        for bad in [
            &["--metrics", "nowhere"][..],
            &["--health-path", "health"],
            &["--health-path", "/h?x"],
            &["--drain-time", "-1"],
            &["--log-format", "xml"],
        ] {
            let mut full = vec!["wss", "--handler", "echo"];
            full.extend_from_slice(bad);
            assert!(Cli::try_parse_from(full).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn zero_idle_timeout_turns_it_off() {
        let p = plan(&parse(&["--handler", "echo", "--idle-timeout", "0"])).expect("plan");
        assert_eq!(p.web.idle_timeout, None);
    }

    #[test]
    fn limits_and_timeouts_refuse_zero() {
        for flag in [
            "--max-per-address",
            "--max-pending-handshakes",
            "--handshake-timeout",
            "--close-timeout",
            "--max-outgoing",
        ] {
            let err = Cli::try_parse_from(["wss", "--handler", "echo", flag, "0"])
                .err()
                .unwrap_or_else(|| panic!("{flag} 0 accepted"));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}"
            );
        }
    }

    #[test]
    fn cert_and_key_go_together_and_tls_port_needs_them() {
        for args in [
            &["--cert", "c.pem"][..],
            &["--key", "k.pem"],
            &["--tls-port", "8443"],
            &["--key", "k.pem", "--tls-port", "8443"],
        ] {
            let mut full = vec!["wss", "--handler", "echo"];
            full.extend_from_slice(args);
            let err = Cli::try_parse_from(full)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
        let cli = parse(&["--handler", "echo", "--cert", "c.pem", "--key", "k.pem"]);
        let err = plan(&cli).err().expect("no such files");
        assert!(matches!(err, StartError::Start(_)), "{err}");
        assert_eq!(err.exit_code(), EXIT_START);
    }

    #[test]
    fn log_level_accepts_the_six_levels_only() {
        for (arg, level) in [
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
            ("off", LogLevel::Off),
            ("DEBUG", LogLevel::Debug),
        ] {
            let cli = parse(&["--handler", "echo", "--log-level", arg]);
            assert_eq!(cli.log_level, Some(level), "{arg}");
        }
        assert_eq!(LogLevel::Off.filter(), log::LevelFilter::Off);
        assert_eq!(LogLevel::Trace.filter(), log::LevelFilter::Trace);
        for bad in ["verbose", "", "wss=debug", "5"] {
            let err = Cli::try_parse_from(["wss", "--handler", "echo", "--log-level", bad])
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad:?}");
        }
    }

    #[test]
    fn node_id_without_redis_is_a_usage_error() {
        let err = cluster::join(None, Some("a")).err().expect("refused");
        assert!(matches!(err, StartError::Invalid(_)));
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(err.to_string().contains("--redis"), "{err}");
        assert!(cluster::join(None, None).expect("single node").is_none());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn bad_redis_url_and_node_id_are_usage_errors() {
        let err = cluster::join(Some("http://127.0.0.1:6379"), None)
            .err()
            .expect("not a redis url");
        assert!(matches!(err, StartError::Invalid(_)), "{err}");
        assert!(err.to_string().starts_with("--redis"), "{err}");
        let err = cluster::join(Some("redis://127.0.0.1:1"), Some("has space"))
            .err()
            .expect("bad node id");
        assert!(matches!(err, StartError::Invalid(_)), "{err}");
        assert!(err.to_string().starts_with("--node-id"), "{err}");
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_says_so() {
        let err = cluster::join(Some("redis://127.0.0.1:6379"), None)
            .err()
            .expect("refused");
        assert!(matches!(err, StartError::NotBuilt { .. }));
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(err.to_string().contains("`redis` cargo feature"), "{err}");
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let err = plan(&parse(&["--handler", "echo", "--allow", "10.0.0.0/40"]))
            .err()
            .expect("bad cidr");
        assert!(matches!(err, StartError::Invalid(_)));
        assert!(!err.to_string().contains('\n'));
        let err = plan(&parse(&["--handler", "echo", "--path", "ws"]))
            .err()
            .expect("bad path");
        assert!(matches!(err, StartError::Invalid(_)));
        let err = plan(&parse(&["--handler", "echo", "--root", "/no/such/dir/x"]))
            .err()
            .expect("bad root");
        assert!(matches!(err, StartError::Start(_)));
    }
}
