//! TLS for the binary's tests: a test CA and a `localhost`/`127.0.0.1` certificate made at
//! test time with rcgen and written as PEM files for `--cert`/`--key`, the broken variants a
//! start must refuse (expired, a key of another certificate), and rustls clients trusting the
//! test CA.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::webdriver::TempDir;
use super::READ_TIMEOUT;

/// The names the leaf certificate is valid for.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// PEM files in a scratch directory (removed on drop), and the CA that signed them.
pub struct TestPki {
    pub dir: TempDir,
    /// Leaf then CA, as a server sends its chain.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A certificate that expired long ago (signed by the same CA), and its own key.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// A valid key, but another certificate's: does not match `cert`.
    pub other_key: PathBuf,
    ca_der: CertificateDer<'static>,
}

fn leaf(names: &[&str]) -> CertificateParams {
    CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("certificate params")
}

impl TestPki {
    /// Makes a fresh CA and its certificates.
    pub fn new() -> TestPki {
        let dir = TempDir::new("tls");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wss-handlers test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("self-signed CA");

        let key = KeyPair::generate().expect("key");
        let cert = leaf(&NAMES).signed_by(&key, &ca).expect("leaf");

        let expired_key = KeyPair::generate().expect("key");
        let mut expired_params = leaf(&NAMES);
        expired_params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let expired = expired_params
            .signed_by(&expired_key, &ca)
            .expect("expired leaf");

        let other_key = KeyPair::generate().expect("key");

        let write = |name: &str, pem: String| {
            let path = dir.0.join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        TestPki {
            cert: write("cert.pem", format!("{}{}", cert.pem(), ca.pem())),
            key: write("key.pem", key.serialize_pem()),
            expired_cert: write("expired.pem", format!("{}{}", expired.pem(), ca.pem())),
            expired_key: write("expired-key.pem", expired_key.serialize_pem()),
            other_key: write("other-key.pem", other_key.serialize_pem()),
            ca_der: ca.der().clone(),
            dir,
        }
    }

    /// `--cert CERT --key KEY` for a good start.
    pub fn args(&self) -> [String; 4] {
        [
            "--cert".into(),
            path_str(&self.cert),
            "--key".into(),
            path_str(&self.key),
        ]
    }

    /// A rustls client trusting only the test CA, offering ALPN `http/1.1` as browsers do.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add the test CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A path as a flag value.
pub fn path_str(path: &std::path::Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_string()
}

/// A WebSocket client over rustls.
pub type TlsClient = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// Opens `wss://localhost:PORT{path}` (the certificate names `localhost`) with `config`.
pub fn wss_connect(
    addr: SocketAddr,
    path: &str,
    config: &Arc<ClientConfig>,
) -> Result<TlsClient, tungstenite::Error> {
    let stream = TcpStream::connect(addr).map_err(tungstenite::Error::Io)?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(tungstenite::Error::Io)?;
    let url = format!("wss://localhost:{}{path}", addr.port());
    match tungstenite::client_tls_with_config(
        url,
        stream,
        None,
        Some(tungstenite::Connector::Rustls(Arc::clone(config))),
    ) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(tungstenite::Error::Io(
            std::io::ErrorKind::WouldBlock.into(),
        )),
    }
}

/// The next data message on a TLS client (pings skipped); panics on close or timeout.
pub fn next_message(ws: &mut TlsClient) -> tungstenite::Message {
    loop {
        match ws.read() {
            Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => return m,
            Ok(tungstenite::Message::Close(frame)) => panic!("closed by the server: {frame:?}"),
            Ok(_) => continue,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// `GET path` over TLS to `addr`; returns the whole response (the server closes after it
/// because of `Connection: close`).
pub fn https_get(addr: SocketAddr, path: &str, config: &Arc<ClientConfig>) -> String {
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = ClientConnection::new(Arc::clone(config), name).expect("client connection");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    let mut tls = StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    )
    .expect("write the request");
    let mut response = Vec::new();
    // A peer that closes without close_notify is an error to rustls; what was read counts.
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}
