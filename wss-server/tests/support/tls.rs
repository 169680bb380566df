//! TLS helpers, as in wss-net's tests: a test CA and a `localhost` certificate made at test
//! time (rcgen), the server config, and rustls clients trusting the CA.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tungstenite::client::IntoClientRequest;
use wss_net::rustls::pki_types::{CertificateDer, ServerName};
use wss_net::rustls::{
    self, ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned,
};

use super::WAIT;

pub struct TestPki {
    ca_der: CertificateDer<'static>,
    chain_pem: String,
    key_pem: String,
}

pub fn pki() -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wss-server test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    TestPki {
        ca_der: ca.der().clone(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
    }
}

impl TestPki {
    /// Built through the re-export the `wss` binary uses.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        wss_server::tls::server_config_from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
    }

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

/// A tungstenite handshake to `wss://localhost:PORT{path}` with extra headers (an
/// `Origin`, say).
pub fn try_wss(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
    config: &Arc<ClientConfig>,
) -> Result<super::Client, tungstenite::Error> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("wss://localhost:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let connector = tungstenite::Connector::Rustls(Arc::clone(config));
    match tungstenite::client_tls_with_config(request, stream, None, Some(connector)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            Err(tungstenite::Error::ConnectionClosed)
        }
    }
}

/// Sends `request` over TLS and reads the response head.
pub fn https_head(addr: SocketAddr, request: &str, config: &Arc<ClientConfig>) -> String {
    use std::io::Write;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let sock = TcpStream::connect(addr).expect("tcp connect");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut s = StreamOwned::new(conn, sock);
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF inside a head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
