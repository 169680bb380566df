//! TLS helpers: the testkit's test CA and `localhost` certificate, and the clients these
//! tests need on top of it.
#![allow(unused_imports)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use tungstenite::client::IntoClientRequest;
use wss_net::rustls::pki_types::ServerName;
use wss_net::rustls::{ClientConfig, ClientConnection, ServerConfig, StreamOwned};
use wss_server::tls::server_config_from_pem;

use super::WAIT;

/// The test CA and certificates: the testkit's, one copy for every crate's tests.
pub use testkit::pki::{pki, TestPki};

/// The server side of the test PKI, loaded by wss-net's PEM loader as a user's PEM is.
pub trait ServerPki {
    fn server_config(&self) -> Arc<ServerConfig>;
}

impl ServerPki for TestPki {
    fn server_config(&self) -> Arc<ServerConfig> {
        server_config_from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
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
