//! The kubelet server's certificate. Without `serverTLSBootstrap` it is self-signed for the
//! node's name, hostname and IP (made once under the agent's data dir, as upstream does).
//! With it, the kubelet asks the cluster for one (upstream's kubelet server certificate
//! manager): a `kubernetes.io/kubelet-serving` CertificateSigningRequest as
//! `system:node:<name>`, which the controllers approve when it names only the node's own
//! addresses and sign with the cluster CA, so API servers can verify the kubelet
//! (`--kubelet-certificate-authority`). Until it is issued the self-signed one serves; the
//! new one is swapped in for the next handshakes ([`ServingCert`] resolves each).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

const SIGNER: &str = "kubernetes.io/kubelet-serving";
/// How long one request waits for its certificate before asking again.
const ISSUE_WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the certificate must name, and where it is kept.
#[derive(Clone, Debug)]
pub struct Identity {
    pub node_name: String,
    /// DNS names: the node's name and its hostname, lowercased.
    pub dns: Vec<String>,
    pub ip: IpAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Identity {
    pub fn new(node_name: &str, hostname: &str, ip: IpAddr, cert: &Path, key: &Path) -> Self {
        let mut dns = vec![node_name.to_owned()];
        let host = hostname.to_lowercase();
        if host != node_name && !host.is_empty() {
            dns.push(host);
        }
        Identity {
            node_name: node_name.to_owned(),
            dns,
            ip,
            cert: cert.to_owned(),
            key: key.to_owned(),
        }
    }

    fn sans(&self) -> Vec<rcgen::SanType> {
        let mut sans = vec![rcgen::SanType::IpAddress(self.ip)];
        for d in &self.dns {
            if let Ok(name) = d.clone().try_into() {
                sans.push(rcgen::SanType::DnsName(name));
            }
        }
        sans
    }
}

/// The certificate the server presents, replaceable while it serves.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl ServingCert {
    fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<Self> {
        Ok(ServingCert {
            current: RwLock::new(Arc::new(certified(certs, key)?)),
        })
    }

    fn replace(
        &self,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<()> {
        let new = Arc::new(certified(certs, key)?);
        if let Ok(mut c) = self.current.write() {
            *c = new;
        }
        Ok(())
    }
}

fn certified(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    let key = provider
        .key_provider
        .load_private_key(key)
        .context("the serving key")?;
    Ok(CertifiedKey::new(certs, key))
}

/// The certificate to start with: the one kept on disk if it names this node (and, when
/// `cas` is given, chains to them), else a new self-signed one. Also says whether it is
/// signed by `cas`.
pub fn load(id: &Identity, cas: &[Vec<u8>]) -> anyhow::Result<(Arc<ServingCert>, bool)> {
    let kept = read_pair(&id.cert, &id.key).ok();
    let (certs, key, signed) = match kept {
        Some((certs, key)) if names_fit(&certs, id) => {
            let signed = !cas.is_empty() && ca_signed(&certs, cas, id.ip);
            (certs, key, signed)
        }
        _ => {
            self_sign(id)?;
            let (certs, key) = read_pair(&id.cert, &id.key)?;
            (certs, key, false)
        }
    };
    Ok((Arc::new(ServingCert::new(certs, key)?), signed))
}

/// Keeps a CA-signed certificate served (a kubelet task: runs for good). `signed` says
/// whether the one served now already is. Asks the cluster for one until it is issued,
/// keeps it on disk and serves it, and asks again once 80% of its life has passed
/// (upstream's rotation lets 70–90% pass).
pub async fn bootstrap(
    client: kube::Client,
    id: Identity,
    cas: Vec<Vec<u8>>,
    serving: Arc<ServingCert>,
    signed: bool,
) {
    if signed {
        tokio::time::sleep(renew_in(&id.cert)).await;
    }
    let mut delay = Duration::from_secs(1);
    loop {
        match request(&client, &id, &cas).await {
            Ok((cert_pem, key_pem)) => {
                let installed = write_pair(&id, &cert_pem, &key_pem)
                    .and_then(|()| read_pair(&id.cert, &id.key))
                    .and_then(|(certs, key)| serving.replace(certs, key));
                match installed {
                    Ok(()) => {
                        info!(node = %id.node_name, "serving with a certificate signed by the cluster CA");
                        delay = Duration::from_secs(1);
                        tokio::time::sleep(renew_in(&id.cert)).await;
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "installing the serving certificate")
                    }
                }
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), retry_in = ?delay, "requesting a serving certificate")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// How long until the certificate at `path` is due for renewal (80% of its life); a minute
/// if it cannot be read.
fn renew_in(path: &Path) -> Duration {
    let due = std::fs::read(path).ok().and_then(|pem| {
        let der = rustls_pemfile::certs(&mut pem.as_slice()).next()?.ok()?;
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let from = x.validity().not_before.timestamp();
        let until = x.validity().not_after.timestamp();
        Some(from + (until - from) * 4 / 5)
    });
    let now = Timestamp::now().as_second();
    due.map(|d| Duration::from_secs(u64::try_from(d - now).unwrap_or(0)))
        .unwrap_or(Duration::from_secs(60))
}

/// One CertificateSigningRequest, waited on: the certificate and key, PEM.
async fn request(
    client: &kube::Client,
    id: &Identity,
    cas: &[Vec<u8>],
) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{}", id.node_name),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.subject_alt_names = id.sans();
    let pem = params
        .serialize_request(&key)
        .context("the certificate request")?
        .pem()
        .context("the certificate request")?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(vec![
                "digital signature".into(),
                "key encipherment".into(),
                "server auth".into(),
            ]),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .context("creating the CertificateSigningRequest")?;
    let name = created.metadata.name.unwrap_or_default();
    info!(csr = %name, signer = SIGNER, "requested a serving certificate");
    let deadline = tokio::time::Instant::now() + ISSUE_WAIT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        let Some(csr) = api.get_opt(&name).await.context("reading the CSR")? else {
            bail!("CertificateSigningRequest {name} was deleted");
        };
        let status = csr.status.unwrap_or_default();
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Denied" || c.type_ == "Failed")
        {
            bail!(
                "CertificateSigningRequest {name}: {} ({})",
                c.type_,
                c.message.clone().unwrap_or_default()
            );
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert = String::from_utf8(cert.0).context("the issued certificate is not PEM")?;
            let certs = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .context("parsing the issued certificate")?;
            if !ca_signed(&certs, cas, id.ip) {
                bail!("the certificate issued for {name} does not chain to the cluster CA");
            }
            return Ok((cert, key.serialize_pem()));
        }
    }
    bail!("CertificateSigningRequest {name} was not issued within {ISSUE_WAIT:?}")
}

/// Whether `certs` is valid now for `ip`, chaining to one of `cas` (as the API server will
/// check it).
fn ca_signed(certs: &[CertificateDer<'static>], cas: &[Vec<u8>], ip: IpAddr) -> bool {
    let Some((leaf, rest)) = certs.split_first() else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        let _ = roots.add(CertificateDer::from(ca.clone()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
    else {
        return false;
    };
    verifier
        .verify_server_cert(
            leaf,
            rest,
            &ServerName::IpAddress(ip.into()),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

/// Whether the leaf names the node's IP and DNS names.
fn names_fit(certs: &[CertificateDer<'static>], id: &Identity) -> bool {
    let Some(der) = certs.first() else {
        return false;
    };
    let names = common::certs::dns_and_ip_names(der.as_ref());
    names.contains(&id.ip.to_string()) && id.dns.iter().all(|d| names.contains(d))
}

/// Makes and keeps a self-signed certificate for the node (valid a year, as upstream's).
fn self_sign(id: &Identity) -> anyhow::Result<()> {
    let pair = rcgen::KeyPair::generate().context("generating the serving key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let now = Timestamp::now();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{}@{}", id.node_name, now.as_second()),
    );
    params.subject_alt_names = id.sans();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    let year = now
        .checked_add(SignedDuration::from_hours(24 * 366))
        .unwrap_or(now);
    let until = year.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).date();
    params.not_after = rcgen::date_time_ymd(
        i32::from(until.year()),
        u8::try_from(until.month()).unwrap_or(1),
        u8::try_from(until.day()).unwrap_or(1),
    );
    let signed = params
        .self_signed(&pair)
        .context("signing the serving certificate")?;
    write_pair(id, &signed.pem(), &pair.serialize_pem())?;
    info!(cert = %id.cert.display(), "kubelet serving certificate created (self-signed)");
    Ok(())
}

fn write_pair(id: &Identity, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    if let Some(dir) = id.cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_private(&id.key, key_pem.as_bytes())?;
    std::fs::write(&id.cert, cert_pem).with_context(|| format!("writing {}", id.cert.display()))
}

fn read_pair(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("parsing {}", key.display()))?
        .with_context(|| format!("no private key in {}", key.display()))?;
    Ok((certs, key))
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_certificate_is_reused_only_if_it_names_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("s.crt"), dir.path().join("s.key"));
        let id = Identity::new("n1", "Host-1", "10.0.0.9".parse().unwrap(), &cert, &key);
        assert_eq!(id.dns, ["n1", "host-1"]);
        let (_, signed) = load(&id, &[]).unwrap();
        assert!(!signed);
        let first = std::fs::read(&cert).unwrap();
        load(&id, &[]).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "kept");
        let moved = Identity::new("n1", "host-1", "10.0.0.10".parse().unwrap(), &cert, &key);
        load(&moved, &[]).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first, "remade for a new IP");
        let (certs, _) = read_pair(&cert, &key).unwrap();
        assert!(names_fit(&certs, &moved));
        assert!(!ca_signed(&certs, &[], moved.ip));
    }

    #[test]
    fn signed_by_the_ca_for_this_ip() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        leaf.subject_alt_names = vec![rcgen::SanType::IpAddress(ip)];
        let leaf = leaf.signed_by(&key, &issuer).unwrap();
        let certs = vec![leaf.der().clone()];
        let cas = vec![ca.der().to_vec()];
        assert!(ca_signed(&certs, &cas, ip));
        assert!(!ca_signed(&certs, &cas, "10.0.0.8".parse().unwrap()));
    }
}
