//! Parsers for flag values clap has no ready parser for: durations in seconds (fractions
//! allowed, so tests and tight deployments can ask for half a second) and counts that must
//! not be zero. Their error texts end up in the one-line usage error.

use std::time::Duration;

/// The longest duration any flag accepts: a day. Longer is a typo, and a bound keeps
/// `Instant + Duration` far from overflowing.
const MAX_SECS: f64 = 86_400.0;

/// Seconds, `0` included: `"10"`, `"0.5"`, `"0"`.
pub(crate) fn secs(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=MAX_SECS).contains(&value) {
        return Err(format!("{text} is not between 0 and {MAX_SECS} seconds"));
    }
    // The range check above already excludes NaN, infinities and negatives.
    Ok(Duration::from_secs_f64(value))
}

/// Seconds, more than zero (a zero timeout would fire before anything could happen).
pub(crate) fn positive_secs(text: &str) -> Result<Duration, String> {
    let duration = secs(text)?;
    if duration.is_zero() {
        return Err("must be more than 0 seconds".into());
    }
    Ok(duration)
}

/// A count of at least 1 (a limit of 0 would refuse everything).
pub(crate) fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// `--metrics`: `HOST:PORT`, or a bare `PORT` on loopback (the numbers are for operators:
/// exposing them further must be asked for by naming an address). Host names resolve.
pub(crate) fn metrics_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// `--health-path`: an absolute URL path, without query or fragment.
pub(crate) fn url_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.contains(['?', '#', ' ']) {
        return Err(format!(
            "{text:?} must be a path starting with '/' (no query, fragment or space)"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_whole_and_fractional_values() {
        assert_eq!(secs("10"), Ok(Duration::from_secs(10)));
        assert_eq!(secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("0"), Ok(Duration::ZERO));
        assert_eq!(secs("86400"), Ok(Duration::from_secs(86_400)));
        for bad in ["-1", "86401", "NaN", "inf", "ten", "", "1e400"] {
            assert!(secs(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn positive_seconds_refuse_zero() {
        assert!(positive_secs("0").is_err());
        assert!(positive_secs("0.0").is_err());
        assert_eq!(positive_secs("0.25"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn counts_refuse_zero_and_garbage() {
        assert_eq!(positive("10"), Ok(10));
        assert_eq!(positive("0"), Err("must be at least 1".into()));
        assert!(positive("-3").is_err());
        assert!(positive("ten").is_err());
    }
}
