//! `--cert`, `--key` and `--tls-port`: loading the certificate, and telling scripts where the
//! server listens once it accepts.
//!
//! The readiness contract keeps exactly one line on stdout whatever the listeners: the plain
//! `ws://` address when there is one (scripts written before TLS keep working), else the
//! `wss://` one. With both, the TLS address goes to stderr, in the same form, printed even
//! with `--log-level off` so that a script that asked for `--tls-port 0` can always learn it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use wss_server::{WebServer, WebServerOptions};

use crate::StartError;

/// Loads `--cert` and `--key` into `web` and sets the TLS port. Any problem (a missing file,
/// no PEM inside, an expired certificate, a key that belongs to another certificate) is a
/// failed start with a one-line reason naming the file.
pub(crate) fn apply_tls(
    web: &mut WebServerOptions,
    cert: &Path,
    key: &Path,
    tls_port: Option<u16>,
) -> Result<(), StartError> {
    let config = wss_server::tls::server_config_from_pem_files(cert, key)
        .map_err(|e| StartError::Start(format!("--cert/--key: {e}")))?;
    web.tls = Some(config);
    web.tls_port = tls_port;
    Ok(())
}

/// Where a started web server accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listeners {
    /// One plain port.
    Plain(SocketAddr),
    /// One port, TLS only.
    Tls(SocketAddr),
    /// A plain port and a TLS port (4D's HTTP and HTTPS ports).
    Both { plain: SocketAddr, tls: SocketAddr },
}

impl Listeners {
    /// Reads the bound addresses back (the real ports when 0 was asked for).
    pub(crate) fn of(web: &WebServer) -> Listeners {
        let main = web.local_addr();
        match web.tls_local_addr() {
            None => Listeners::Plain(main),
            Some(tls) if tls == main => Listeners::Tls(main),
            Some(tls) => Listeners::Both { plain: main, tls },
        }
    }

    /// The readiness line for stdout, and the line for stderr when there are two listeners.
    pub(crate) fn lines(&self, path: &str) -> (String, Option<String>) {
        match self {
            Listeners::Plain(a) => (format!("listening on ws://{a}{path}"), None),
            Listeners::Tls(a) => (format!("listening on wss://{a}{path}"), None),
            Listeners::Both { plain, tls } => (
                format!("listening on ws://{plain}{path}"),
                Some(format!("listening on wss://{tls}{path}")),
            ),
        }
    }

    /// Prints the readiness line (flushed), after the stderr line, so that a script that saw
    /// the readiness line finds the TLS address already written.
    pub(crate) fn announce(&self, path: &str) {
        let (stdout_line, stderr_line) = self.lines(path);
        if let Some(line) = stderr_line {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
            let _ = err.flush();
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{stdout_line}");
        let _ = out.flush();
    }

    /// The WebSocket URLs, for the log.
    pub(crate) fn urls(&self, path: &str) -> String {
        match self {
            Listeners::Plain(a) => format!("ws://{a}{path}"),
            Listeners::Tls(a) => format!("wss://{a}{path}"),
            Listeners::Both { plain, tls } => format!("ws://{plain}{path} and wss://{tls}{path}"),
        }
    }

    /// The chat page's URLs, for the log.
    pub(crate) fn page_urls(&self) -> String {
        match self {
            Listeners::Plain(a) => format!("http://{a}/"),
            Listeners::Tls(a) => format!("https://{a}/"),
            Listeners::Both { plain, tls } => format!("http://{plain}/ and https://{tls}/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stdout_line_whatever_the_listeners() {
        let plain: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let tls: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(
            Listeners::Plain(plain).lines("/ws"),
            ("listening on ws://127.0.0.1:8080/ws".into(), None)
        );
        assert_eq!(
            Listeners::Tls(tls).lines("/ws"),
            ("listening on wss://127.0.0.1:8443/ws".into(), None)
        );
        assert_eq!(
            Listeners::Both { plain, tls }.lines("/chat"),
            (
                "listening on ws://127.0.0.1:8080/chat".into(),
                Some("listening on wss://127.0.0.1:8443/chat".into())
            )
        );
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(Listeners::Tls(v6).page_urls(), "https://[::1]:9000/");
    }

    #[test]
    fn missing_certificate_file_is_a_start_error_naming_it() {
        let mut web = WebServerOptions::default();
        let err = apply_tls(
            &mut web,
            Path::new("/no/such/cert.pem"),
            Path::new("/no/such/key.pem"),
            None,
        )
        .expect_err("no such file");
        assert!(matches!(err, StartError::Start(_)), "{err}");
        assert!(err.to_string().contains("/no/such/cert.pem"), "{err}");
        assert!(web.tls.is_none());
    }
}
