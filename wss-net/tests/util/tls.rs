//! TLS helpers: the testkit's test CA and `localhost` certificate, the server config built
//! from their PEM by wss-net's loader, and the rustls clients these tests need.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use wss_net::rustls::pki_types::ServerName;
use wss_net::rustls::{ClientConfig, ClientConnection, ServerConfig, StreamOwned};

use super::{tcp, WAIT};

/// The test CA and certificates: the testkit's, one copy for every crate's tests.
#[allow(unused_imports)]
pub use testkit::pki::{pki, TestPki};

/// What only a wss-net test needs of the test PKI: a server config built by wss-net's own
/// PEM loader (the testkit depends on no workspace crate).
pub trait ServerPki {
    /// The server config of the `localhost` leaf, loaded as a user's PEM would be.
    fn server_config(&self) -> Arc<ServerConfig>;
}

impl ServerPki for TestPki {
    fn server_config(&self) -> Arc<ServerConfig> {
        wss_net::tls::server_config_from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
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
