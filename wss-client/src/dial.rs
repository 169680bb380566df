//! Making the connection, on the WebSocket's worker thread before the loop takes it: the
//! URL, the TCP connection (connect timeout), TLS, the upgrade request and its `101`
//! (handshake timeout). Blocking, with socket timeouts: the worker has nothing else to do
//! until the connection is open, and [`WebSocket::terminate`](crate::WebSocket::terminate)
//! interrupts it by shutting the socket down.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;
use wss_net::rustls;
use wss_proto::handshake::{deflate, ClientHandshake, ClientHandshakeError};
use wss_proto::{CloseReply, Config, Connection, Role};

use crate::error::ConnectError;
use crate::options::{default_tls, ClientOptions};

/// Bytes read at a time while waiting for the `101`.
const READ_CHUNK: usize = 4096;

/// Where to connect, from the URL.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// `wss://`.
    pub(crate) tls: bool,
    /// The host as in the URL (IPv6 without brackets), for DNS and the TLS server name.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header: the host (bracketed when IPv6), with the port when it is not the
    /// scheme's default.
    pub(crate) authority: String,
    /// Path and query (`/chat?room=1`).
    pub(crate) resource: String,
}

/// Checks a `ws://` or `wss://` URL (RFC 6455 §3: no fragment).
pub(crate) fn parse(url: &str) -> Result<Target, ConnectError> {
    let bad = |why: &str| ConnectError::InvalidUrl(format!("{why}: {url:?}"));
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let tls = match parsed.scheme() {
        "ws" => false,
        "wss" => true,
        _ => return Err(bad("the scheme must be ws or wss")),
    };
    if parsed.fragment().is_some() {
        return Err(bad("a WebSocket URL has no fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials in the URL are not sent; use an Authorization header",
        ));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(bad("no host")),
    };
    let default_port = if tls { 443 } else { 80 };
    let port = parsed.port().unwrap_or(default_port);
    let host_in_url = parsed.host_str().unwrap_or_default();
    let authority = if port == default_port {
        host_in_url.to_owned()
    } else {
        format!("{host_in_url}:{port}")
    };
    let mut resource = parsed.path().to_owned();
    if resource.is_empty() {
        resource.push('/');
    }
    if let Some(query) = parsed.query() {
        resource.push('?');
        resource.push_str(query);
    }
    Ok(Target {
        tls,
        host,
        port,
        authority,
        resource,
    })
}

/// A connection past its opening handshake, ready for a loop.
pub(crate) struct Established {
    pub(crate) stream: TcpStream,
    pub(crate) ws: Connection,
    pub(crate) tls: Option<rustls::ClientConnection>,
    /// The subprotocol the server picked.
    pub(crate) protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` answer.
    pub(crate) extensions: Option<String>,
}

/// Connects to `target` and upgrades. `on_socket` sees the socket as soon as it exists (to
/// let `terminate` shut it down); `Err(Aborted)` from a read then ends the attempt.
pub(crate) fn establish(
    target: &Target,
    options: &ClientOptions,
    on_socket: impl FnOnce(&TcpStream),
) -> Result<Established, ConnectError> {
    let mut stream = connect(target, options.connect_timeout)?;
    on_socket(&stream);
    let deadline = Instant::now() + options.handshake_timeout;
    let _ = stream.set_nodelay(true);

    let mut random = [0u8; 24];
    getrandom::getrandom(&mut random)
        .map_err(|e| ConnectError::Handshake(format!("no random bytes for the key: {e}")))?;
    let mut key = [0u8; 16];
    key.copy_from_slice(&random[..16]);
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&random[16..]);

    let mut headers = options.headers.clone();
    if !options.protocols.is_empty() {
        headers.push((
            "Sec-WebSocket-Protocol".to_owned(),
            options.protocols.join(", "),
        ));
    }
    let mut handshake = ClientHandshake::new(&target.authority, &target.resource, key, &headers);
    // Does nothing when the offer is turned off.
    handshake = handshake.with_deflate(&options.deflate);

    let mut tls = if target.tls {
        Some(start_tls(target, options)?)
    } else {
        None
    };
    let request = handshake.request_bytes();
    let mut chunk = vec![0u8; READ_CHUNK];
    let early = {
        let mut io = Io {
            stream: &mut stream,
            tls: tls.as_mut(),
            deadline,
        };
        io.write_all(&request).map_err(|e| io_failure(&e))?;
        io.flush().map_err(|e| io_failure(&e))?;
        loop {
            let n = io.read(&mut chunk).map_err(|e| io_failure(&e))?;
            if n == 0 {
                return Err(ConnectError::Handshake(
                    "the server closed the connection before answering".to_owned(),
                ));
            }
            let data = chunk.get(..n).unwrap_or_default();
            match handshake.feed_response(data) {
                Ok(None) => {}
                Ok(Some(used)) => break data.get(used..).unwrap_or_default().to_vec(),
                Err(ClientHandshakeError::UnexpectedStatus(status)) => {
                    return Err(ConnectError::Refused(status))
                }
                Err(e) => return Err(ConnectError::Handshake(e.to_string())),
            }
        }
    };
    stream
        .set_read_timeout(None)
        .and_then(|()| stream.set_write_timeout(None))
        .map_err(ConnectError::Connect)?;

    let config = Config {
        max_frame_size: options.max_message_size,
        max_message_size: options.max_message_size,
        close_timeout: options.close_timeout,
        idle_timeout: options.idle_timeout,
        // Never zero: the mask generator needs a non-zero state.
        mask_seed: u64::from_le_bytes(seed) | 1,
        deflate: handshake.deflate_params().cloned(),
        // Callbacks run on the client's worker: the answers they send to messages that came
        // before the server's close (or a failure) go out before our close frame, which
        // waits for the worker's `answered`.
        close_reply: CloseReply::Deferred,
        ..Config::default()
    };
    let now = Instant::now();
    let mut ws = Connection::new(Role::Client, config, now);
    if !early.is_empty() {
        // A scratch of this dial's own: the events it decodes keep their ring and move with
        // the connection to the loop, which takes them with its scratch.
        ws.receive(&mut wss_proto::Scratch::new(), now, &early);
    }
    Ok(Established {
        stream,
        ws,
        tls,
        protocol: handshake.protocol().map(str::to_owned),
        extensions: handshake
            .response_headers()
            .get(deflate::HEADER_NAME)
            .map(str::to_owned),
    })
}

/// The first address of `target` that accepts, within `timeout` for all of them.
fn connect(target: &Target, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let deadline = Instant::now() + timeout;
    // Resolving blocks without a timeout of its own (the system resolver has one).
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(ConnectError::Connect)?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnectError::ConnectTimeout);
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = e;
                if Instant::now() >= deadline {
                    return Err(ConnectError::ConnectTimeout);
                }
            }
            Err(e) => last = e,
        }
    }
    Err(ConnectError::Connect(last))
}

fn start_tls(
    target: &Target,
    options: &ClientOptions,
) -> Result<rustls::ClientConnection, ConnectError> {
    let config = match &options.tls {
        Some(config) => Arc::clone(config),
        None => default_tls().map_err(ConnectError::Tls)?,
    };
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| ConnectError::InvalidUrl(format!("{e}: {:?}", target.host)))?;
    rustls::ClientConnection::new(config, name).map_err(|e| ConnectError::Tls(e.to_string()))
}

/// What a failed read or write during the handshake means.
fn io_failure(e: &io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnectError::HandshakeTimeout,
        io::ErrorKind::InvalidData => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => ConnectError::Tls(tls.to_string()),
            None => ConnectError::Handshake(e.to_string()),
        },
        _ => ConnectError::Handshake(format!("I/O error during the handshake: {e}")),
    }
}

/// The handshake's byte stream: the socket, through TLS when there is a session, with every
/// call bounded by the handshake's deadline.
struct Io<'a> {
    stream: &'a mut TcpStream,
    tls: Option<&'a mut rustls::ClientConnection>,
    deadline: Instant,
}

impl Io<'_> {
    /// Sets the socket timeouts to what is left before the deadline.
    fn arm(&mut self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.set_write_timeout(Some(left))
    }
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        match self.tls.as_deref_mut() {
            Some(tls) => rustls::Stream::new(tls, &mut *self.stream).read(buf),
            None => self.stream.read(buf),
        }
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        match self.tls.as_deref_mut() {
            Some(tls) => rustls::Stream::new(tls, &mut *self.stream).write(buf),
            None => self.stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.arm()?;
        match self.tls.as_deref_mut() {
            Some(tls) => rustls::Stream::new(tls, &mut *self.stream).flush(),
            None => self.stream.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gives_host_header_and_resource() {
        let t = parse("ws://example.com/chat?room=1").unwrap();
        assert!(!t.tls);
        assert_eq!((t.host.as_str(), t.port), ("example.com", 80));
        assert_eq!(t.authority, "example.com");
        assert_eq!(t.resource, "/chat?room=1");

        let t = parse("wss://[::1]:8443").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert_eq!(t.authority, "[::1]:8443");
        assert_eq!(t.resource, "/");
    }

    #[test]
    fn urls_a_client_cannot_use_are_refused_with_the_reason() {
        for (url, why) in [
            ("http://example.com/", "scheme"),
            ("ws://example.com/#top", "fragment"),
            ("ws://user:pw@example.com/", "credentials"),
            ("not a url", "relative URL"),
        ] {
            match parse(url) {
                Err(ConnectError::InvalidUrl(msg)) => assert!(msg.contains(why), "{msg}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
