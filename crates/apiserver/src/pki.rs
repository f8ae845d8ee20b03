//! The cluster's certificates: a CA made on first start, the API server's serving
//! certificate, and the admin's client certificate, all under `<data-dir>/tls`; plus the
//! admin kubeconfig that uses them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Paths of the PEM files.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(data_dir: &Path) -> Self {
        Pki {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("server-ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("server-ca.key")
    }
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("serving-kube-apiserver.crt")
    }
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("serving-kube-apiserver.key")
    }
    pub fn admin_cert(&self) -> PathBuf {
        self.dir.join("client-admin.crt")
    }
    pub fn admin_key(&self) -> PathBuf {
        self.dir.join("client-admin.key")
    }
    /// The API server's client certificate for kubelets (`--kubelet-client-certificate`).
    pub fn kubelet_client_cert(&self) -> PathBuf {
        self.dir.join("client-kube-apiserver.crt")
    }
    pub fn kubelet_client_key(&self) -> PathBuf {
        self.dir.join("client-kube-apiserver.key")
    }

    /// Creates whatever is missing: the CA once (never replaced: every credential hangs on
    /// it), the serving certificate for `sans`, and the admin client certificate
    /// (`system:admin` in `system:masters`), and the API server's kubelet-client certificate
    /// (`kube-apiserver-kubelet-client` in `system:masters`, as kubeadm issues it).
    pub fn ensure(&self, sans: &[String]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if !self.ca_cert().exists() {
            let key = KeyPair::generate().context("generating the CA key")?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = dn("rkube-server-ca", None);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params.self_signed(&key).context("signing the CA")?;
            write_secret(&self.ca_key(), &key.serialize_pem())?;
            std::fs::write(self.ca_cert(), cert.pem())?;
        }
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(self.ca_key())?)
            .context("reading the CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(self.ca_cert())?, ca_key)
            .context("reading the CA certificate")?;
        if !self.serving_cert().exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = dn("kube-apiserver", None);
            params.subject_alt_names = sans
                .iter()
                .map(|s| match s.parse::<IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => s.clone().try_into().map(SanType::DnsName),
                })
                .collect::<Result<_, _>>()
                .context("serving certificate names")?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params.signed_by(&key, &issuer)?;
            write_secret(&self.serving_key(), &key.serialize_pem())?;
            std::fs::write(self.serving_cert(), cert.pem())?;
        }
        for (cert_path, key_path, cn) in [
            (self.admin_cert(), self.admin_key(), "system:admin"),
            (
                self.kubelet_client_cert(),
                self.kubelet_client_key(),
                "kube-apiserver-kubelet-client",
            ),
        ] {
            if cert_path.exists() {
                continue;
            }
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = dn(cn, Some("system:masters"));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params.signed_by(&key, &issuer)?;
            write_secret(&key_path, &key.serialize_pem())?;
            std::fs::write(&cert_path, cert.pem())?;
        }
        Ok(())
    }

    /// Writes a kubeconfig for the admin that talks to `server` (e.g. `https://127.0.0.1:6443`).
    pub fn write_admin_kubeconfig(&self, path: &Path, server: &str) -> Result<()> {
        let b64 = |p: PathBuf| -> Result<String> {
            Ok(base64::engine::general_purpose::STANDARD.encode(std::fs::read(&p)?))
        };
        let config = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: rkube
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: rkube
  context:
    cluster: rkube
    user: admin
current-context: rkube
preferences: {{}}
",
            ca = b64(self.ca_cert())?,
            cert = b64(self.admin_cert())?,
            key = b64(self.admin_key())?,
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_secret(path, &config)
    }
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

/// Writes a file readable by its owner only.
fn write_secret(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
