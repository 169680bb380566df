//! TLS helpers: a test CA and a `localhost` certificate made at test time (rcgen), the
//! server config built from their PEM, and rustls clients trusting the CA.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use wss_net::rustls::pki_types::{CertificateDer, ServerName};
use wss_net::rustls::{
    self, ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned,
};

use super::{tcp, WAIT};

/// A CA and a leaf certificate for `localhost` and `127.0.0.1` signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    /// Leaf then CA, as a server sends its chain.
    pub chain_pem: String,
    pub key_pem: String,
}

pub fn pki() -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wss-net test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
    }
}

impl TestPki {
    pub fn server_config(&self) -> Arc<ServerConfig> {
        wss_net::tls::server_config_from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
    }

    /// A rustls client trusting only the test CA, offering ALPN `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

pub type TlsClient = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// A tungstenite client over rustls: `wss://localhost:PORT{path}`.
pub fn wss_client(addr: SocketAddr, path: &str, config: &Arc<ClientConfig>) -> TlsClient {
    let stream = tcp(addr);
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, response) = tungstenite::client_tls_with_config(
        url,
        stream,
        None,
        Some(tungstenite::Connector::Rustls(Arc::clone(config))),
    )
    .unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// A blocking TLS stream (handshake done) for speaking raw HTTP over TLS.
pub fn tls_stream(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp(addr));
    s.sock.set_read_timeout(Some(WAIT)).unwrap();
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// Reads a whole `Content-Length` response (head and body) from `s`.
pub fn read_response<S: Read>(s: &mut S) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF inside a head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

/// The first bytes of a real ClientHello, as a client that stalls mid-handshake sends them.
pub fn client_hello_bytes(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out as &mut dyn Write).unwrap();
    }
    out
}
