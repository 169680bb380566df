//! Request routing, on the network threads (never user code): upgrades to the WebSocket
//! server of their path (A7), plain GET/HEAD to the static files, session cookies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::Instant;

use wss_net::{ConnId, ConnInfo, Decision, Service};
use wss_proto::handshake::{self, is_upgrade_request, validate_upgrade, Response};

use crate::error::{codes, ErrorInfo, ServerError};
use crate::event::{Pairs, Request};
use crate::health::Health;
use crate::origin;
use crate::server::ServerInner;
use crate::session::{cookie_value, set_cookie_value, Session, SessionStore};
use crate::statics::Statics;
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
    statics: Statics,
    sessions: Option<SessionStore>,
    cookie_name: String,
    /// `/healthz` and `/readyz` on this port (`--health-path`), set once at start.
    pub(crate) health: OnceLock<Arc<Health>>,
}

impl Router {
    pub(crate) fn new(
        statics: Statics,
        sessions: Option<SessionStore>,
        cookie_name: String,
    ) -> Self {
        Router {
            routes: RwLock::new(Routes::default()),
            all: Mutex::new(Vec::new()),
            running: AtomicBool::new(true),
            statics,
            sessions,
            cookie_name,
            health: OnceLock::new(),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Sessions kept now (for stats).
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.as_ref().map_or(0, SessionStore::len)
    }

    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        self.sessions.as_ref()?.get(id, Instant::now())
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

    /// The live session the request's cookie names, if any (refreshed).
    fn known_session(&self, request: &handshake::Request) -> Option<Session> {
        let store = self.sessions.as_ref()?;
        request
            .headers()
            .get_all("cookie")
            .find_map(|h| cookie_value(h, &self.cookie_name))
            .and_then(|id| store.get(id, Instant::now()))
    }

    /// The request's live session, or a new one with the `Set-Cookie` header to send
    /// (`Secure` when the request came over TLS). An id the store does not know is replaced,
    /// never adopted.
    fn session_for(
        &self,
        request: &handshake::Request,
        tls: bool,
    ) -> Option<(Session, Option<String>)> {
        let store = self.sessions.as_ref()?;
        if let Some(s) = self.known_session(request) {
            return Some((s, None));
        }
        let s = store.create(Instant::now())?;
        let cookie = set_cookie_value(&self.cookie_name, s.id(), tls);
        Some((s, Some(cookie)))
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
        let session = self.known_session(&request);
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
        match server.tx.send(WorkerMsg::Connect(Box::new(pending))) {
            Ok(()) => Decision::Pending,
            Err(_) => refusal(503),
        }
    }

    fn http(&self, request: &handshake::Request, tls: bool) -> Decision {
        // Probes first: they set no cookie and never reach the files.
        if let Some(response) = self.health.get().and_then(|h| h.on_main_port(request)) {
            return Decision::Respond {
                response,
                keep_alive: true,
            };
        }
        let head = match request.method() {
            "GET" => false,
            "HEAD" => true,
            _ => {
                let response = Response::error(405, "").header("Allow", "GET, HEAD");
                return Decision::Respond {
                    response,
                    keep_alive: false,
                };
            }
        };
        let mut response = match self.statics.lookup(request.path()) {
            Some(found) => {
                let mut r = Response::new(200)
                    .header("Content-Type", &found.content_type)
                    .header("X-Content-Type-Options", "nosniff");
                r.headers.extend(found.headers);
                r.body = found.body.into_owned();
                // Only a page served opens a session: a stray request (a probe, a 404) must
                // not fill the store, nor evict the sessions of real visitors.
                if let Some(c) = self.session_for(request, tls).and_then(|(_, c)| c) {
                    r = r.header("Set-Cookie", &c);
                }
                r
            }
            None => {
                let mut r = Response::new(404)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .header("X-Content-Type-Options", "nosniff");
                r.body = b"Not Found".to_vec();
                r
            }
        };
        if head {
            // HEAD states the length of the body it does not send.
            let len = response.body.len().to_string();
            response = response.header("Content-Length", &len);
            response.body.clear();
        }
        Decision::Respond {
            response,
            keep_alive: true,
        }
    }
}

impl Router {
    fn handle(
        &self,
        conn: ConnId,
        peer: SocketAddr,
        tls: bool,
        request: handshake::Request,
    ) -> Decision {
        if is_upgrade_request(&request) {
            self.upgrade(conn, peer, tls, request)
        } else {
            self.http(&request, tls)
        }
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
