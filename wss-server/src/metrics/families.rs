//! The `wss_*` metric families, read from [`WebServer::stats`](crate::WebServer::stats) on
//! each scrape.

use std::borrow::Cow;
use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::broker::BROKER_LAG_BUCKETS;
use crate::stats::{WebServerStats, CALLBACK_BUCKETS};
use crate::web::WebInner;

/// Reads the web server's stats on each scrape.
pub(super) struct WebCollector {
    pub(super) web: Weak<WebInner>,
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

pub(super) fn to_i64(n: impl TryInto<i64>) -> i64 {
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
            "How long on_message callbacks ran, by server path (sampled: one message in 8 is \
             timed).",
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
