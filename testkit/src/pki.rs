//! One test CA and the certificates the TLS tests need, made fresh at test time (rcgen): a
//! leaf for `localhost` and `127.0.0.1`, an expired leaf, and a key of no certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The names the leaf certificates are valid for.
pub const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A test CA and the PEM a server is given, all in memory.
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The CA certificate, DER (a client's trust root).
    pub ca_der: CertificateDer<'static>,
    /// Leaf then CA, as a server sends its chain.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
    /// A leaf that expired long ago (signed by the same CA), then the CA.
    pub expired_chain_pem: String,
    /// The expired leaf's own key.
    pub expired_key_pem: String,
    /// A valid key, but no certificate's: does not match `chain_pem`.
    pub other_key_pem: String,
}

/// The PEM of a [`TestPki`] written as files, for a server that takes paths (`--cert`).
pub struct PemFiles {
    /// Leaf then CA.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The expired leaf then the CA, and its key.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// A key that matches no certificate here.
    pub other_key: PathBuf,
}

fn leaf() -> CertificateParams {
    CertificateParams::new(NAMES.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("certificate params")
}

impl TestPki {
    /// Makes a fresh CA and its certificates.
    pub fn new() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wss test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("self-signed CA");

        let key = KeyPair::generate().expect("key");
        let cert = leaf().signed_by(&key, &ca).expect("leaf");

        let expired_key = KeyPair::generate().expect("key");
        let mut expired_params = leaf();
        expired_params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let expired = expired_params
            .signed_by(&expired_key, &ca)
            .expect("expired leaf");

        let other_key = KeyPair::generate().expect("key");
        TestPki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            chain_pem: format!("{}{}", cert.pem(), ca.pem()),
            key_pem: key.serialize_pem(),
            expired_chain_pem: format!("{}{}", expired.pem(), ca.pem()),
            expired_key_pem: expired_key.serialize_pem(),
            other_key_pem: other_key.serialize_pem(),
        }
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

    /// Writes the PEM into `dir` (which must exist) as `cert.pem`, `key.pem`, ...
    pub fn write_files(&self, dir: &Path) -> PemFiles {
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        PemFiles {
            cert: write("cert.pem", &self.chain_pem),
            key: write("key.pem", &self.key_pem),
            expired_cert: write("expired.pem", &self.expired_chain_pem),
            expired_key: write("expired-key.pem", &self.expired_key_pem),
            other_key: write("other-key.pem", &self.other_key_pem),
        }
    }
}

impl Default for TestPki {
    fn default() -> TestPki {
        TestPki::new()
    }
}

/// A fresh [`TestPki`].
pub fn pki() -> TestPki {
    TestPki::new()
}
