//! [`ClientOptions`]: what 4D's connectionHandler carries besides the callbacks (`dataType`,
//! `headers`), and the settings a production client needs on top (timeouts, limits,
//! compression, TLS roots, which loops run the connection).

use std::sync::Arc;
use std::time::Duration;

use wss_net::rustls;
use wss_net::NetHandle;
use wss_proto::DeflateConfig;
use wss_server::DataType;

/// Settings of one [`WebSocket`](crate::WebSocket). `ClientOptions::default()` gives the
/// values documented on each field; the `with_*` methods chain.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How received messages reach `on_message` (4D's `dataType`). Default
    /// [`DataType::Text`]: text as text, binary as a blob.
    pub data_type: DataType,
    /// Extra request headers, sent as given after the ones the handshake needs (4D's
    /// `headers`; a repeated name is sent twice). Default none.
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference. Default
    /// none. The server's pick is [`WebSocket::protocol`](crate::WebSocket::protocol); a
    /// pick we did not offer fails the handshake.
    pub protocols: Vec<String>,
    /// The permessage-deflate (RFC 7692) offer and how we compress. Default: offered, as
    /// browsers do (`permessage-deflate; client_max_window_bits`), level 1, messages under
    /// 64 bytes sent uncompressed. The server decides; without its agreement the connection
    /// runs uncompressed. `enabled: false` makes no offer.
    pub deflate: DeflateConfig,
    /// Time allowed for the TCP connection (all resolved addresses together). Default 10 s.
    pub connect_timeout: Duration,
    /// Time allowed from the TCP connection to a complete `101` (the TLS handshake
    /// included). Default 10 s.
    pub handshake_timeout: Duration,
    /// Largest message received, in bytes (the whole message, after inflating). Default
    /// 16 MiB, as on the server; past it the connection fails with 1009.
    pub max_message_size: usize,
    /// How long our close frame waits for the server's answer before the socket is dropped.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// With nothing received for half of it a ping is sent; for all of it the connection
    /// is dropped (1006). Default `None`, as in browsers: a client that needs to notice a
    /// dead path (a NAT that forgot it) sets it.
    pub idle_timeout: Option<Duration>,
    /// The TLS settings for `wss://`. Default `None`: rustls with the Mozilla roots of
    /// `webpki-roots`, built once per process.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The loops that run the connection, a server's say (`Net::handle`). Default `None`:
    /// the process's client loop, one thread started at the first connection.
    pub net: Option<NetHandle>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            data_type: DataType::Text,
            headers: Vec::new(),
            protocols: Vec::new(),
            deflate: DeflateConfig::default(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 16 << 20,
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            tls: None,
            net: None,
        }
    }
}

impl ClientOptions {
    /// Sets [`data_type`](Self::data_type).
    #[must_use]
    pub fn with_data_type(mut self, data_type: DataType) -> Self {
        self.data_type = data_type;
        self
    }

    /// Adds a request header ([`headers`](Self::headers)).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a subprotocol to offer ([`protocols`](Self::protocols)).
    #[must_use]
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Offers permessage-deflate or not ([`deflate`](Self::deflate)`.enabled`).
    #[must_use]
    pub fn with_deflate(mut self, offer: bool) -> Self {
        self.deflate.enabled = offer;
        self
    }

    /// Sets the whole permessage-deflate configuration ([`deflate`](Self::deflate)): a
    /// `client_no_context_takeover` hint, smaller windows, the level, the threshold.
    #[must_use]
    pub fn with_deflate_config(mut self, config: DeflateConfig) -> Self {
        self.deflate = config;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Uses this rustls configuration for `wss://` ([`tls`](Self::tls)).
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Trusts exactly the certificates of `roots` for `wss://` (a private CA, say, or
    /// the platform's store loaded with `rustls-native-certs`).
    #[must_use]
    pub fn with_root_store(self, roots: rustls::RootCertStore) -> Self {
        match tls_config(roots) {
            Ok(config) => self.with_tls(config),
            // The ring provider supports the default versions, so this does not happen; if
            // it did, the default roots stay in force and the log says why.
            Err(e) => {
                log::error!("building a TLS client configuration failed: {e}");
                self
            }
        }
    }

    /// Runs the connection on these loops ([`net`](Self::net)).
    #[must_use]
    pub fn with_net(mut self, net: NetHandle) -> Self {
        self.net = Some(net);
        self
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("data_type", &self.data_type)
            .field("headers", &self.headers)
            .field("protocols", &self.protocols)
            .field("deflate", &self.deflate)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("close_timeout", &self.close_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("tls", &self.tls.is_some())
            .field("net", &self.net.is_some())
            .finish()
    }
}

/// A rustls configuration (ring provider, TLS 1.2 and 1.3) trusting `roots`.
pub(crate) fn tls_config(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The process's default TLS configuration: rustls (ring) with the Mozilla roots, built
/// once.
pub(crate) fn default_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            tls_config(roots).map_err(|e| e.to_string())
        })
        .clone()
}
