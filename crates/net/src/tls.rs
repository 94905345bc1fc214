//! TLS for `wss://`, with rustls.
//!
//! Servers load a certificate chain and key from PEM files, or make a
//! self-signed certificate for development. Clients trust the system's roots
//! plus an optional extra CA file. Servers offer `h2` and `http/1.1` by ALPN
//! ([`ALPN`]); the WebSocket client asks for `http/1.1`, `H2Connection` for
//! `h2`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::Error;

/// ALPN protocol identifiers servers accept, in preference order: HTTP/2
/// first (WebSockets as extended CONNECT streams), then HTTP/1.1.
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn alpn() -> Vec<Vec<u8>> {
    ALPN.iter().map(|p| p.to_vec()).collect()
}

/// A server configuration from a PEM certificate chain and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, Error> {
    let (certs, key) = read_pair(cert_path, key_path)?;
    server_config(certs, key)
}

/// A certificate chain and its key from PEM files, with errors that name the file.
fn read_pair(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::TlsConfig(format!("cannot read certificates from {}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(Error::TlsConfig(format!("no certificate in {}", cert_path.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| Error::TlsConfig(format!("cannot read a private key from {}: {e}", key_path.display())))?;
    Ok((certs, key))
}

/// A certificate and key read from PEM files that can be read again while
/// serving (on SIGHUP, say): handshakes from then on get the new pair;
/// connections already open keep theirs. A reload that fails (a missing
/// file, a key that does not match) keeps the pair in use.
#[derive(Debug)]
pub struct Reloadable {
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl Reloadable {
    /// Read the pair now; fails as [`server_config_from_pem`] does.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Reloadable>, Error> {
        let current = certified(cert_path, key_path)?;
        Ok(Arc::new(Reloadable {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: std::sync::RwLock::new(Arc::new(current)),
        }))
    }

    /// Read the files again and serve the new pair from the next handshake.
    pub fn reload(&self) -> Result<(), Error> {
        let fresh = Arc::new(certified(&self.cert_path, &self.key_path)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// A server configuration whose handshakes use the current pair.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, Error> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::TlsConfig(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn();
        Ok(Arc::new(config))
    }
}

impl rustls::server::ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A certificate chain and key read from PEM files, checked to belong
/// together: what a certificate resolver hands out (one per name, say).
pub fn certified(cert_path: &Path, key_path: &Path) -> Result<rustls::sign::CertifiedKey, Error> {
    let (certs, key) = read_pair(cert_path, key_path)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::TlsConfig(format!("unusable private key in {}: {e}", key_path.display())))?;
    let pair = rustls::sign::CertifiedKey::new(certs, signing);
    pair.keys_match()
        .map_err(|e| Error::TlsConfig(format!("certificate and key do not work together: {e}")))?;
    Ok(pair)
}

/// A server configuration from DER certificates and key.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::TlsConfig(format!("certificate and key do not work together: {e}")))?;
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// A self-signed certificate for `names`, for development only: clients
/// must be told to trust the returned PEM certificate.
pub fn self_signed(names: &[String]) -> Result<(Arc<ServerConfig>, String), Error> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| Error::TlsConfig(e.to_string()))?;
    let pem = generated.cert.pem();
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(|e| Error::TlsConfig(e.into()))?;
    let config = server_config(vec![generated.cert.der().clone()], key)?;
    Ok((config, pem))
}

/// A self-signed certificate for `names` as a resolver's pair, and its PEM
/// for clients to trust; for development only.
pub fn self_signed_certified(names: &[String]) -> Result<(rustls::sign::CertifiedKey, String), Error> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| Error::TlsConfig(e.to_string()))?;
    let pem = generated.cert.pem();
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(|e| Error::TlsConfig(e.into()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::TlsConfig(e.to_string()))?;
    Ok((
        rustls::sign::CertifiedKey::new(vec![generated.cert.der().clone()], signing),
        pem,
    ))
}

/// A server configuration whose certificates come from `resolver` (one per
/// SNI name, reloadable), offering [`ALPN`].
pub fn server_config_with_resolver(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// A client configuration trusting the system's roots and, if given, the
/// CA certificates in `extra_ca` (PEM).
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::TlsConfig(format!("cannot read CA certificates from {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::TlsConfig(format!("no certificate in {}", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| Error::TlsConfig(format!("bad CA certificate in {}: {e}", path.display())))?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The WebSocket client speaks HTTP/1.1; `H2Connection` asks for h2 itself.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system-roots client configuration, built once per process (loading
/// the system store reads many files).
pub(crate) fn default_client_config() -> Result<Arc<ClientConfig>, Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = client_config(None)?;
    Ok(CONFIG.get_or_init(|| config).clone())
}

/// Turn an I/O error from a TLS handshake into a clear [`Error::Tls`] when
/// rustls is behind it.
pub(crate) fn classify(e: std::io::Error) -> Error {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return Error::Io(e);
    };
    use rustls::CertificateError as C;
    let text = match tls {
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired".to_owned()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet".to_owned()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for this host name".to_owned()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is signed by an unknown certificate authority".to_owned()
        }
        other => other.to_string(),
    };
    Error::Tls(text)
}
