//! TLS (`wss://`, `https://`) with rustls: loading a certificate and key, and the errors that
//! can stop a server from starting.
//!
//! The loops drive rustls themselves (see the crate docs); this module only builds the
//! [`rustls::ServerConfig`] that [`NetConfig::tls`](crate::NetConfig::tls) carries. Build one
//! with [`server_config_from_pem_files`] (the usual case), [`server_config_from_pem`] (PEM
//! already in memory) or [`server_config`] (DER), or bring your own: any `ServerConfig` works,
//! but only the ones built here are checked for expiry and get ALPN `http/1.1`.
//!
//! The crypto provider is *ring*, named explicitly (never the process default), so another
//! crate enabling aws-lc-rs in the same build cannot make the choice ambiguous.

mod validity;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

pub use validity::Validity;

/// The ALPN protocol the loops speak: HTTP/1.1, carrying the WebSocket upgrade (RFC 6455).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be built. Each variant names the file it is about,
/// so a server can print it and exit.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// A file is not valid PEM (broken base64, a section without its end line).
    Pem {
        /// The file (or `"<memory>"`).
        path: PathBuf,
        /// What was wrong.
        error: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    NoCertificate(PathBuf),
    /// The key file holds no private key (PKCS#8, PKCS#1 or SEC1 section).
    NoPrivateKey(PathBuf),
    /// The certificate could not be parsed as X.509 (its validity dates, at least).
    BadCertificate(PathBuf),
    /// The certificate is not valid now: expired or not yet valid.
    NotValidNow {
        /// The certificate file.
        path: PathBuf,
        /// Its validity period.
        validity: Validity,
    },
    /// rustls refused the pair: most often the key does not belong to the certificate
    /// (`InconsistentKeys(KeyMismatch)`), or the key type is not supported.
    Rejected(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TlsError::Pem { path, error } => {
                write!(f, "{} is not valid PEM: {error}", path.display())
            }
            TlsError::NoCertificate(p) => {
                write!(f, "{} contains no PEM CERTIFICATE section", p.display())
            }
            TlsError::NoPrivateKey(p) => write!(
                f,
                "{} contains no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                p.display()
            ),
            TlsError::BadCertificate(p) => {
                write!(
                    f,
                    "the first certificate in {} cannot be parsed",
                    p.display()
                )
            }
            TlsError::NotValidNow { path, validity } => write!(
                f,
                "the certificate in {} is not valid now (valid from {} to {}, UTC)",
                path.display(),
                validity.not_before_utc(),
                validity.not_after_utc()
            ),
            TlsError::Rejected(rustls::Error::InconsistentKeys(_)) => {
                f.write_str("the private key does not match the certificate")
            }
            TlsError::Rejected(e) => write!(f, "certificate or key refused: {e}"),
        }
    }
}

// The cause is part of the Display text and stays reachable as the variant's field, so
// source() returns None: a report that walks the chain (anyhow's `{:#}`) prints it once.
impl std::error::Error for TlsError {}

/// Why an established TLS connection failed (in [`ConnError::Tls`](crate::ConnError::Tls)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// A record did not decrypt: corrupted or tampered with on the way.
    Decrypt,
    /// The peer sent a fatal alert (its TLS alert code, RFC 8446 §6).
    AlertReceived(u8),
    /// The peer sent bytes that are not well-formed TLS records or messages.
    BadMessage,
    /// The peer broke a rule of the TLS protocol.
    PeerMisbehaved,
    /// Another error reported by rustls.
    Other,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Decrypt => f.write_str("a TLS record did not decrypt"),
            TlsFailure::AlertReceived(code) => write!(f, "the peer sent TLS alert {code}"),
            TlsFailure::BadMessage => f.write_str("malformed TLS message"),
            TlsFailure::PeerMisbehaved => f.write_str("the peer broke the TLS protocol"),
            TlsFailure::Other => f.write_str("TLS error"),
        }
    }
}

/// Loads a PEM certificate chain (leaf first, then intermediates) and a PEM private key, and
/// builds the server configuration: TLS 1.2 and 1.3, no client certificates, ALPN
/// `http/1.1`, ring as the crypto provider.
///
/// # Errors
/// A file is missing or unreadable, holds no certificate or no key, the certificate is
/// expired or not yet valid, or the key does not match the certificate.
///
/// ```no_run
/// let tls = wss_net::tls::server_config_from_pem_files("cert.pem", "key.pem")?;
/// let config = wss_net::NetConfig { tls: Some(tls), ..Default::default() };
/// # Ok::<(), wss_net::tls::TlsError>(())
/// ```
pub fn server_config_from_pem_files(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = cert_path.as_ref();
    let key_path = key_path.as_ref();
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    build(&cert_pem, cert_path, &key_pem, key_path, SystemTime::now())
}

/// As [`server_config_from_pem_files`], from PEM text in memory.
///
/// # Errors
/// As [`server_config_from_pem_files`] (the path in errors is `<memory>`).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    let here = Path::new("<memory>");
    build(cert_pem, here, key_pem, here, SystemTime::now())
}

/// As [`server_config_from_pem_files`], from DER certificates (leaf first) and a DER key.
/// The leaf's dates are checked against `now`.
///
/// # Errors
/// No certificate, a leaf that cannot be parsed or is not valid at `now`, or rustls refuses
/// the pair.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    now: SystemTime,
) -> Result<Arc<ServerConfig>, TlsError> {
    let here = Path::new("<memory>");
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::NoCertificate(here.into()))?;
    check_dates(leaf, here, now)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rejected)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.into(),
        error,
    })
}

fn build(
    cert_pem: &[u8],
    cert_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
    now: SystemTime,
) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| TlsError::Pem { path, error }
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert_path))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate(cert_path.into()));
    };
    check_dates(leaf, cert_path, now)?;
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => return Err(TlsError::NoPrivateKey(key_path.into())),
        Err(error) => return Err(pem_error(key_path)(error)),
    };
    server_config(chain, key, now).map_err(|e| match e {
        // Dates were checked above with the real path; keep paths in what remains.
        TlsError::NoCertificate(_) => TlsError::NoCertificate(cert_path.into()),
        other => other,
    })
}

fn check_dates(leaf: &CertificateDer<'_>, path: &Path, now: SystemTime) -> Result<(), TlsError> {
    let validity = Validity::of(leaf).ok_or_else(|| TlsError::BadCertificate(path.into()))?;
    if validity.contains(now) {
        Ok(())
    } else {
        Err(TlsError::NotValidNow {
            path: path.into(),
            validity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_builds_with_alpn_http11() {
        let (cert, key) = pair();
        let config = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let (cert, _) = pair();
        let (_, other_key) = pair();
        let err = server_config_from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(
            matches!(err, TlsError::Rejected(rustls::Error::InconsistentKeys(_))),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the private key does not match the certificate"
        );
    }

    #[test]
    fn missing_sections_are_named() {
        let (cert, key) = pair();
        let err = server_config_from_pem(b"", key.as_bytes()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err:?}");
        let err = server_config_from_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey(_)), "{err:?}");
        let err = server_config_from_pem(b"-----BEGIN CERTIFICATE-----\n!!\n", key.as_bytes())
            .unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = server_config_from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .unwrap_err();
        match &err {
            TlsError::Read { path, error } => {
                assert_eq!(path, Path::new("/nonexistent/cert.pem"));
                assert_eq!(error.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("/nonexistent/cert.pem"));
        // The io error is in the message, so it is not also the source (printed once by a
        // report that walks the chain).
        let TlsError::Read { error, .. } = &err else {
            unreachable!()
        };
        assert!(err.to_string().ends_with(&error.to_string()), "{err}");
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn an_expired_certificate_is_refused_at_start() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let err = server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .unwrap_err();
        match &err {
            TlsError::NotValidNow { validity, .. } => {
                assert_eq!(validity.not_after_utc(), "2002-01-01 00:00:00");
            }
            other => panic!("{other:?}"),
        }
    }
}
