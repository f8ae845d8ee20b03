//! TLS: certificates from `kubernetes.io/tls` Secrets chosen by SNI (exact host, then a
//! `*.` wildcard of one label), a self-signed default for everything else, and the rustls
//! server configuration (ALPN `h2`, `http/1.1`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::gateway::{self, hostname::Hostname};
use crate::host::{self, HostPattern};
use crate::table::Current;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the Secret has no {0}")]
    Missing(&'static str),
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.key holds no PEM private key")]
    NoKey,
    #[error("reading PEM: {0}")]
    Pem(#[from] std::io::Error),
    #[error("the key does not fit the certificate or is unsupported: {0}")]
    Key(#[from] rustls::Error),
    #[error("generating the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and key from a Secret's `tls.crt` and `tls.key` (PEM).
pub fn certified_key(crt: &[u8], key: &[u8]) -> Result<CertifiedKey, CertError> {
    let chain = rustls_pemfile::certs(&mut &crt[..]).collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = rustls_pemfile::private_key(&mut &key[..])?.ok_or(CertError::NoKey)?;
    Ok(CertifiedKey::from_der(chain, key, &provider())?)
}

/// [`certified_key`] of a Secret's data.
pub fn from_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Result<CertifiedKey, CertError> {
    let data = secret.data.as_ref();
    let get = |k: &'static str| {
        data.and_then(|d| d.get(k))
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
            .ok_or(CertError::Missing(k))
    };
    certified_key(get("tls.crt")?, get("tls.key")?)
}

/// The certificate served without a matching one (nginx ingress' "Fake Certificate"): a
/// fresh self-signed one per process.
pub fn default_certificate() -> Result<CertifiedKey, CertError> {
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "rkube ingress default certificate",
    );
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(CertifiedKey::from_der(
        vec![CertificateDer::from(cert.der().to_vec())],
        der,
        &provider(),
    )?)
}

/// Hosts → certificates.
#[derive(Debug)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Gateway listeners' `*.` hostnames, which match any depth: longest suffix first.
    suffix: Vec<(String, Arc<CertifiedKey>)>,
    /// A Gateway HTTPS listener without hostname: every name without a certificate.
    fallback: Option<Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertTable {
    /// `default` answers names without a certificate (none: such handshakes fail).
    pub fn new(default: Option<Arc<CertifiedKey>>) -> Self {
        CertTable {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            suffix: Vec::new(),
            fallback: None,
            default,
        }
    }

    /// Serves a Gateway listener's certificate for its hostname (`None`: names that have
    /// no other certificate). The first for a hostname stays (the oldest Gateway's); added
    /// before the Ingresses' so a listener's certificate wins a host both name.
    pub fn insert_gateway(&mut self, host: Option<&Hostname>, cert: Arc<CertifiedKey>) {
        match host {
            None => {
                self.fallback.get_or_insert(cert);
            }
            Some(Hostname::Exact(h)) => {
                self.insert(&HostPattern::Exact(h.clone()), cert);
            }
            Some(Hostname::Wildcard(s)) => {
                self.insert(&HostPattern::Wildcard(s.clone()), cert.clone());
                if !self.suffix.iter().any(|(x, _)| x == s) {
                    self.suffix.push((s.clone(), cert));
                    self.suffix.sort_by_key(|(x, _)| std::cmp::Reverse(x.len()));
                }
            }
        }
    }

    /// Serves `cert` for `host`; the first for a host stays (the oldest Ingress's).
    pub fn insert(&mut self, host: &HostPattern, cert: Arc<CertifiedKey>) -> bool {
        let entry = match host {
            HostPattern::Exact(h) => self.exact.entry(h.clone()),
            HostPattern::Wildcard(s) => self.wildcard.entry(s.clone()),
        };
        match entry {
            Entry::Vacant(v) => {
                v.insert(cert);
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// The certificate for an SNI name (`None`: the client sent none).
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(host::normalize) else {
            return self.fallback.as_ref().or(self.default.as_ref()).cloned();
        };
        self.exact
            .get(&name)
            .or_else(|| self.wildcard.get(host::wildcard_suffix(&name)?))
            .or_else(|| {
                let below = |s: &str| gateway::hostname::is_below(&name, s);
                self.suffix.iter().find(|(s, _)| below(s)).map(|(_, c)| c)
            })
            .or(self.fallback.as_ref())
            .or(self.default.as_ref())
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len() + self.suffix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Picks the certificate of the snapshot in force at each handshake.
#[derive(Debug)]
struct SniResolver(Arc<Current>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().certs.resolve(hello.server_name())
    }
}

/// The listener's TLS configuration: certificates from whatever snapshot is current.
pub fn server_config(current: Arc<Current>) -> Result<Arc<ServerConfig>, CertError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(current)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        match rcgen::generate_simple_self_signed(names) {
            Ok(c) => (c.cert.pem(), c.signing_key.serialize_pem()),
            Err(e) => panic!("rcgen: {e}"),
        }
    }

    #[test]
    fn pem_pairs_parse_and_mismatches_are_refused() {
        let (crt, key) = self_signed(&["a.example.com"]);
        assert!(certified_key(crt.as_bytes(), key.as_bytes()).is_ok());
        let (_, other_key) = self_signed(&["b.example.com"]);
        assert!(matches!(
            certified_key(crt.as_bytes(), other_key.as_bytes()),
            Err(CertError::Key(_))
        ));
        assert!(matches!(
            certified_key(b"junk", key.as_bytes()),
            Err(CertError::NoCertificate)
        ));
        assert!(default_certificate().is_ok());
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let load = |n: &str| {
            let (c, k) = self_signed(&[n]);
            match certified_key(c.as_bytes(), k.as_bytes()) {
                Ok(ck) => Arc::new(ck),
                Err(e) => panic!("{e}"),
            }
        };
        let (exact, wild, default) = (load("a.example.com"), load("*.example.com"), load("x"));
        let mut t = CertTable::new(Some(default.clone()));
        t.insert(&HostPattern::parse("a.example.com"), exact.clone());
        t.insert(&HostPattern::parse("*.example.com"), wild.clone());
        let is = |sni: Option<&str>, want: &Arc<CertifiedKey>| {
            t.resolve(sni).is_some_and(|c| Arc::ptr_eq(&c, want))
        };
        assert!(is(Some("A.example.com"), &exact));
        assert!(is(Some("b.example.com"), &wild));
        assert!(is(Some("c.b.example.com"), &default));
        assert!(is(None, &default));
        // A Gateway listener's wildcard matches any depth; one without hostname, the rest.
        let (gw, any) = (load("*.gw.example.com"), load("any"));
        t.insert_gateway(Some(&Hostname::parse("*.gw.example.com")), gw.clone());
        t.insert_gateway(None, any.clone());
        let is = |sni: Option<&str>, want: &Arc<CertifiedKey>| {
            t.resolve(sni).is_some_and(|c| Arc::ptr_eq(&c, want))
        };
        assert!(is(Some("a.b.gw.example.com"), &gw));
        assert!(is(Some("elsewhere.org"), &any));
        assert!(is(None, &any));
    }
}
