//! The `Host` policy against DNS rebinding (issue 20 item 7).
//!
//! A page on `http://evil.example:8080` whose name the attacker re-points at 127.0.0.1 reaches a
//! server bound to loopback with `Host: evil.example:8080`, and its `Origin` matches that
//! `Host`, so the origin check alone lets it in. Refusing names the server was not told about
//! closes that door: the browser always sends the name it resolved.

use std::net::IpAddr;

/// Whether requests naming a host are served: the local names always, then the list.
#[derive(Clone, Debug)]
pub(crate) struct HostPolicy {
    /// Lowercased names, without port; `*.x` matches any subdomain of `x`.
    allowed: Vec<String>,
    /// `*` listed, or no list on a server reachable beyond loopback.
    any: bool,
}

impl HostPolicy {
    /// The policy of a server bound to `bind` with `list` (`WebServerOptions::allowed_hosts`).
    /// An empty list means: local names only when bound to loopback, any name otherwise.
    pub(crate) fn new(list: &[String], bind: IpAddr) -> Self {
        let any = list.iter().any(|h| h.trim() == "*") || (list.is_empty() && !is_loopback(bind));
        let allowed = list
            .iter()
            .map(|h| {
                let h = h.trim().to_ascii_lowercase();
                // A listed name may carry a port or brackets; the port never matters.
                match split_port(&h) {
                    Some(name) => name.to_owned(),
                    None => h,
                }
            })
            .filter(|h| !h.is_empty())
            .collect();
        HostPolicy { allowed, any }
    }

    /// Whether a request with this `Host` value (None: no such header) is served. A request
    /// without `Host` is not a browser's (every browser sends it), so it cannot be a rebinding
    /// page; HTTP/1.1 requests without one are refused elsewhere as malformed.
    pub(crate) fn allows(&self, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = host else {
            return true;
        };
        let Some(name) = split_port(host.trim()) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        is_local_name(name) || self.allowed.iter().any(|a| matches(a, name))
    }
}

/// `127.0.0.1`, `::1` (and the rest of 127/8, IPv4-mapped loopback included).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The names that always mean this machine: `localhost`, `*.localhost` (RFC 6761: never sent
/// to DNS by browsers), `127.0.0.1` and `[::1]`.
fn is_local_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name == "127.0.0.1" || name == "[::1]"
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => pattern == name,
    }
}

/// The name part of `host[:port]` (IPv6 literals keep their brackets); `None` when malformed
/// (an empty name, a port that is not a number, text after `]`).
fn split_port(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(name),
            None if rest.is_empty() => Some(name),
            _ => None,
        };
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    (!name.is_empty() && !name.contains(':')).then_some(name)
}

/// The one-line body of the 403: which name was refused and how to allow it.
pub(crate) fn refusal_text(host: &str) -> String {
    // Echo at most a short, printable name: the body is text/plain, but a log or terminal may
    // show it.
    let shown: String = split_port(host.trim())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect();
    format!(
        "Host \"{shown}\" is not allowed here (DNS rebinding protection); \
         start wss with --allow-host {shown} (WebServerOptions::allowed_hosts) to serve it\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str], bind: &str) -> HostPolicy {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        HostPolicy::new(&list, bind.parse().expect("ip"))
    }

    #[test]
    fn loopback_default_allows_only_local_names_on_any_port() {
        for bind in ["127.0.0.1", "::1", "127.0.0.2"] {
            let p = policy(&[], bind);
            for ok in [
                "localhost",
                "localhost:8080",
                "LOCALHOST:1",
                "app.localhost:3000",
                "127.0.0.1",
                "127.0.0.1:9",
                "[::1]",
                "[::1]:8080",
                "localhost.",
            ] {
                assert!(p.allows(Some(ok)), "{bind}: {ok}");
            }
            for bad in [
                "evil.example",
                "evil.example:8080",
                "localhost.evil.example",
                "evil-localhost",
                "127.0.0.1.nip.io:80",
                "10.0.0.1",
                "[::2]:80",
                "localhost:80x",
                "",
                ":80",
                "[::1]x",
            ] {
                assert!(!p.allows(Some(bad)), "{bind}: {bad}");
            }
            assert!(p.allows(None), "not a browser");
        }
    }

    #[test]
    fn other_addresses_allow_any_name_unless_a_list_is_given() {
        let p = policy(&[], "0.0.0.0");
        assert!(p.allows(Some("evil.example:80")));
        let p = policy(&["chat.example.com"], "0.0.0.0");
        assert!(p.allows(Some("chat.example.com")));
        assert!(p.allows(Some("Chat.Example.com:443")));
        assert!(p.allows(Some("localhost:8080")), "local names stay allowed");
        assert!(!p.allows(Some("example.com")));
        assert!(!p.allows(Some("x.chat.example.com")));
    }

    #[test]
    fn wildcards_and_star() {
        let p = policy(&["*.example.com", "[::5]:80", "10.0.0.7:1"], "127.0.0.1");
        assert!(p.allows(Some("a.example.com")));
        assert!(p.allows(Some("a.b.example.com:8080")));
        assert!(!p.allows(Some("example.com")));
        assert!(!p.allows(Some("aexample.com")));
        assert!(p.allows(Some("[::5]:9")));
        assert!(p.allows(Some("10.0.0.7")));
        let p = policy(&["*"], "127.0.0.1");
        assert!(p.allows(Some("evil.example")));
    }

    #[test]
    fn refusal_names_the_flag_on_one_line() {
        let text = refusal_text("evil.example:8080");
        assert!(text.contains("\"evil.example\""), "{text}");
        assert!(text.contains("--allow-host evil.example"), "{text}");
        assert_eq!(text.lines().count(), 1);
        let text = refusal_text("a\r\nb\u{7}c");
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }
}
