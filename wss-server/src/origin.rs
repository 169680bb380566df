//! The origin check of WebSocket handshakes (issue 13 item 1): refuses cross-site
//! WebSocket hijacking by default.

use crate::options::OriginPolicy;

/// Whether a handshake with this `Origin` (None: header absent) and `Host` may proceed.
/// `tls`: the request came over TLS, so its own origin is exactly `https://` + `Host`.
pub(crate) fn allowed(
    policy: &OriginPolicy,
    origin: Option<&str>,
    host: Option<&str>,
    tls: bool,
) -> bool {
    let Some(origin) = origin.map(str::trim) else {
        // Not a browser: nothing for a malicious page to abuse.
        return true;
    };
    if policy.allowed.iter().any(|a| a == "*") {
        return true;
    }
    if origin.eq_ignore_ascii_case("null") {
        return policy
            .allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case("null"));
    }
    let Some(parsed) = parse_origin(origin) else {
        return false;
    };
    let same = match host {
        None => false,
        Some(h) if tls => parse_origin(&format!("https://{}", h.trim())).as_ref() == Some(&parsed),
        Some(h) => same_host(&parsed, h),
    };
    if same {
        return true;
    }
    policy
        .allowed
        .iter()
        .filter_map(|a| parse_origin(a))
        .any(|a| a == parsed)
}

#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// `scheme://host[:port]` with the scheme's default port filled in; hosts lowercased.
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some(Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port: port.unwrap_or(default_port),
    })
}

/// Splits `host[:port]`, IPv6 literals in brackets included.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match text.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((text, None)),
    }
}

/// Same origin as a plain-TCP request: the origin's host and port are those of `Host`. A
/// `Host` without port matches on the host name alone, and the scheme is not compared, since
/// a TLS proxy in front may have changed the scheme and the default port.
fn same_host(origin: &Origin, host: &str) -> bool {
    let Some((h, port)) = split_host_port(host.trim()) else {
        return false;
    };
    if !h.eq_ignore_ascii_case(&origin.host) {
        return false;
    }
    match port {
        Some(p) => p == origin.port,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy() {
        let p = OriginPolicy::default();
        assert!(allowed(&p, None, Some("a.com:8080"), false));
        assert!(allowed(
            &p,
            Some("http://a.com:8080"),
            Some("a.com:8080"),
            false
        ));
        assert!(allowed(
            &p,
            Some("http://A.com:8080"),
            Some("a.com:8080"),
            false
        ));
        assert!(allowed(&p, Some("https://a.com"), Some("a.com"), false));
        assert!(!allowed(
            &p,
            Some("http://evil.com:8080"),
            Some("a.com:8080"),
            false
        ));
        assert!(!allowed(
            &p,
            Some("http://a.com:9090"),
            Some("a.com:8080"),
            false
        ));
        assert!(!allowed(&p, Some("null"), Some("a.com:8080"), false));
        assert!(!allowed(&p, Some("garbage"), Some("a.com:8080"), false));
        assert!(allowed(
            &p,
            Some("http://[::1]:80"),
            Some("[::1]:80"),
            false
        ));
    }

    #[test]
    fn allow_list_is_exact() {
        let p = OriginPolicy::allow(["http://b.com:3000"]);
        assert!(allowed(&p, Some("http://b.com:3000"), Some("a.com"), false));
        assert!(!allowed(
            &p,
            Some("https://b.com:3000"),
            Some("a.com"),
            false
        ));
        assert!(!allowed(&p, Some("http://b.com"), Some("a.com"), false));
        let p = OriginPolicy::allow(["http://b.com"]);
        assert!(allowed(&p, Some("http://b.com:80"), Some("a.com"), false));
        assert!(!allowed(&p, Some("null"), Some("a.com"), false));
        let p = OriginPolicy::allow(["null"]);
        assert!(allowed(&p, Some("null"), Some("a.com"), false));
        assert!(allowed(
            &OriginPolicy::any(),
            Some("http://x.y"),
            Some("a.com"),
            false
        ));
    }

    #[test]
    fn over_tls_the_request_origin_is_https_plus_host() {
        let p = OriginPolicy::default();
        assert!(allowed(
            &p,
            Some("https://a.com:8443"),
            Some("a.com:8443"),
            true
        ));
        assert!(allowed(&p, Some("https://a.com"), Some("a.com"), true));
        assert!(allowed(&p, Some("https://a.com:443"), Some("a.com"), true));
        assert!(allowed(&p, Some("https://A.com"), Some("a.com:443"), true));
        // A plain-HTTP page is another origin than the TLS server's.
        assert!(!allowed(
            &p,
            Some("http://a.com:8443"),
            Some("a.com:8443"),
            true
        ));
        assert!(!allowed(&p, Some("http://a.com"), Some("a.com"), true));
        assert!(!allowed(
            &p,
            Some("https://a.com:8080"),
            Some("a.com"),
            true
        ));
        assert!(!allowed(&p, Some("https://evil.com"), Some("a.com"), true));
        assert!(!allowed(&p, Some("https://a.com"), None, true));
        assert!(allowed(&p, None, Some("a.com"), true));
        let p = OriginPolicy::allow(["http://b.com:3000"]);
        assert!(allowed(&p, Some("http://b.com:3000"), Some("a.com"), true));
    }
}
