//! The metrics listener: `/metrics` in the Prometheus text format, `/healthz` and `/readyz`,
//! on an address of its own ([`WebServerOptions::metrics`](crate::WebServerOptions::metrics)).
//!
//! A separate listener keeps the numbers off the public port (no route there can leak them)
//! and keeps a scrape from ever competing with WebSocket traffic on the network threads. It
//! is one thread serving one request at a time with short timeouts: its clients are a
//! Prometheus server and a few probes, on loopback or a private network.
//!
//! The text is written by `prometheus-client`, the Prometheus project's own Rust client: the
//! server's counters are read on each scrape (a [`Collector`]), never mirrored into metric
//! objects on the hot path.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use wss_proto::handshake::Response;

use crate::broker::BROKER_LAG_BUCKETS;
use crate::health::Health;
use crate::stats::{WebServerStats, CALLBACK_BUCKETS};
use crate::web::WebInner;

/// Longest a client may take to send its request (or read the answer).
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read; longer ones get 431.
const MAX_HEAD: usize = 8 * 1024;
/// The text format `prometheus_client::encoding::prometheus_text` writes.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The running listener; stopped (and its port freed) by [`stop`](Self::stop).
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves from a thread of its own.
    pub(crate) fn start(
        addr: SocketAddr,
        web: Weak<WebInner>,
        health: Arc<Health>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(WebCollector { web }));
        registry.register_collector(Box::new(ProcessCollector {
            started: SystemTime::now(),
        }));
        let state = Serve {
            registry,
            health,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("wss-metrics".into())
            .spawn(move || state.run(listener))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address bound (the real port when 0 was asked).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the thread (at most one request's timeouts).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocking accept; whether it connects or not, the flag is seen next.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            // The last handle to the web server may be dropped by a scrape on that very
            // thread: it then ends on its own, after this request.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Serve {
    registry: Registry,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
}

impl Serve {
    fn run(self, listener: TcpListener) {
        for stream in listener.incoming() {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            match stream {
                Ok(s) => {
                    if let Err(e) = self.serve(s) {
                        log::debug!("metrics request failed: {e}");
                    }
                }
                Err(e) => {
                    log::warn!("metrics listener: accept failed: {e}");
                    // Out of descriptors, say: do not spin.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn serve(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let response = match read_head(&mut stream)? {
            Head::TooLarge => Response::error(431, "Request Header Fields Too Large"),
            Head::Bad => Response::error(400, "Bad Request"),
            Head::Request { method, path } => self.answer(&method, &path),
        };
        // One request per connection (error responses say so already).
        let mut response = response;
        if !response
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
        {
            response = response.header("Connection", "close");
        }
        let mut bytes = Vec::new();
        response.encode(&mut bytes);
        stream.write_all(&bytes)?;
        stream.flush()
    }

    fn answer(&self, method: &str, path: &str) -> Response {
        // The query (`?name[]=...` from some tools) does not change the answer.
        let path = path.split('?').next().unwrap_or(path);
        if let Some(probe) = Health::probe(path) {
            return self.health.respond(probe, method);
        }
        if path != "/metrics" {
            let mut r = Response::new(404).header("Content-Type", "text/plain; charset=utf-8");
            r.body = b"Not Found: try /metrics, /healthz or /readyz\n".to_vec();
            return r;
        }
        if method != "GET" && method != "HEAD" {
            return crate::health::method_not_allowed();
        }
        let mut text = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            log::error!("encoding metrics failed: {e}");
            return Response::error(500, "Internal Server Error");
        }
        let mut r = Response::new(200).header("Content-Type", CONTENT_TYPE);
        if method == "HEAD" {
            r = r.header("Content-Length", &text.len().to_string());
        } else {
            r.body = text.into_bytes();
        }
        r
    }
}

enum Head {
    Request { method: String, path: String },
    Bad,
    TooLarge,
}

/// Reads one request head (the body of a GET is ignored) and parses it with httparse.
fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Ok(Head::TooLarge);
        }
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(Head::Bad);
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(match (req.method, req.path) {
                    (Some(m), Some(p)) => Head::Request {
                        method: m.to_owned(),
                        path: p.to_owned(),
                    },
                    _ => Head::Bad,
                });
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Ok(Head::Bad),
        }
    }
}

/// Reads the web server's stats on each scrape.
struct WebCollector {
    web: Weak<WebInner>,
}

impl std::fmt::Debug for WebCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebCollector").finish_non_exhaustive()
    }
}

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn labels<const N: usize>(pairs: [(&'static str, String); N]) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))
        .collect()
}

fn path_label(path: Option<&str>) -> String {
    path.unwrap_or("*").to_owned()
}

/// One metric family: its name, help, type, and its series.
fn family<V: Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: &[(Labels, V)],
    write: impl Fn(&mut MetricEncoder, V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (l, v) in series {
        let mut s = m.encode_family(l)?;
        write(&mut s, *v)?;
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, MetricType::Counter, series, |m, v| {
        m.encode_counter::<NoLabelSet, _, f64>(&v, None)
    })
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, MetricType::Gauge, series, |m, v| {
        m.encode_gauge(&v)
    })
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    gauges(enc, name, help, &[(Vec::new(), v)])
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    counters(enc, name, help, &[(Vec::new(), v)])
}

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Collector for WebCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(web) = self.web.upgrade() else {
            return Ok(());
        };
        let s: WebServerStats = web.stats();
        let net = &s.net;
        let servers = &s.servers;
        let per_server = |f: &dyn Fn(&crate::ServerStats) -> i64| -> Vec<(Labels, i64)> {
            servers
                .iter()
                .map(|x| (labels([("path", path_label(x.path.as_deref()))]), f(x)))
                .collect()
        };
        gauges(
            &mut enc,
            "wss_connections",
            "WebSocket connections open now, by server path.",
            &per_server(&|x| to_i64(x.connections)),
        )?;
        counters(
            &mut enc,
            "wss_connections_opened",
            "WebSocket connections that reached on_open, by server path.",
            &servers
                .iter()
                .map(|x| (labels([("path", path_label(x.path.as_deref()))]), x.opened))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut enc,
            "wss_tcp_connections",
            "TCP connections open now (every phase, every listener).",
            to_i64(net.connections),
        )?;
        let mut handshakes = Vec::new();
        for x in servers {
            let p = path_label(x.path.as_deref());
            handshakes.push((
                labels([("path", p.clone()), ("result", "accepted".into())]),
                x.accepted,
            ));
            handshakes.push((
                labels([("path", p), ("result", "refused_by_handler".into())]),
                x.refused_by_handler,
            ));
        }
        for (result, n) in s.handshakes.iter() {
            if result != "accepted" && result != "refused_by_handler" {
                handshakes.push((
                    labels([("path", String::new()), ("result", result.into())]),
                    n,
                ));
            }
        }
        counters(
            &mut enc,
            "wss_handshakes",
            "Upgrade requests by outcome (path: the server that decided, empty when refused \
             before routing).",
            &handshakes,
        )?;
        let mut received = Vec::new();
        for x in servers {
            let p = path_label(x.path.as_deref());
            received.push((
                labels([("path", p.clone()), ("type", "text".into())]),
                x.messages_received.text,
            ));
            received.push((
                labels([("path", p), ("type", "binary".into())]),
                x.messages_received.binary,
            ));
        }
        counters(
            &mut enc,
            "wss_messages_received",
            "Messages handed to on_message, by server path and frame type.",
            &received,
        )?;
        counters(
            &mut enc,
            "wss_messages_sent",
            "Messages queued to connections, by frame type (a broadcast counts once per \
             receiver).",
            &[
                (labels([("type", "text".into())]), net.messages_sent.text),
                (
                    labels([("type", "binary".into())]),
                    net.messages_sent.binary,
                ),
            ],
        )?;
        counters(
            &mut enc,
            "wss_bytes_received",
            "Bytes received: message payloads after inflating (layer=application), or read \
             from sockets (layer=wire).",
            &[
                (
                    labels([("layer", "application".into())]),
                    net.bytes_received,
                ),
                (labels([("layer", "wire".into())]), net.wire_bytes_received),
            ],
        )?;
        counters(
            &mut enc,
            "wss_bytes_sent",
            "Bytes sent: message payloads before compressing (layer=application), or \
             written to sockets (layer=wire).",
            &[
                (labels([("layer", "application".into())]), net.bytes_sent),
                (labels([("layer", "wire".into())]), net.wire_bytes_sent),
            ],
        )?;
        let closes = net
            .closes
            .iter()
            .map(|(by, code, n)| {
                let code = code.map_or_else(|| "other".to_owned(), |c| c.to_string());
                (labels([("code", code), ("by", by.as_str().into())]), n)
            })
            .collect::<Vec<_>>();
        counters(
            &mut enc,
            "wss_closes",
            "WebSocket connections closed, by close code (1006: no close frame exchanged) and \
             by the side that began the close.",
            &closes,
        )?;
        counter(
            &mut enc,
            "wss_slow_consumers_dropped",
            "Connections dropped because they stopped reading and their queue passed \
             max_outgoing.",
            net.slow_consumers_dropped,
        )?;
        gauge(
            &mut enc,
            "wss_outgoing_queued_bytes",
            "Bytes queued for WebSocket connections and not yet written.",
            to_i64(net.outgoing_queued_bytes),
        )?;
        gauges(
            &mut enc,
            "wss_worker_queue_depth",
            "Messages handed to a server's worker and not yet taken, by server path.",
            &per_server(&|x| to_i64(x.worker_queue.messages)),
        )?;
        let mut h = enc.encode_descriptor(
            "wss_callback_duration_seconds",
            "How long on_message callbacks ran, by server path (measured while metrics are \
             served).",
            None,
            MetricType::Histogram,
        )?;
        for x in servers {
            let d = &x.callback_duration;
            // The encoder sums the buckets itself: it takes each bucket's own count.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = CALLBACK_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(d.cumulative.iter().map(|&c| {
                    let own = c - below;
                    below = c;
                    own
                }))
                .collect();
            let l = labels([("path", path_label(x.path.as_deref()))]);
            h.encode_family(&l)?.encode_histogram::<NoLabelSet>(
                d.sum_seconds,
                d.count,
                &buckets,
                None,
            )?;
        }
        counters(
            &mut enc,
            "wss_callback_panics",
            "Callbacks that panicked, by server path.",
            &servers
                .iter()
                .map(|x| {
                    (
                        labels([("path", path_label(x.path.as_deref()))]),
                        x.callback_panics,
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut enc,
            "wss_sessions",
            "Sessions kept now.",
            to_i64(s.sessions),
        )?;
        gauge(
            &mut enc,
            "wss_draining",
            "1 once a graceful stop has begun (readyz answers 503).",
            i64::from(s.draining),
        )?;
        if let Some(b) = s.broker {
            gauge(
                &mut enc,
                "wss_broker_up",
                "1 while both connections to the broker's backend are up.",
                i64::from(b.up),
            )?;
            counter(
                &mut enc,
                "wss_broker_published",
                "Messages of this node handed to the broker.",
                b.published,
            )?;
            counter(
                &mut enc,
                "wss_broker_received",
                "Messages from other nodes received through the broker.",
                b.received,
            )?;
            counter(
                &mut enc,
                "wss_broker_delivered",
                "Local deliveries of messages from other nodes (one per receiving connection).",
                b.delivered,
            )?;
            counter(
                &mut enc,
                "wss_broker_lost",
                "Messages of this node dropped instead of published (backend down, queue \
                 full).",
                b.lost,
            )?;
            counter(
                &mut enc,
                "wss_broker_reconnects",
                "Reconnections to the broker's backend after the first connection.",
                b.reconnects,
            )?;
            if let Some(lag) = b.lag {
                let mut below = 0;
                let buckets: Vec<(f64, u64)> = BROKER_LAG_BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(lag.cumulative.iter().map(|&c| {
                        let own = c - below;
                        below = c;
                        own
                    }))
                    .collect();
                let mut h = enc.encode_descriptor(
                    "wss_broker_lag_seconds",
                    "Time from a publish to its delivery through the broker's backend (sampled: \
                     one message in flight at a time).",
                    None,
                    MetricType::Histogram,
                )?;
                h.encode_histogram::<NoLabelSet>(lag.sum_seconds, lag.count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

/// The standard process metrics (`process_*`), from `/proc/self` (Linux; absent elsewhere).
#[derive(Debug)]
struct ProcessCollector {
    started: SystemTime,
}

/// Linux reports CPU time in clock ticks of USER_HZ, which is 100 on every architecture Linux
/// runs on (the kernel converts for user space), so no `sysconf` call is needed.
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let start = start_seconds().unwrap_or_else(|| {
            self.started
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        let mut m = enc.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&start)?;
        if let Some(cpu) = cpu_seconds() {
            let mut m = enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, _, f64>(&cpu, None)?;
        }
        if let Some(rss) = rss_bytes() {
            let mut m = enc.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size, in bytes.",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&to_i64(rss))?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let mut m = enc.encode_descriptor(
                "process_open_fds",
                "Open file descriptors.",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&to_i64(dir.count()))?;
        }
        Ok(())
    }
}

/// utime + stime from `/proc/self/stat` (fields 14 and 15, counted after the command name,
/// which may hold spaces and parentheses, so the split starts after its last `)`).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// When the process started, in seconds since the epoch: boot time (`btime` in `/proc/stat`) plus its start in ticks after
/// boot (field 22 of `/proc/self/stat`).
fn start_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / USER_HZ)
}

/// `VmRSS` from `/proc/self/status` (in kB there).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
