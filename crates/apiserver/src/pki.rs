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
    /// The CA extension API servers trust for the aggregator's proxied requests
    /// (`--requestheader-client-ca-file`): a CA of its own, as kubeadm's `front-proxy-ca`,
    /// so that no cluster client certificate can pass for the aggregator.
    pub fn front_proxy_ca_cert(&self) -> PathBuf {
        self.dir.join("front-proxy-ca.crt")
    }
    pub fn front_proxy_ca_key(&self) -> PathBuf {
        self.dir.join("front-proxy-ca.key")
    }
    /// The aggregator's client certificate (`--proxy-client-cert-file`), CN
    /// `front-proxy-client`.
    pub fn front_proxy_client_cert(&self) -> PathBuf {
        self.dir.join("front-proxy-client.crt")
    }
    pub fn front_proxy_client_key(&self) -> PathBuf {
        self.dir.join("front-proxy-client.key")
    }

    /// The managed etcd's own CA (k3s' `tls/etcd/server-ca`): etcd trusts every client
    /// certificate it signed, so it must not be the cluster CA that signs nodes' certificates.
    pub fn etcd_ca_cert(&self) -> PathBuf {
        self.dir.join("etcd").join("server-ca.crt")
    }
    pub fn etcd_ca_key(&self) -> PathBuf {
        self.dir.join("etcd").join("server-ca.key")
    }
    /// This server's etcd member certificate: served to etcd clients and peers, and presented
    /// as a client to other members (server and client auth).
    pub fn etcd_member_cert(&self) -> PathBuf {
        self.dir.join("etcd").join("member.crt")
    }
    pub fn etcd_member_key(&self) -> PathBuf {
        self.dir.join("etcd").join("member.key")
    }

    /// The etcd CA (made once) and this member's certificate for `sans` (reissued when a
    /// name is missing, as the API server's).
    pub fn ensure_etcd(&self, sans: &[IpAddr]) -> Result<()> {
        let dir = self.dir.join("etcd");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        ensure_ca(&self.etcd_ca_cert(), &self.etcd_ca_key(), "rkube-etcd-ca")?;
        let mut names: Vec<String> = vec!["localhost".into()];
        names.extend(sans.iter().map(IpAddr::to_string));
        if self.etcd_member_cert().exists() && names_cover(&self.etcd_member_cert(), &names) {
            return Ok(());
        }
        let issuer = issuer(&self.etcd_ca_cert(), &self.etcd_ca_key())?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("etcd-member");
        params.subject_alt_names = std::iter::once(SanType::DnsName("localhost".try_into()?))
            .chain(sans.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        write_secret(&self.etcd_member_key(), &key.serialize_pem())?;
        std::fs::write(self.etcd_member_cert(), cert.pem())?;
        Ok(())
    }

    /// Creates whatever is missing: the CA once (never replaced: every credential hangs on
    /// it), the serving certificate for `sans`, and the admin client certificate
    /// (`system:admin` in `system:masters`), and the API server's kubelet-client certificate
    /// (`kube-apiserver-kubelet-client` in `system:masters`, as kubeadm issues it).
    pub fn ensure(&self, sans: &[String]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        ensure_ca(&self.ca_cert(), &self.ca_key(), "rkube-server-ca")?;
        let issuer = issuer(&self.ca_cert(), &self.ca_key())?;
        // A certificate from an earlier start that lacks a name now wanted (a new
        // --advertise-address or node IP) is reissued, or clients reaching the server there
        // would fail verification.
        if self.serving_cert().exists() && !names_cover(&self.serving_cert(), sans) {
            tracing::info!("reissuing the serving certificate for new names");
            std::fs::remove_file(self.serving_cert())
                .with_context(|| format!("removing {}", self.serving_cert().display()))?;
        }
        if !self.serving_cert().exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = dn("kube-apiserver");
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
            let (cert, key) = sign_client(&issuer, cn, &["system:masters"])?;
            write_secret(&key_path, &key)?;
            std::fs::write(&cert_path, cert)?;
        }
        self.ensure_front_proxy()
    }

    /// The front-proxy CA and the aggregator's client certificate signed by it.
    fn ensure_front_proxy(&self) -> Result<()> {
        ensure_ca(
            &self.front_proxy_ca_cert(),
            &self.front_proxy_ca_key(),
            "rkube-front-proxy-ca",
        )?;
        if self.front_proxy_client_cert().exists() {
            return Ok(());
        }
        let issuer = issuer(&self.front_proxy_ca_cert(), &self.front_proxy_ca_key())?;
        let (cert, key) = sign_client(&issuer, FRONT_PROXY_CLIENT, &[])?;
        write_secret(&self.front_proxy_client_key(), &key)?;
        std::fs::write(self.front_proxy_client_cert(), cert)?;
        Ok(())
    }

    /// Signs a client certificate for user `cn` in groups `orgs` with the cluster CA (as
    /// Kubernetes reads them: CN the user, each O a group); returns (certificate, key) PEM.
    pub fn issue_client_cert(&self, cn: &str, orgs: &[&str]) -> Result<(String, String)> {
        sign_client(&issuer(&self.ca_cert(), &self.ca_key())?, cn, orgs)
    }

    /// Writes a kubeconfig for the admin that talks to `server` (e.g. `https://127.0.0.1:6443`).
    pub fn write_admin_kubeconfig(&self, path: &Path, server: &str) -> Result<()> {
        let cert = std::fs::read_to_string(self.admin_cert())?;
        let key = std::fs::read_to_string(self.admin_key())?;
        self.write_kubeconfig(
            path,
            server,
            "admin",
            &Credentials::Cert {
                cert: &cert,
                key: &key,
            },
        )
    }

    /// Writes a kubeconfig that trusts this cluster's CA and authenticates with `creds`.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        server: &str,
        user: &str,
        creds: &Credentials<'_>,
    ) -> Result<()> {
        let ca = std::fs::read_to_string(self.ca_cert())?;
        let config = kubeconfig_yaml(server, &ca, user, creds);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_secret(path, &config)
    }
}

/// A kubeconfig for `server`, trusting `ca_pem`, as `user` with `creds`.
pub fn kubeconfig_yaml(server: &str, ca_pem: &str, user: &str, creds: &Credentials<'_>) -> String {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let user_fields = match creds {
        Credentials::Cert { cert, key } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert.as_bytes()),
            b64(key.as_bytes())
        ),
        Credentials::Token(t) => format!("    token: {t}\n"),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: rkube
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user:?}
  user:
{user_fields}contexts:
- name: rkube
  context:
    cluster: rkube
    user: {user:?}
current-context: rkube
preferences: {{}}
",
        ca = b64(ca_pem.as_bytes()),
    )
}

/// How a kubeconfig's user authenticates.
pub enum Credentials<'a> {
    /// A client certificate and its key, PEM.
    Cert { cert: &'a str, key: &'a str },
    /// A bearer token.
    Token(&'a str),
}

/// The front-proxy client certificate's CN: the name extension servers allow
/// (`requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// Makes a self-signed CA at `cert`/`key` unless one is there (never replaced: every
/// credential it signed hangs on it).
fn ensure_ca(cert: &Path, key_path: &Path, cn: &str) -> Result<()> {
    if cert.exists() {
        return Ok(());
    }
    let key = KeyPair::generate().context("generating a CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let signed = params.self_signed(&key).context("signing the CA")?;
    write_secret(key_path, &key.serialize_pem())?;
    std::fs::write(cert, signed.pem())?;
    Ok(())
}

/// A client certificate (CN the user, each O a group) signed by `issuer`: (certificate,
/// key) PEM.
fn sign_client(issuer: &Issuer<'_, KeyPair>, cn: &str, orgs: &[&str]) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    for o in orgs {
        name.push(DnType::OrganizationName, *o);
    }
    params.distinguished_name = name;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The CA at `cert`/`key`, to sign with.
fn issuer(cert: &Path, key: &Path) -> Result<Issuer<'static, KeyPair>> {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(key)?)
        .with_context(|| format!("reading {}", key.display()))?;
    Issuer::from_ca_cert_pem(&std::fs::read_to_string(cert)?, ca_key)
        .with_context(|| format!("reading {}", cert.display()))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Writes a file readable by its owner only.
pub fn write_secret(path: &Path, contents: &str) -> Result<()> {
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

/// Whether the PEM certificate at `path` names every one of `sans` (IPs and DNS names).
fn names_cover(path: &Path, sans: &[String]) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    let have = common::certs::dns_and_ip_names(&pem.contents);
    !have.is_empty() && sans.iter().all(|s| have.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_certificate_missing_a_name_is_reissued_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let first = ["localhost".to_string(), "127.0.0.1".to_string()];
        pki.ensure(&first).unwrap();
        assert!(names_cover(&pki.serving_cert(), &first));
        let ca = std::fs::read(pki.ca_cert()).unwrap();
        let cert = std::fs::read(pki.serving_cert()).unwrap();
        // Same names: kept as it is.
        pki.ensure(&first).unwrap();
        assert_eq!(std::fs::read(pki.serving_cert()).unwrap(), cert);
        let more = [first[0].clone(), first[1].clone(), "10.99.0.1".to_string()];
        assert!(!names_cover(&pki.serving_cert(), &more));
        pki.ensure(&more).unwrap();
        assert!(names_cover(&pki.serving_cert(), &more));
        assert_eq!(std::fs::read(pki.ca_cert()).unwrap(), ca);
    }
}
