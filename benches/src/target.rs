//! The server under test: a `ws://` URL that must point at this machine.
//!
//! The refusal is the point of this module: a load generator aimed at the wrong address is a
//! denial-of-service tool, so anything outside 127.0.0.0/8 and ::1 is rejected before any socket
//! is opened, and no name other than `localhost` is resolved.

use crate::BenchError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A parsed, checked `ws://host:port/path` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value (as written in the URL).
    pub host: String,
    /// Request target for the upgrade, starting with `/`.
    pub path: String,
}

/// True for the addresses this tool may load: 127.0.0.0/8 and ::1 (and ::ffff:127.x.y.z).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Target {
    /// Parses `ws://HOST[:PORT][/PATH]`; HOST is an IP literal (IPv6 in brackets) or `localhost`.
    pub fn parse(url: &str) -> Result<Target, BenchError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or(BenchError::BadUrl("must start with ws:// (no TLS here)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(BenchError::BadUrl("missing host"));
        }
        let (host_part, port) = split_port(authority)?;
        let ip: IpAddr = if host_part.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            let literal = host_part
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host_part);
            literal
                .parse()
                .map_err(|_| BenchError::BadUrl("host must be an IP literal or localhost"))?
        };
        if !is_loopback(ip) {
            return Err(BenchError::NotLoopback(ip));
        }
        Ok(Target {
            addr: SocketAddr::new(ip, port),
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

fn split_port(authority: &str) -> Result<(&str, u16), BenchError> {
    // An IPv6 literal holds colons of its own: the port colon is the one after `]`.
    let colon = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or(BenchError::BadUrl("unclosed ["))?;
        authority[close..].find(':').map(|i| close + i)
    } else {
        authority.rfind(':')
    };
    match colon {
        None => Ok((authority, 80)),
        Some(i) => {
            let port = authority[i + 1..]
                .parse()
                .map_err(|_| BenchError::BadUrl("port is not a number in 0..65535"))?;
            Ok((&authority[..i], port))
        }
    }
}

/// The `n`-th source address to bind when one address runs out of ephemeral ports:
/// 127.0.0.1, 127.0.0.2, … for an IPv4 target; IPv6 has only ::1, so it is always that.
pub fn source_addr(target: &SocketAddr, n: usize) -> IpAddr {
    match target {
        SocketAddr::V4(_) => {
            // 127.0.0.1 + n, staying inside 127.0.0.0/8 and skipping .0 and .255 host parts.
            let host = (n % 250) as u32 + 1;
            let mid = (n / 250) as u32 % 65536;
            IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | (mid << 8) | host))
        }
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_v4_with_port_and_path_is_accepted() {
        let t = Target::parse("ws://127.0.0.1:9001/chat?x=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(t.path, "/chat?x=1");
        assert_eq!(t.host, "127.0.0.1:9001");
    }

    #[test]
    fn whole_127_range_and_v6_loopback_are_accepted() {
        assert!(Target::parse("ws://127.9.8.7:1").is_ok());
        let t = Target::parse("ws://[::1]:8080").unwrap();
        assert_eq!(t.addr, "[::1]:8080".parse().unwrap());
        assert_eq!(t.path, "/");
        assert_eq!(
            Target::parse("ws://localhost:5/").unwrap().addr,
            "127.0.0.1:5".parse().unwrap()
        );
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        for url in [
            "ws://10.0.0.1:80/",
            "ws://192.168.1.2/",
            "ws://8.8.8.8:53/",
            "ws://0.0.0.0:80/",
            "ws://[::]:80/",
            "ws://[fe80::1]:80/",
            "ws://128.0.0.1:80/",
        ] {
            assert!(
                matches!(Target::parse(url), Err(BenchError::NotLoopback(_))),
                "{url} was not refused"
            );
        }
    }

    #[test]
    fn names_other_than_localhost_are_not_resolved() {
        assert!(matches!(
            Target::parse("ws://example.com:80/"),
            Err(BenchError::BadUrl(_))
        ));
        assert!(matches!(
            Target::parse("wss://127.0.0.1/"),
            Err(BenchError::BadUrl(_))
        ));
        assert!(matches!(
            Target::parse("ws://127.0.0.1:99999/"),
            Err(BenchError::BadUrl(_))
        ));
    }

    #[test]
    fn source_addresses_stay_in_loopback_and_skip_network_and_broadcast() {
        let t: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(source_addr(&t, 0), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(source_addr(&t, 1), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(source_addr(&t, 250), "127.0.1.1".parse::<IpAddr>().unwrap());
        for n in 0..100_000 {
            let ip = source_addr(&t, n);
            assert!(is_loopback(ip));
        }
    }
}
