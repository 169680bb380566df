//! The HTTP phase: request heads, plain responses (keep-alive, pipelining), and the switch to
//! WebSocket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use wss_proto::handshake::deflate;
use wss_proto::handshake::{Request, RequestParser, Response, UpgradeRequest};
use wss_proto::DeflateParams;
use wss_proto::{Connection, Role};

use super::{Conn, Pending, Phase, Step, Ws};
use crate::api::{ConnInfo, Decision, NetEvent};
use crate::event_loop::Ctx;
use crate::inbound::{Buffered, ConnFlow, Credit};
use crate::stats::bump;
use crate::ConnId;

/// Past this many unwritten response bytes, pipelined requests wait (and nothing more is read)
/// until the client reads: a client that pipelines without reading must not grow the queue.
const PIPELINE_PAUSE: usize = 256 * 1024;

/// State of a connection reading request heads.
pub(crate) struct Head {
    /// The client's address as `accept` gave it. Kept here, in the boxed handshake state, not
    /// in `Conn`: an upgraded connection does not carry it, and no request head costs a
    /// `getpeername`.
    peer: SocketAddr,
    parser: RequestParser,
    /// Handshake deadline of the current request.
    deadline: Instant,
    /// Some byte of the current request arrived.
    started: bool,
    /// Pipelined bytes read but not parsed yet, because responses are backed up.
    held: Vec<u8>,
}

impl Head {
    pub(crate) fn new(ctx: &Ctx, peer: SocketAddr) -> Head {
        Head {
            peer,
            parser: RequestParser::new(ctx.config.head_limits),
            deadline: ctx.now + ctx.config.handshake_timeout,
            started: false,
            held: Vec::new(),
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn started(&self) -> bool {
        self.started
    }

    pub(crate) fn is_paused(&self) -> bool {
        !self.held.is_empty()
    }
}

/// Accepts the first acceptable permessage-deflate offer of `upgrade` (when
/// [`NetConfig::deflate`](crate::NetConfig::deflate) allows it) and adds the answer to the
/// 101's headers. A layer above that answered `Sec-WebSocket-Extensions` itself keeps its
/// answer, and the connection runs uncompressed: the loop cannot know what it agreed to.
fn negotiate_deflate(
    ctx: &Ctx,
    upgrade: &UpgradeRequest,
    extra_headers: &mut Vec<(String, String)>,
) -> Option<DeflateParams> {
    if !ctx.config.deflate.enabled || upgrade.extensions.is_empty() {
        return None;
    }
    if extra_headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(deflate::HEADER_NAME))
    {
        return None;
    }
    let accepted = deflate::negotiate(&upgrade.extensions, &ctx.config.deflate)?;
    extra_headers.push(accepted.header());
    Some(accepted.params)
}

/// Whether the client lets the connection carry another request after this one.
fn client_keeps_alive(req: &Request) -> bool {
    let headers = req.headers();
    if req.version() >= 1 {
        !headers.contains_token("Connection", "close")
    } else {
        headers.contains_token("Connection", "keep-alive")
    }
}

impl Conn {
    /// Feeds bytes read in the head phase; parses and answers every complete request in them.
    pub(super) fn head_bytes(&mut self, ctx: &mut Ctx, id: ConnId, mut data: &[u8]) -> Step {
        loop {
            let Phase::Head(h) = &mut self.phase else {
                // A decision changed the phase: the rest belongs to it.
                return self.on_bytes_after_head(ctx, id, data);
            };
            if data.is_empty() {
                return Ok(());
            }
            if self.out.len() >= PIPELINE_PAUSE {
                h.held.extend_from_slice(data);
                return Ok(());
            }
            h.started = true;
            match h.parser.feed(data) {
                Ok(None) => return Ok(()),
                Ok(Some((request, used))) => {
                    data = data.get(used..).unwrap_or_default();
                    let keep = client_keeps_alive(&request);
                    let peer = h.peer;
                    let info = ConnInfo {
                        peer,
                        tls: self.tls.is_some(),
                    };
                    let decision = crate::guard::on_request(&*ctx.service, id, &info, request);
                    self.apply_decision(ctx, id, peer, decision, keep)?;
                }
                Err(e) => {
                    log::debug!("{id}: bad request head: {e:?}");
                    let response = e.response();
                    let counters = &ctx.shared.counters;
                    if response.status == 431 {
                        bump(&counters.too_large, 1);
                    } else {
                        bump(&counters.bad_requests, 1);
                    }
                    self.out.push_with(0, |v| response.encode(v));
                    self.finish(ctx.now);
                    return Ok(());
                }
            }
        }
    }

    fn on_bytes_after_head(&mut self, ctx: &mut Ctx, id: ConnId, data: &[u8]) -> Step {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.phase {
            Phase::Ws(_) => self.ws_bytes(ctx, id, data),
            Phase::Pending(p) => {
                p.held.extend_from_slice(data);
                Ok(())
            }
            Phase::Head(_) | Phase::Finishing { .. } => Ok(()),
        }
    }

    /// Replays pipelined bytes held back while responses were backed up. Returns whether
    /// anything was replayed.
    pub(super) fn replay_held(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
    ) -> Result<bool, Option<crate::ConnError>> {
        let Phase::Head(h) = &mut self.phase else {
            return Ok(false);
        };
        if h.held.is_empty() || self.out.len() >= PIPELINE_PAUSE {
            return Ok(false);
        }
        let held = std::mem::take(&mut h.held);
        self.head_bytes(ctx, id, &held)?;
        Ok(true)
    }

    /// Acts on the layer above's answer to a request head, the phase being `Head` (answer
    /// given at once) or `Pending` (answer given later). `peer` is the client's address that
    /// phase carries.
    fn apply_decision(
        &mut self,
        ctx: &mut Ctx,
        id: ConnId,
        peer: SocketAddr,
        decision: Decision,
        client_keep_alive: bool,
    ) -> Step {
        if self.handshaking && !matches!(decision, Decision::Pending) {
            self.handshaking = false;
            ctx.admission.handshake_done();
        }
        match decision {
            Decision::Respond {
                mut response,
                keep_alive,
            } => {
                let keep = keep_alive && client_keep_alive && !ctx.shutting_down;
                if !keep
                    && !response
                        .headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
                {
                    response
                        .headers
                        .push(("Connection".to_owned(), "close".to_owned()));
                }
                self.out.push_with(0, |v| response.encode(v));
                if keep {
                    self.next_request(ctx, peer);
                } else {
                    self.finish(ctx.now);
                }
            }
            Decision::Upgrade {
                upgrade,
                mut extra_headers,
                sink,
            } => {
                let deflate = negotiate_deflate(ctx, &upgrade, &mut extra_headers);
                self.out.push_with(0, |v| {
                    Response::encode_switching_protocols(&upgrade, &extra_headers, v);
                });
                let mut config = ctx.config.proto.clone();
                config.deflate.clone_from(&deflate);
                config.close_reply = sink.close_reply();
                let ws = Connection::new(Role::Server, ctx.share_proto(config), ctx.now);
                // Always allocated: the queued-bytes count lives there even without flow control.
                let link = crate::guard::inbound(&*sink)
                    .map(|inbound| (inbound, Arc::clone(&ctx.shared), id));
                let flow = Arc::new(ConnFlow::new(link));
                let credit = Credit::new(&flow);
                let buffered = Buffered::new(&flow);
                let w = Ws::new(ws, sink, flow);
                bump(&ctx.shared.counters.upgrades, 1);
                ctx.emit(
                    &w.sink,
                    NetEvent::Opened {
                        conn: id,
                        peer,
                        buffered,
                        deflate,
                        credit,
                    },
                );
                self.phase = Phase::Ws(w);
            }
            Decision::Pending => {
                let deadline = match &self.phase {
                    Phase::Head(h) => h.deadline,
                    Phase::Pending(p) => p.deadline,
                    _ => ctx.now,
                };
                self.phase = Phase::Pending(Box::new(Pending {
                    peer,
                    held: Vec::new(),
                    deadline,
                    client_keep_alive,
                }));
            }
        }
        Ok(())
    }

    /// Back to reading heads after a kept-alive response: fresh deadline, parser reset (it
    /// keeps no large buffer).
    fn next_request(&mut self, ctx: &Ctx, peer: SocketAddr) {
        let deadline = ctx.now + ctx.config.handshake_timeout;
        match &mut self.phase {
            Phase::Head(h) => {
                h.parser.reset();
                h.deadline = deadline;
                h.started = false;
            }
            _ => {
                let mut h = Head::new(ctx, peer);
                h.deadline = deadline;
                self.phase = Phase::Head(Box::new(h));
            }
        }
    }

    /// `NetHandle::decide` for this connection. Ignored unless a decision is pending.
    pub(crate) fn decide(&mut self, ctx: &mut Ctx, id: ConnId, decision: Decision) -> Step {
        if matches!(decision, Decision::Pending) {
            return Ok(());
        }
        let Phase::Pending(p) = &mut self.phase else {
            return Ok(());
        };
        let held = std::mem::take(&mut p.held);
        let keep = p.client_keep_alive;
        let peer = p.peer;
        self.apply_decision(ctx, id, peer, decision, keep)?;
        match &self.phase {
            Phase::Head(_) => self.head_bytes(ctx, id, &held),
            _ => self.on_bytes_after_head(ctx, id, &held),
        }
    }
}
