//! The metrics listener: `/metrics` in the Prometheus text format, `/healthz` and `/readyz`,
//! on an address of its own ([`WebServerOptions::metrics`](crate::WebServerOptions::metrics)).
//!
//! A separate listener keeps the numbers off the public port (no route there can leak them)
//! and keeps a scrape from ever competing with WebSocket traffic on the network threads. It
//! is one thread serving one request at a time with short timeouts: its clients are a
//! Prometheus server and a few probes, on loopback or a private network.
//!
//! The text is written by `prometheus-client`, the Prometheus project's own Rust client: the
//! server's counters are read on each scrape (a `Collector`), never mirrored into metric
//! objects on the hot path.

mod families;
mod process;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use prometheus_client::registry::Registry;
use wss_proto::handshake::Response;

use crate::health::Health;
use crate::web::WebInner;
use families::WebCollector;
use process::ProcessCollector;

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
