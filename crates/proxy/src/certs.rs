//! Layer-7 certificates: one per SNI name, a default for the rest, read
//! again on reload (a failed read keeps the certificates in use).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::{Error, ProxyConfig};

#[derive(Debug, Default)]
struct Table {
    default: Option<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

/// The certificate resolver the TLS listener (TCP and QUIC) uses.
#[derive(Debug, Default)]
pub(crate) struct Certs {
    table: RwLock<Arc<Table>>,
    /// The self-signed pair, made once so a reload keeps it.
    self_signed: RwLock<Option<Arc<CertifiedKey>>>,
}

impl Certs {
    /// Read the certificates `config` names (or make the self-signed one).
    pub(crate) fn load(&self, config: &ProxyConfig) -> Result<(), Error> {
        let tls = |e: volley_net::Error| Error::Config(e.to_string());
        let mut table = Table::default();
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            table.default = Some(Arc::new(volley_net::tls::certified(cert, key).map_err(tls)?));
        } else if config.self_signed {
            let mut made = self.self_signed.write().unwrap_or_else(|e| e.into_inner());
            if made.is_none() {
                let names = ["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
                let (pair, _) = volley_net::tls::self_signed_certified(&names).map_err(tls)?;
                tracing::warn!("serving a self-signed certificate: for development only");
                *made = Some(Arc::new(pair));
            }
            table.default = made.clone();
        }
        for sni in &config.sni {
            let pair = volley_net::tls::certified(&sni.cert, &sni.key).map_err(tls)?;
            table.by_name.insert(sni.name.to_ascii_lowercase(), Arc::new(pair));
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(())
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        hello
            .server_name()
            .and_then(|name| table.by_name.get(&name.to_ascii_lowercase()))
            .or(table.default.as_ref())
            .cloned()
    }
}
