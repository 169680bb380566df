//! `--redis` and `--node-id`: joining a cluster of `wss` nodes that share broadcasts and
//! presence through Redis (the `redis` cargo feature, on by default).

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::time::Duration;

use wss_server::Broker;

use crate::StartError;

/// How long the start waits for the subscription to be in place before announcing readiness,
/// so that a client connecting right after the readiness line already gets other nodes'
/// messages. Past it the node serves anyway and keeps connecting in the background.
#[cfg(feature = "redis")]
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// This node's link to the other nodes.
pub(crate) struct Cluster {
    #[cfg(feature = "redis")]
    broker: Arc<wss_redis::RedisBroker>,
    #[cfg(not(feature = "redis"))]
    never: std::convert::Infallible,
}

/// Checks the flags and, with `--redis`, connects to Redis. `Ok(None)`: a single node.
pub(crate) fn join(
    redis: Option<&str>,
    node_id: Option<&str>,
) -> Result<Option<Cluster>, StartError> {
    let Some(url) = redis else {
        if node_id.is_some() {
            return Err(StartError::Invalid(
                "--node-id names this node in a cluster and needs --redis".into(),
            ));
        }
        return Ok(None);
    };
    connect(url, node_id).map(Some)
}

#[cfg(feature = "redis")]
fn connect(url: &str, node_id: Option<&str>) -> Result<Cluster, StartError> {
    use wss_redis::{RedisBroker, RedisConfig};

    let mut config = RedisConfig::new(url);
    if let Some(id) = node_id {
        config = config.with_node_id(id);
    }
    match RedisBroker::start(config) {
        Ok(broker) => Ok(Cluster {
            broker: Arc::new(broker),
        }),
        Err(
            e @ (wss_redis::StartError::InvalidUrl(_) | wss_redis::StartError::InvalidNodeId(_)),
        ) => {
            let flag = match e {
                wss_redis::StartError::InvalidNodeId(_) => "--node-id",
                _ => "--redis",
            };
            Err(StartError::Invalid(format!("{flag}: {e}")))
        }
        Err(wss_redis::StartError::Unreachable { url, source }) => Err(StartError::Start(format!(
            "cannot reach Redis at {}: {source}",
            redact(&url)
        ))),
        Err(e) => Err(StartError::Start(e.to_string())),
    }
}

/// `url` with its password (`redis://user:PASSWORD@host`) hidden: error lines end up in logs.
#[cfg(feature = "redis")]
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(not(feature = "redis"))]
fn connect(_: &str, _: Option<&str>) -> Result<Cluster, StartError> {
    Err(StartError::NotBuilt {
        flag: "--redis",
        feature: "redis",
    })
}

impl Cluster {
    /// The broker to give the web server.
    pub(crate) fn broker(&self) -> Arc<dyn Broker> {
        #[cfg(feature = "redis")]
        return self.broker.clone();
        #[cfg(not(feature = "redis"))]
        match self.never {}
    }

    /// Waits (boundedly) until messages from the other nodes reach this one; logs the result.
    pub(crate) fn wait_connected(&self) {
        #[cfg(feature = "redis")]
        {
            if self.broker.wait_connected(CONNECT_WAIT) {
                log::info!("node {:?} connected to Redis", self.broker.node_id());
            } else {
                log::warn!(
                    "node {:?}: Redis subscription not ready after {}s; serving locally and \
                     retrying in the background",
                    self.broker.node_id(),
                    CONNECT_WAIT.as_secs()
                );
            }
        }
        #[cfg(not(feature = "redis"))]
        match self.never {}
    }

    /// Leaves the cluster: this node's users leave the other nodes' presence at once.
    pub(crate) fn leave(&self) {
        #[cfg(feature = "redis")]
        self.broker.shutdown();
        #[cfg(not(feature = "redis"))]
        match self.never {}
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_error_lines() {
        assert_eq!(redact("redis://:s3cret@db:6379/0"), "redis://***@db:6379/0");
        assert_eq!(redact("redis://u:p@ss@db:6379"), "redis://***@db:6379");
        assert_eq!(redact("redis://db:6379"), "redis://db:6379");
        assert_eq!(redact("not a url"), "not a url");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let url = format!("redis://:s3cret@127.0.0.1:{port}");
        let err = join(Some(&url), None).err().expect("nothing listens there");
        assert!(matches!(err, StartError::Start(_)), "{err}");
        let line = err.to_string();
        assert!(
            line.contains("cannot reach Redis at redis://***@127.0.0.1:"),
            "{line}"
        );
        assert!(!line.contains("s3cret"), "{line}");
    }
}
