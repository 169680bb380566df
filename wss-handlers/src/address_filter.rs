//! [`AddressFilter`]: the seed's `VerifyAddress`, accepting or refusing each connection by the
//! client's IP address before any other handler sees it.

use std::net::IpAddr;

use wss_server::{
    ConnectionEvent, ErrorEvent, OpenEvent, ServerHandler, ServerTerminateEvent, WebSocketServer,
};

use crate::cidr::IpNet;

/// Wraps a server handler and refuses connections from addresses it does not allow: the
/// refused client gets `403 Forbidden` (its `on_connection` returns `None`) and the wrapped
/// handler never hears of it.
///
/// Rules, in order: an address in a **deny** network is refused; then, if the **allow** list is
/// empty every address passes, otherwise only addresses in an allowed network do. IPv4 and IPv6
/// networks may be mixed; IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`) match IPv4 networks.
///
/// ```no_run
/// use wss_handlers::{AddressFilter, Echo};
/// use wss_server::{ServerOptions, WebServer, WebServerOptions, WebSocketServer};
///
/// let filter = AddressFilter::new(Echo)
///     .allow("127.0.0.0/8".parse()?)
///     .allow("::1".parse()?)
///     .allow("10.0.0.0/8".parse()?)
///     .deny("10.6.6.0/24".parse()?);
/// let web = WebServer::start(WebServerOptions::default())?;
/// let wss = WebSocketServer::new(&web, filter, ServerOptions::default())?;
/// # drop(wss);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AddressFilter<H> {
    inner: H,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    refused: u64,
}

impl<H> AddressFilter<H> {
    /// Wraps `inner`; with no rules added, every address passes.
    pub fn new(inner: H) -> Self {
        AddressFilter {
            inner,
            allow: Vec::new(),
            deny: Vec::new(),
            refused: 0,
        }
    }

    /// Adds a network to the allow list (from then on, only listed networks pass).
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allow.push(net);
        self
    }

    /// Adds networks to the allow list.
    pub fn allow_all(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.allow.extend(nets);
        self
    }

    /// Adds a network to the deny list (checked first).
    pub fn deny(mut self, net: IpNet) -> Self {
        self.deny.push(net);
        self
    }

    /// Whether a client at `ip` may connect.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|n| n.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip))
    }

    /// How many connections were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The wrapped handler, mutably.
    pub fn inner_mut(&mut self) -> &mut H {
        &mut self.inner
    }
}

impl<H: ServerHandler> ServerHandler for AddressFilter<H> {
    type Connection = H::Connection;

    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<H::Connection> {
        let ip = event.request.remote_address;
        if !self.is_allowed(ip) {
            self.refused += 1;
            log::info!("address filter: refused a connection from {ip}");
            return None;
        }
        self.inner.on_connection(wss, event)
    }

    fn on_open(&mut self, wss: &WebSocketServer, event: &OpenEvent) {
        self.inner.on_open(wss, event)
    }

    fn on_terminate(&mut self, wss: &WebSocketServer, event: &ServerTerminateEvent) {
        self.inner.on_terminate(wss, event)
    }

    fn on_error(&mut self, wss: &WebSocketServer, event: &ErrorEvent) {
        self.inner.on_error(wss, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_rules_allow_everyone() {
        let f = AddressFilter::new(());
        assert!(f.is_allowed(ip("203.0.113.1")));
        assert!(f.is_allowed(ip("2001:db8::1")));
    }

    #[test]
    fn allow_list_admits_only_listed_networks() {
        let f = AddressFilter::new(())
            .allow("192.168.0.0/16".parse().unwrap())
            .allow("2001:db8::/32".parse().unwrap());
        assert!(f.is_allowed(ip("192.168.1.1")));
        assert!(f.is_allowed(ip("::ffff:192.168.1.1")));
        assert!(f.is_allowed(ip("2001:db8:1::5")));
        assert!(!f.is_allowed(ip("10.0.0.1")));
        assert!(!f.is_allowed(ip("2001:db9::1")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let f = AddressFilter::new(())
            .allow("10.0.0.0/8".parse().unwrap())
            .deny("10.6.6.6".parse().unwrap());
        assert!(f.is_allowed(ip("10.6.6.5")));
        assert!(!f.is_allowed(ip("10.6.6.6")));
        let deny_only = AddressFilter::new(()).deny("::1".parse().unwrap());
        assert!(!deny_only.is_allowed(ip("::1")));
        assert!(deny_only.is_allowed(ip("127.0.0.1")));
    }
}
