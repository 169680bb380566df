//! IP networks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a bare address), for
//! [`AddressFilter`](crate::AddressFilter) and the binary's `--allow` flag.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address and a prefix length.
///
/// Host bits below the prefix are cleared when parsing, so `10.1.2.3/8` means `10.0.0.0/8`.
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are treated as the IPv4 address they carry,
/// both in networks and in the addresses tested, because a dual-stack socket reports IPv4
/// peers that way.
///
/// ```
/// use wss_handlers::IpNet;
/// let net: IpNet = "192.168.0.0/16".parse().unwrap();
/// assert!(net.contains("192.168.4.2".parse().unwrap()));
/// assert!(net.contains("::ffff:192.168.4.2".parse().unwrap()));
/// assert!(!net.contains("10.0.0.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    InvalidAddress(String),
    /// The part after `/` is not a number.
    InvalidPrefix(String),
    /// The prefix is longer than the address (32 for IPv4, 128 for IPv6).
    PrefixTooLong {
        /// The text that was parsed.
        input: String,
        /// The longest prefix the address family allows.
        max: u8,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::InvalidAddress(s) => write!(f, "{s:?} is not an IP address or CIDR network"),
            CidrError::InvalidPrefix(s) => write!(f, "{s:?} has an invalid prefix length"),
            CidrError::PrefixTooLong { input, max } => {
                write!(f, "{input:?} has a prefix longer than {max} bits")
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// The IPv4 address inside an IPv4-mapped IPv6 address, else the address itself.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn mask_v4(addr: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(addr);
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask_v6(addr: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(addr);
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

impl IpNet {
    /// The network `addr/prefix`; `None` if the prefix is too long for the address family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let (addr, prefix) = match addr {
            // A mapped network of /96 or longer is an IPv4 network in disguise.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && prefix >= 96 => {
                (canonical(addr), prefix - 96)
            }
            other => (other, prefix),
        };
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4(Ipv4Addr::from(mask_v4(v4, prefix))),
            IpAddr::V6(v6) if prefix <= 128 => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, prefix))),
            _ => return None,
        };
        Some(IpNet { network, prefix })
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network. IPv4 networks never contain IPv6 addresses (other
    /// than IPv4-mapped ones) and the other way round.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

impl From<IpAddr> for IpNet {
    /// A single address: `/32` or `/128`.
    fn from(ip: IpAddr) -> IpNet {
        let ip = canonical(ip);
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        IpNet {
            network: ip,
            prefix,
        }
    }
}

impl FromStr for IpNet {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<IpNet, CidrError> {
        let text = s.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        // Accept the bracketed form people copy from URLs: [::1]/128.
        let addr_text = addr_text
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr_text);
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::InvalidAddress(s.to_string()))?;
        let Some(prefix_text) = prefix_text else {
            return Ok(IpNet::from(addr));
        };
        if prefix_text.is_empty() || !prefix_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::InvalidPrefix(s.to_string()));
        }
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix_text.parse().map_err(|_| CidrError::PrefixTooLong {
            input: s.to_string(),
            max,
        })?;
        IpNet::new(addr, prefix).ok_or(CidrError::PrefixTooLong {
            input: s.to_string(),
            max,
        })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_network_contains_its_hosts_only() {
        let n = net("10.1.0.0/16");
        assert!(n.contains(ip("10.1.0.0")));
        assert!(n.contains(ip("10.1.255.255")));
        assert!(!n.contains(ip("10.2.0.0")));
        assert!(!n.contains(ip("::1")));
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn bare_address_is_a_single_host() {
        let n = net("127.0.0.1");
        assert_eq!(n.prefix(), 32);
        assert!(n.contains(ip("127.0.0.1")));
        assert!(!n.contains(ip("127.0.0.2")));
        let n6 = net("[::1]");
        assert_eq!(n6.prefix(), 128);
        assert!(n6.contains(ip("::1")));
    }

    #[test]
    fn zero_prefix_matches_whole_family() {
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_networks_match_by_prefix() {
        let n = net("2001:db8:abcd::/48");
        assert!(n.contains(ip("2001:db8:abcd:12::1")));
        assert!(!n.contains(ip("2001:db8:abce::1")));
        let odd = net("fe80::/10");
        assert!(odd.contains(ip("febf::1")));
        assert!(!odd.contains(ip("fec0::1")));
    }

    #[test]
    fn mapped_ipv4_is_treated_as_ipv4() {
        assert!(net("192.0.2.0/24").contains(ip("::ffff:192.0.2.7")));
        let mapped = net("::ffff:192.0.2.0/120");
        assert_eq!(mapped.to_string(), "192.0.2.0/24");
        assert!(mapped.contains(ip("192.0.2.200")));
    }

    #[test]
    fn bad_inputs_name_the_broken_part() {
        assert!(matches!(
            "10.0.0/8".parse::<IpNet>(),
            Err(CidrError::InvalidAddress(_))
        ));
        assert!(matches!(
            "host.example".parse::<IpNet>(),
            Err(CidrError::InvalidAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<IpNet>(),
            Err(CidrError::InvalidPrefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/-1".parse::<IpNet>(),
            Err(CidrError::InvalidPrefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<IpNet>(),
            Err(CidrError::InvalidPrefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<IpNet>(),
            Err(CidrError::PrefixTooLong { max: 32, .. })
        ));
        assert!(matches!(
            "::/129".parse::<IpNet>(),
            Err(CidrError::PrefixTooLong { max: 128, .. })
        ));
        assert!(matches!(
            "::/99999".parse::<IpNet>(),
            Err(CidrError::PrefixTooLong { max: 128, .. })
        ));
    }
}
