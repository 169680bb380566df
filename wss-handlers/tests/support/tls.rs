//! TLS for the binary's tests: the testkit's test CA and certificates written as PEM files
//! for `--cert`/`--key` (the broken variants a start must refuse included: expired, a key of
//! another certificate), and rustls clients trusting the test CA.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use testkit::TestPki;

use super::webdriver::TempDir;
use super::READ_TIMEOUT;

/// The testkit's test CA and certificates, written as PEM files in a scratch directory
/// (removed on drop) for `--cert`/`--key`.
pub struct PkiFiles {
    pub dir: TempDir,
    /// Leaf then CA, as a server sends its chain.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A certificate that expired long ago (signed by the same CA), and its own key.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// A valid key, but another certificate's: does not match `cert`.
    pub other_key: PathBuf,
    pki: TestPki,
}

impl PkiFiles {
    /// Makes a fresh CA and its certificates, and writes them.
    pub fn new() -> PkiFiles {
        let dir = TempDir::new("tls");
        let pki = TestPki::new();
        let files = pki.write_files(&dir.0);
        PkiFiles {
            cert: files.cert,
            key: files.key,
            expired_cert: files.expired_cert,
            expired_key: files.expired_key,
            other_key: files.other_key,
            pki,
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
        self.pki.client_config()
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
