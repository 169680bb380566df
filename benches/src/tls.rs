//! TLS for the load generator and the peers (issue 9): `wss://` targets, a transport that is
//! either a plain socket or rustls's sans-IO client over one, the peers' server configuration,
//! and the certificates a benchmark run needs.
//!
//! The transport is chosen once per connection ([`Transport::Plain`] or [`Transport::Tls`]), so
//! the plain path pays one predictable match per socket call and nothing per message. On the
//! TLS side wsbench drives [`ClientConnection`] itself (`read_tls`, `process_new_packets`,
//! `write_tls`) from the same epoll loops, non-blocking, exactly as the plain path uses its
//! socket.
//!
//! Both sides use rustls with the *ring* provider, TLS 1.2 and 1.3 (rustls's safe defaults),
//! ALPN `http/1.1` and the default cipher suites, the configuration wss-net builds for the `wss`
//! binary, so that wss and tokio-rustls negotiate the same protocol, suite and key exchange
//! (the JSON line of a TLS run names them). The client never resumes a session: every handshake
//! measured is a full one.

use crate::client::{self, OP_CLOSE};
use crate::echo::mask_key;
use crate::target::Target;
use crate::BenchError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};
use std::fmt;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ALPN protocol both sides offer: HTTP/1.1, which carries the upgrade.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Named explicitly, never the process default: tokio-rustls could otherwise pick another.
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side of a TLS run: which CA to trust. Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl TlsClient {
    /// Trusts the certificates in the PEM file `ca` (and nothing else).
    pub fn from_ca_file(ca: &Path) -> Result<TlsClient, BenchError> {
        let pem =
            std::fs::read(ca).map_err(|_| BenchError::BadArgument("--ca: cannot read file"))?;
        TlsClient::from_ca_pem(&pem)
    }

    /// Trusts the certificates in `pem`.
    pub fn from_ca_pem(pem: &[u8]) -> Result<TlsClient, BenchError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| BenchError::BadArgument("--ca: not valid PEM"))?;
            roots
                .add(cert)
                .map_err(|_| BenchError::BadArgument("--ca: a certificate cannot be parsed"))?;
        }
        if roots.is_empty() {
            return Err(BenchError::BadArgument("--ca: no CERTIFICATE in the file"));
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|_| BenchError::BadArgument("TLS: no protocol version available"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        // Every counted handshake is a full one (what a new visitor costs the server).
        config.resumption = rustls::client::Resumption::disabled();
        Ok(TlsClient {
            config: Arc::new(config),
        })
    }

    /// A fresh client connection to `target` (nothing sent yet).
    pub fn start(&self, target: &Target) -> Result<ClientConnection, BenchError> {
        ClientConnection::new(Arc::clone(&self.config), server_name(target))
            .map_err(|e| BenchError::Handshake(describe(&e)))
    }
}

/// The name the server's certificate must carry: `localhost` when the URL says so, else the IP.
pub fn server_name(target: &Target) -> ServerName<'static> {
    let host = target.host.to_ascii_lowercase();
    if host == "localhost" || host.starts_with("localhost:") {
        if let Ok(name) = ServerName::try_from("localhost".to_string()) {
            return name;
        }
    }
    ServerName::from(target.addr.ip())
}

/// Parses a `ws://` or `wss://` URL and the `--tls`/`--ca` options: the target, and the TLS
/// client when the run speaks TLS (`wss://` or `--tls`; either needs `--ca`).
pub fn parse_url(
    url: &str,
    tls: bool,
    ca: Option<&Path>,
) -> Result<(Target, Option<TlsClient>), BenchError> {
    let (plain_url, tls) = match url.strip_prefix("wss://") {
        Some(rest) => (format!("ws://{rest}"), true),
        None => (url.to_string(), tls),
    };
    let mut target = Target::parse(&plain_url)?;
    if !tls {
        if ca.is_some() {
            return Err(BenchError::BadArgument("--ca needs --tls or a wss:// URL"));
        }
        return Ok((target, None));
    }
    // Without a port, wss:// means 443 (Target::parse assumed ws://, port 80).
    if url.starts_with("wss://") && !has_port(&plain_url["ws://".len()..]) {
        target.addr.set_port(443);
    }
    let ca = ca.ok_or(BenchError::BadArgument(
        "TLS needs --ca FILE (PEM of the CA that signed the server's certificate)",
    ))?;
    Ok((target, Some(TlsClient::from_ca_file(ca)?)))
}

fn has_port(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or("");
    match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    }
}

/// A short reason for a rustls failure, for the JSON line's `error`.
pub fn describe(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        // Another CA with the same name as the trusted one shows up as a bad signature.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "TLS: the server's certificate is not signed by the --ca authority"
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "TLS: the server's certificate is not valid for the URL's host"
        }
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. })
        | rustls::Error::InvalidCertificate(C::NotValidYet)
        | rustls::Error::InvalidCertificate(C::NotValidYetContext { .. }) => {
            "TLS: the server's certificate is not valid now"
        }
        rustls::Error::InvalidCertificate(_) => "TLS: the server's certificate was refused",
        rustls::Error::AlertReceived(_) => "TLS: the server sent a fatal alert",
        rustls::Error::NoApplicationProtocol => "TLS: the server does not speak ALPN http/1.1",
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "TLS: the server did not answer in TLS (plain server on that port?)"
        }
        _ => "TLS: handshake or record layer failed",
    }
}

/// The rustls error inside an I/O error from a [`Transport`], if that is what failed.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Maps a failed socket or TLS call to the run's error: rustls failures keep their reason.
pub fn io_error(e: &io::Error, context: &'static str) -> BenchError {
    match rustls_error(e) {
        Some(tls) => BenchError::Handshake(describe(tls)),
        None => BenchError::Io(e.kind(), context),
    }
}

/// A connection's byte stream: the socket itself, or TLS over it.
#[derive(Debug)]
pub enum Transport<S> {
    /// Bytes go straight to the socket.
    Plain(S),
    /// rustls encrypts and decrypts; the socket carries records.
    Tls(Box<TlsConn<S>>),
}

/// rustls's client state and the socket it is driven over.
#[derive(Debug)]
pub struct TlsConn<S> {
    conn: ClientConnection,
    sock: S,
}

/// What a TLS connection negotiated (reported in the JSON line, to show both servers agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Protocol version, e.g. `TLSv1_3`.
    pub version: String,
    /// Cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub suite: String,
    /// Key exchange group, e.g. `X25519`.
    pub kx: String,
    /// ALPN protocol the server chose.
    pub alpn: String,
}

impl<S> Transport<S> {
    /// TLS over `sock`, driven by `conn`.
    pub fn tls(conn: ClientConnection, sock: S) -> Transport<S> {
        Transport::Tls(Box::new(TlsConn { conn, sock }))
    }

    /// The socket (to register it, set options, read its errors).
    pub fn socket(&self) -> &S {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }

    /// The socket, mutably.
    pub fn socket_mut(&mut self) -> &mut S {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }

    /// Whether this connection speaks TLS.
    #[inline]
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The same transport over another socket type (blocking std to mio, after the setup).
    pub fn map_socket<T>(self, f: impl FnOnce(S) -> T) -> Transport<T> {
        match self {
            Transport::Plain(s) => Transport::Plain(f(s)),
            Transport::Tls(t) => {
                let TlsConn { conn, sock } = *t;
                Transport::Tls(Box::new(TlsConn {
                    conn,
                    sock: f(sock),
                }))
            }
        }
    }

    /// Protocol, suite, group and ALPN, once the TLS handshake is done.
    pub fn negotiated(&self) -> Option<Negotiated> {
        let Transport::Tls(t) = self else { return None };
        let c = &t.conn;
        Some(Negotiated {
            version: format!("{:?}", c.protocol_version()?),
            suite: format!("{:?}", c.negotiated_cipher_suite()?.suite()),
            kx: c
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
            alpn: String::from_utf8_lossy(c.alpn_protocol().unwrap_or_default()).into_owned(),
        })
    }
}

impl<S: Read + Write> TlsConn<S> {
    /// Writes queued records. `Ok(true)`: all out; `Ok(false)`: the socket is full.
    fn drain(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Plaintext if any is decrypted; else one `read_tls` from the socket and the records it
    /// completed. End of stream (with or without close_notify) reads as `Ok(0)`, like TCP.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let processed = self.conn.process_new_packets();
            // Handshake replies, alerts and plaintext queued while handshaking go out now;
            // a full socket keeps them for the next write or flush (WRITABLE follows).
            let drained = self.drain();
            if let Err(e) = processed {
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            drained?;
        }
    }

    /// Accepts as much of `bufs` as the socket takes: stops only when the socket is full, so
    /// a short count always means WRITABLE will fire (edge-triggered loops rely on that).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut accepted = 0;
        loop {
            if !self.drain()? {
                return if accepted > 0 {
                    Ok(accepted)
                } else {
                    Err(ErrorKind::WouldBlock.into())
                };
            }
            if accepted == total {
                return Ok(total);
            }
            let (i, off) = locate(bufs, accepted);
            // rustls copies the slices into records of up to 16 KiB: one write_tls, one writev.
            let n = if off == 0 {
                self.conn.writer().write_vectored(&bufs[i..])?
            } else {
                self.conn.writer().write(&bufs[i][off..])?
            };
            if n == 0 && !self.conn.wants_write() {
                return Err(ErrorKind::WriteZero.into());
            }
            accepted += n;
        }
    }
}

/// Index of the slice holding byte `at` of `bufs`, and the offset inside it.
fn locate(bufs: &[IoSlice<'_>], mut at: usize) -> (usize, usize) {
    for (i, b) in bufs.iter().enumerate() {
        if at < b.len() {
            return (i, at);
        }
        at -= b.len();
    }
    (bufs.len(), 0)
}

impl<S: Read + Write> Read for Transport<S> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl<S: Read + Write> Write for Transport<S> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write_vectored(&[IoSlice::new(buf)]),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
            Transport::Tls(t) => t.write_vectored(bufs),
        }
    }

    /// Plain: nothing to do. TLS: sends records rustls still holds; a full socket is not an
    /// error (they go out on the next WRITABLE).
    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.drain().map(|_| ()),
        }
    }
}

/// Connects, completes the TLS handshake when `tls` is given, and upgrades, all blocking
/// (setup phases only). Returns the transport (blocking, no read timeout) and any frame bytes
/// that came with the 101.
pub fn connect_blocking(
    target: &Target,
    source: Option<IpAddr>,
    timeout: Duration,
    tls: Option<&TlsClient>,
) -> Result<(Transport<TcpStream>, Vec<u8>), BenchError> {
    let Some(tls) = tls else {
        let (stream, early) = client::connect_blocking(target, source, timeout)?;
        return Ok((Transport::Plain(stream), early));
    };
    let deadline = Instant::now() + timeout;
    let sock = client::tcp_connect(target.addr, source, timeout)?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .map_err(BenchError::io("set timeout"))?;
    let mut transport = Transport::tls(tls.start(target)?, sock);
    if let Transport::Tls(t) = &mut transport {
        while t.conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err(BenchError::Handshake("TLS: handshake timed out"));
            }
            t.conn
                .complete_io(&mut t.sock)
                .map_err(|e| match e.kind() {
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => BenchError::Handshake(
                        "TLS: the server hung up during the handshake (plain server on that port?)",
                    ),
                    _ => io_error(&e, "TLS handshake"),
                })?;
        }
    }
    transport
        .write_all(&client::request(target))
        .map_err(|e| io_error(&e, "write request"))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    loop {
        if Instant::now() > deadline {
            return Err(BenchError::Handshake("timed out"));
        }
        let n = transport
            .read(&mut chunk)
            .map_err(|e| io_error(&e, "read response"))?;
        if n == 0 {
            return Err(BenchError::Handshake(
                "connection closed before the response",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(used) = client::check_response(&head)? {
            transport
                .socket()
                .set_read_timeout(None)
                .and_then(|()| transport.socket().set_write_timeout(None))
                .map_err(BenchError::io("clear timeout"))?;
            return Ok((transport, head.split_off(used)));
        }
    }
}

/// One connection that upgrades, notes what TLS negotiated, and closes (before a run, so the
/// JSON line can show the protocol and suite every connection of the run will use).
pub fn probe(target: &Target, tls: &TlsClient) -> Result<Negotiated, BenchError> {
    let (mut t, _) = connect_blocking(target, None, Duration::from_secs(5), Some(tls))?;
    let negotiated = t
        .negotiated()
        .ok_or(BenchError::Handshake("TLS: nothing negotiated"))?;
    let mut close = Vec::with_capacity(8);
    client::encode_masked(&mut close, OP_CLOSE, &1000u16.to_be_bytes(), mask_key());
    // The answer does not matter: the connection was only opened to see the handshake.
    let _ = t.write_all(&close);
    if let Transport::Tls(c) = &mut t {
        c.conn.send_close_notify();
        let _ = c.drain();
    }
    Ok(negotiated)
}

/// Why a peer's TLS configuration or a benchmark certificate could not be made.
#[derive(Debug)]
pub enum CertError {
    /// A file could not be read or written.
    File(PathBuf, io::Error),
    /// A PEM file holds no certificate or no private key.
    Missing(PathBuf, &'static str),
    /// rustls refused the certificate and key (most often: they do not belong together).
    Rejected(rustls::Error),
    /// rcgen could not make a key or a certificate.
    Generate(rcgen::Error),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::File(p, e) => write!(f, "{}: {e}", p.display()),
            CertError::Missing(p, what) => write!(f, "{}: {what}", p.display()),
            CertError::Rejected(e) => write!(f, "certificate or key refused: {e}"),
            CertError::Generate(e) => write!(f, "cannot generate the certificate: {e}"),
        }
    }
}

impl std::error::Error for CertError {}

/// The server configuration of the TLS peers: the same choices as wss-net's (ring, TLS 1.2 and
/// 1.3, default suites, no client certificates, ALPN `http/1.1`), from PEM files.
pub fn server_config_from_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, CertError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| CertError::File(p.into(), e));
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertError::Missing(cert.into(), "not valid PEM"))?;
    if chain.is_empty() {
        return Err(CertError::Missing(cert.into(), "no CERTIFICATE section"));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| CertError::Missing(key.into(), "no PEM private key"))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(CertError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(CertError::Rejected)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// File names [`write_bench_pki`] creates.
pub const CA_FILE: &str = "ca.pem";
/// Leaf certificate then CA, as a server sends its chain.
pub const CERT_FILE: &str = "cert.pem";
/// The leaf's private key (PKCS#8).
pub const KEY_FILE: &str = "key.pem";

/// PEM text of a fresh benchmark CA and a leaf it signed for `localhost`, 127.0.0.1 and ::1.
#[derive(Debug)]
pub struct BenchPki {
    /// The CA certificate (what `--ca` trusts).
    pub ca_pem: String,
    /// Leaf then CA.
    pub chain_pem: String,
    /// The leaf's key.
    pub key_pem: String,
}

/// Makes a CA and a leaf certificate (ECDSA P-256, rcgen's default, as the tests use).
pub fn bench_pki() -> Result<BenchPki, CertError> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(CertError::Generate)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wss-benches CA (benchmarks only)");
    let ca_key = KeyPair::generate().map_err(CertError::Generate)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(CertError::Generate)?;
    let key = KeyPair::generate().map_err(CertError::Generate)?;
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let leaf = CertificateParams::new(names)
        .map_err(CertError::Generate)?
        .signed_by(&key, &ca)
        .map_err(CertError::Generate)?;
    Ok(BenchPki {
        ca_pem: ca.pem(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
    })
}

/// Writes [`CA_FILE`], [`CERT_FILE`] and [`KEY_FILE`] into `dir` (created if missing).
pub fn write_bench_pki(dir: &Path) -> Result<BenchPki, CertError> {
    let pki = bench_pki()?;
    std::fs::create_dir_all(dir).map_err(|e| CertError::File(dir.into(), e))?;
    for (name, text) in [
        (CA_FILE, &pki.ca_pem),
        (CERT_FILE, &pki.chain_pem),
        (KEY_FILE, &pki.key_pem),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| CertError::File(path, e))?;
    }
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wss_urls_turn_tls_on_and_need_a_ca() {
        assert!(matches!(
            parse_url("wss://127.0.0.1:9/", false, None),
            Err(BenchError::BadArgument(_))
        ));
        assert!(matches!(
            parse_url("ws://127.0.0.1:9/", true, None),
            Err(BenchError::BadArgument(_))
        ));
        assert!(matches!(
            parse_url("ws://127.0.0.1:9/", false, Some(Path::new("ca.pem"))),
            Err(BenchError::BadArgument(_))
        ));
        let (t, tls) = parse_url("ws://127.0.0.1:9/x", false, None).unwrap();
        assert_eq!(
            (t.addr.port(), t.path.as_str(), tls.is_none()),
            (9, "/x", true)
        );
        assert!(matches!(
            parse_url("wss://10.0.0.1:9/", false, Some(Path::new("ca.pem"))),
            Err(BenchError::NotLoopback(_))
        ));
        assert!(has_port("[::1]:5/") && !has_port("[::1]/") && !has_port("localhost/a:b"));
    }

    #[test]
    fn server_name_is_localhost_or_the_ip() {
        let t = Target::parse("ws://localhost:5/").unwrap();
        assert_eq!(
            format!("{:?}", server_name(&t)),
            format!("{:?}", ServerName::try_from("localhost").unwrap())
        );
        let t = Target::parse("ws://127.0.0.1:5/").unwrap();
        assert_eq!(server_name(&t), ServerName::from(t.addr.ip()));
    }

    #[test]
    fn generated_pki_loads_on_both_sides() {
        let dir = std::env::temp_dir().join(format!("wsbench-pki-{}", std::process::id()));
        let pki = write_bench_pki(&dir).unwrap();
        assert!(server_config_from_pem_files(&dir.join(CERT_FILE), &dir.join(KEY_FILE)).is_ok());
        assert!(TlsClient::from_ca_file(&dir.join(CA_FILE)).is_ok());
        // A key that is not the certificate's is refused.
        let other = bench_pki().unwrap();
        std::fs::write(dir.join("other.pem"), other.key_pem).unwrap();
        assert!(matches!(
            server_config_from_pem_files(&dir.join(CERT_FILE), &dir.join("other.pem")),
            Err(CertError::Rejected(_))
        ));
        assert!(matches!(
            TlsClient::from_ca_pem(pki.key_pem.as_bytes()),
            Err(BenchError::BadArgument(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn locate_finds_the_slice_and_offset() {
        let (a, b) = ([0u8; 3], [0u8; 5]);
        let bufs = [IoSlice::new(&a), IoSlice::new(&b)];
        assert_eq!(locate(&bufs, 0), (0, 0));
        assert_eq!(locate(&bufs, 3), (1, 0));
        assert_eq!(locate(&bufs, 4), (1, 1));
        assert_eq!(locate(&bufs, 8), (2, 0));
    }
}
