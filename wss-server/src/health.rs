//! `/healthz` and `/readyz`: what a load balancer or an orchestrator asks before sending
//! traffic, answered on the metrics listener and, when asked, on the main port.
//!
//! Liveness says the process answers at all: 200 as long as a network thread can reply.
//! Readiness says new clients are welcome: 503 once a drain has begun (a balancer then
//! stops sending new clients while the existing ones are closed one by one) and while a
//! configured broker reports its backend down (a node cut off from the cluster would serve
//! half a chat room). Neither sets a cookie nor touches the session store, so probes every
//! second cost nothing that accumulates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wss_proto::handshake::{self, Response};

use crate::broker::Broker;

/// Where a drain stands and what readiness depends on; shared by the router, the metrics
/// listener and the web server's stop.
pub(crate) struct Health {
    draining: AtomicBool,
    broker: Arc<dyn Broker>,
    /// `healthz` and `readyz` on the main port under this prefix (`None`: not served there).
    main_prefix: Option<String>,
}

/// Why `/readyz` answers 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// A graceful stop has begun.
    Draining,
    /// The broker reports its backend unreachable.
    BrokerDown,
}

/// The two probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    Alive,
    Ready,
}

impl Health {
    pub(crate) fn new(broker: Arc<dyn Broker>, main_path: Option<&str>) -> Health {
        Health {
            draining: AtomicBool::new(false),
            broker,
            main_prefix: main_path.map(|p| p.trim_end_matches('/').to_owned()),
        }
    }

    pub(crate) fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// `Err(why)` while not ready.
    pub(crate) fn ready(&self) -> Result<(), NotReady> {
        if self.is_draining() {
            return Err(NotReady::Draining);
        }
        if self.broker.stats().is_some_and(|s| !s.up) {
            return Err(NotReady::BrokerDown);
        }
        Ok(())
    }

    /// The probe a path names, relative to where probes are mounted.
    pub(crate) fn probe(path: &str) -> Option<Probe> {
        match path {
            "/healthz" => Some(Probe::Alive),
            "/readyz" => Some(Probe::Ready),
            _ => None,
        }
    }

    /// The answer to `probe` for `method` (GET or HEAD; others get 405).
    pub(crate) fn respond(&self, probe: Probe, method: &str) -> Response {
        if method != "GET" && method != "HEAD" {
            return method_not_allowed();
        }
        let (status, body) = match probe {
            Probe::Alive => (200, "ok\n"),
            Probe::Ready => match self.ready() {
                Ok(()) => (200, "ready\n"),
                Err(NotReady::Draining) => (503, "draining\n"),
                Err(NotReady::BrokerDown) => (503, "broker unreachable\n"),
            },
        };
        let mut r = Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Cache-Control", "no-store");
        if method == "HEAD" {
            r = r.header("Content-Length", &body.len().to_string());
        } else {
            r.body = body.as_bytes().to_vec();
        }
        r
    }

    /// The main port's answer when `request` is a probe there (`--health-path`), else `None`
    /// and the request goes on to its usual route.
    pub(crate) fn on_main_port(&self, request: &handshake::Request) -> Option<Response> {
        let prefix = self.main_prefix.as_deref()?;
        let probe = Self::probe(request.path().strip_prefix(prefix)?)?;
        Some(self.respond(probe, request.method()))
    }
}

/// 405 with the methods the probes and `/metrics` take (built here: `Response::error` adds an
/// `Allow: GET` of its own).
pub(crate) fn method_not_allowed() -> Response {
    Response::new(405).header("Allow", "GET, HEAD")
}
