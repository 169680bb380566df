//! Request routing, on the network threads (never user code): upgrades to the WebSocket
//! server of their path (A7), plain GET/HEAD to the static files, session cookies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use wss_net::{ConnId, ConnInfo, Decision, Service};
use wss_proto::handshake::{self, is_upgrade_request, validate_upgrade, Response};

use crate::error::{codes, ErrorInfo, ServerError};
use crate::event::{Pairs, Request};
use crate::files::Lookup;
use crate::health::Health;
use crate::hosts::refusal_text;
use crate::origin;
use crate::server::ServerInner;
use crate::session::Session;
use crate::site::{busy, finished, not_found, text, Ask, Site};
use crate::stats::HandshakeCounters;
use crate::worker::{refusal, PendingConnect, WorkerMsg};

/// Past this many unread control messages a server answers new handshakes with 503 (and stops
/// reporting refused origins) instead of queueing more work for a worker that is not keeping
/// up. The worker reads its control mailbox before any message, so this fills only while a
/// callback runs for long.
const MAX_MAILBOX_FOR_HANDSHAKES: usize = 65_536;

#[derive(Default)]
struct Routes {
    exact: HashMap<String, Arc<ServerInner>>,
    catch_all: Option<Arc<ServerInner>>,
}

pub(crate) struct Router {
    routes: RwLock<Routes>,
    /// Every server registered and not finished, replaced routes included (for `stop`).
    all: Mutex<Vec<Weak<ServerInner>>>,
    running: AtomicBool,
    site: Arc<Site>,
    host_log: RateLimitedLog,
    /// Upgrade requests answered with a refusal instead of a 101, by outcome.
    handshakes: Arc<HandshakeCounters>,
    /// `/healthz` and `/readyz` on this port (`--health-path`), set once at start.
    pub(crate) health: OnceLock<Arc<Health>>,
}

impl Router {
    pub(crate) fn new(site: Arc<Site>, handshakes: Arc<HandshakeCounters>) -> Self {
        Router {
            routes: RwLock::new(Routes::default()),
            all: Mutex::new(Vec::new()),
            running: AtomicBool::new(true),
            site,
            host_log: RateLimitedLog::default(),
            handshakes,
            health: OnceLock::new(),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Sessions kept now (for stats).
    pub(crate) fn session_count(&self) -> usize {
        self.site.session_count()
    }

    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        self.site.session(id)
    }

    #[cfg(test)]
    pub(crate) fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// Claims the server's path (A6, A7). A terminated server's path may be taken over.
    pub(crate) fn register(&self, server: &Arc<ServerInner>) -> Result<(), ServerError> {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if !self.is_running() {
            return Err(ServerError::WebServerNotRunning);
        }
        let live = |s: &Arc<ServerInner>| !s.terminated.load(Ordering::Acquire);
        match server.path() {
            Some(p) => {
                if routes.exact.get(p).is_some_and(live) {
                    return Err(ServerError::PathTaken(p.to_owned()));
                }
                routes.exact.insert(p.to_owned(), server.clone());
            }
            None => {
                if routes.catch_all.as_ref().is_some_and(live) {
                    return Err(ServerError::SecondCatchAll);
                }
                routes.catch_all = Some(server.clone());
            }
        }
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(server));
        Ok(())
    }

    /// Frees the server's path if it still holds it.
    pub(crate) fn unregister(&self, server: &ServerInner) {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let ours = |s: &Arc<ServerInner>| std::ptr::eq(Arc::as_ptr(s), server);
        match server.path() {
            Some(p) => {
                if routes.exact.get(p).is_some_and(ours) {
                    routes.exact.remove(p);
                }
            }
            None => {
                if routes.catch_all.as_ref().is_some_and(ours) {
                    routes.catch_all = None;
                }
            }
        }
    }

    /// Stops routing; returns the servers still alive. `None` if already stopped.
    pub(crate) fn begin_stop(&self) -> Option<Vec<Arc<ServerInner>>> {
        let _routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if !self.running.swap(false, Ordering::AcqRel) {
            return None;
        }
        let all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        Some(all.iter().filter_map(Weak::upgrade).collect())
    }

    fn route(&self, path: &str) -> Option<Arc<ServerInner>> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes
            .exact
            .get(path)
            .or(routes.catch_all.as_ref())
            .cloned()
    }

    fn upgrade(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        tls: bool,
        request: handshake::Request,
    ) -> Decision {
        if !self.is_running() {
            return refusal(503);
        }
        let Some(server) = self.route(request.path()) else {
            return refusal(404);
        };
        let upgrade = match validate_upgrade(&request) {
            Ok(u) => u,
            Err(e) => {
                return Decision::Respond {
                    response: e.response(),
                    keep_alive: false,
                }
            }
        };
        if has_body(&request) {
            // The bytes after the head would be read as WebSocket frames here, while a proxy
            // in front may read them as a body: refuse rather than disagree (smuggling).
            return close_with(text(
                400,
                "Bad Request: an upgrade request has no body\n",
                false,
            ));
        }
        if server.terminated.load(Ordering::Acquire) {
            return refusal(503);
        }
        let headers = request.headers();
        if !origin::allowed(
            &server.options.origins,
            headers.get("origin"),
            headers.get("host"),
            tls,
        ) {
            let origin = headers.get("origin").unwrap_or("");
            if server.tx.control_len() <= MAX_MAILBOX_FOR_HANDSHAKES {
                let _ = server.tx.send(WorkerMsg::Error(ErrorInfo::new(
                    codes::ORIGIN_REFUSED,
                    format!("WebSocket handshake from origin {origin:?} refused (cross-origin)"),
                    codes::COMPONENT,
                )));
            }
            return refusal(403);
        }
        if server.tx.control_len() > MAX_MAILBOX_FOR_HANDSHAKES {
            log::warn!("worker mailbox full: handshake refused with 503");
            return refusal(503);
        }
        let extra_headers = Vec::new();
        // An upgrade joins the session its cookie names but never opens one, like a stray
        // HTTP request: clients that keep no cookies (bots, load generators) would otherwise
        // fill the store with a session per connection (~250 bytes each) and evict the
        // sessions of real visitors. A browser has its cookie from the page that opened it.
        let session = self.site.known_session(&request);
        let req = Request {
            headers: Pairs::new(
                headers
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            query: Pairs::new(
                request
                    .query()
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            url: request.url().to_owned(),
            remote_address: canonical_ip(peer.ip()),
            remote_port: peer.port(),
            session,
        };
        let pending = PendingConnect {
            conn,
            request: req,
            upgrade,
            extra_headers,
        };
        server.connect(pending)
    }

    /// A plain GET or HEAD: answered from memory, or handed to the file thread.
    fn http(&self, conn: ConnId, request: &handshake::Request, tls: bool) -> Decision {
        let head = match request.method() {
            "GET" => false,
            "HEAD" => true,
            _ => {
                let mut response = text(405, "Method Not Allowed\n", false);
                response.headers.push(("Allow".into(), "GET, HEAD".into()));
                return close_with(response);
            }
        };
        if has_body(request) {
            // Bodies are not read here: the next request would start inside this one's body.
            return close_with(text(
                400,
                "Bad Request: a GET or HEAD request has no body\n",
                head,
            ));
        }
        let ask = Ask::of(request, head, self.site.cookie_name(), tls);
        let lookup = match ask.path.as_deref() {
            Some(path) => self.site.files.lookup(path),
            None => Lookup::Missing,
        };
        let response = match lookup {
            Lookup::Ready(entity) => self.site.answer(&entity, &ask),
            Lookup::Missing => not_found(&ask),
            Lookup::Disk => match self.site.files.enqueue(conn, Box::new(ask)) {
                Ok(()) => return Decision::Pending,
                Err(ask) => busy(&ask),
            },
        };
        Decision::Respond {
            response,
            keep_alive: true,
        }
    }

    /// `Some(answer)` when the request's `Host` is malformed or not allowed (DNS rebinding):
    /// `400` for a missing (HTTP/1.1) or repeated `Host`, `403` for a name not allowed,
    /// logged (at most once a second) and reported to the `on_error` of the server an
    /// upgrade was meant for.
    fn check_host(&self, request: &handshake::Request) -> Option<Decision> {
        let headers = request.headers();
        let head = request.method() == "HEAD";
        let count = headers.count("host");
        if count > 1 || (count == 0 && request.version() >= 1) {
            let why = if count > 1 {
                "Bad Request: more than one Host header\n"
            } else {
                "Bad Request: no Host header\n"
            };
            return Some(close_with(text(400, why, head)));
        }
        let host = headers.get("host");
        if self.site.hosts.allows(host) {
            return None;
        }
        let body = refusal_text(host.unwrap_or(""));
        self.host_log.warn(body.trim_end());
        if is_upgrade_request(request) {
            if let Some(server) = self.route(request.path()) {
                if server.tx.control_len() <= MAX_MAILBOX_FOR_HANDSHAKES {
                    let _ = server.tx.send(WorkerMsg::Error(ErrorInfo::new(
                        codes::HOST_REFUSED,
                        format!("WebSocket handshake refused: {}", body.trim_end()),
                        codes::COMPONENT,
                    )));
                }
            }
        }
        Some(close_with(text(403, &body, head)))
    }

    fn handle(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        tls: bool,
        request: handshake::Request,
    ) -> Decision {
        match self.dispatch(conn, peer, tls, request) {
            // RFC 9110 §6.6.1: every answer carries the date (a clock cached per second).
            Decision::Respond {
                response,
                keep_alive,
            } => Decision::Respond {
                response: finished(response),
                keep_alive,
            },
            other => other,
        }
    }

    /// Which answer a request gets. Each early branch returns; a new one (a health path, say)
    /// goes before the `Host` check if it must answer any name, after it otherwise.
    fn dispatch(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        tls: bool,
        request: handshake::Request,
    ) -> Decision {
        let upgrade = is_upgrade_request(&request);
        if !upgrade {
            // Probes answer any host name; they set no cookie and never reach the files.
            if let Some(response) = self.health.get().and_then(|h| h.on_main_port(&request)) {
                return Decision::Respond {
                    response,
                    keep_alive: true,
                };
            }
        }
        if let Some(refused) = self.check_host(&request) {
            if upgrade {
                self.handshakes.note_host();
            }
            return refused;
        }
        if upgrade {
            let decision = self.upgrade(conn, peer, tls, request);
            if let Decision::Respond { response, .. } = &decision {
                self.handshakes.note(response.status);
            }
            return decision;
        }
        self.http(conn, &request, tls)
    }
}

impl Service for Router {
    /// Only reached when a caller bypasses `on_request_with`: treated as plain TCP.
    fn on_request(&self, conn: ConnId, peer: SocketAddr, request: handshake::Request) -> Decision {
        self.handle(conn, peer, false, request)
    }

    /// The loops call this one: over TLS the request's origin is `https://` + `Host` (the
    /// same-origin check) and the session cookie is `Secure`.
    fn on_request_with(
        &self,
        conn: ConnId,
        info: &ConnInfo,
        request: handshake::Request,
    ) -> Decision {
        self.handle(conn, info.peer, info.tls, request)
    }
}

/// IPv4-mapped IPv6 addresses shown as IPv4 (A18).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a request announces a body: any `Transfer-Encoding`, or a `Content-Length` other
/// than 0.
fn has_body(request: &handshake::Request) -> bool {
    let headers = request.headers();
    headers.get("transfer-encoding").is_some()
        || headers.get_all("content-length").any(|v| v.trim() != "0")
}

/// `response`, then close the connection.
fn close_with(response: Response) -> Decision {
    Decision::Respond {
        response,
        keep_alive: false,
    }
}

/// A warning that a flood of bad requests cannot turn into a flood of log lines: at most one
/// line a second, with the number of lines left out since the last one.
#[derive(Default)]
struct RateLimitedLog {
    last_second: AtomicU64,
    skipped: AtomicU64,
}

impl RateLimitedLog {
    fn warn(&self, line: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_second.load(Ordering::Relaxed);
        if last == now
            || self
                .last_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.skipped.swap(0, Ordering::Relaxed) {
            0 => log::warn!("{line}"),
            n => log::warn!("{line} ({n} similar requests refused before this one)"),
        }
    }
}
