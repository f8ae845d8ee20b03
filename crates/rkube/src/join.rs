//! Joining a node with a token (kubeadm's TLS bootstrap, in k3s' token form): `rkube token
//! create` makes a bootstrap token and prints `K10<sha256 of the CA>::<id>.<secret>`; `rkube
//! agent --token` reads the public `kube-public/cluster-info`, trusts its CA only if the hash
//! matches, asks for a client certificate (`system:node:<name>` in `system:nodes`) with a
//! CertificateSigningRequest made as the bootstrap token's user, and keeps the signed
//! certificate in a kubeconfig of its own. The token is never sent before the CA is checked.
//! Then, as the node, it asks for the ingress controller's certificate the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};

const PREFIX: &str = "K10";

/// A join token: the CA's hash and a bootstrap token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_hash: String,
    pub token: String,
}

impl JoinToken {
    pub fn parse(s: &str) -> anyhow::Result<JoinToken> {
        let (hash, token) = s
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once("::"))
            .ok_or_else(|| anyhow!("a join token looks like K10<ca-hash>::<id>.<secret>"))?;
        ensure!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "the join token's CA hash is not a SHA-256 in hex"
        );
        ensure!(
            apiserver::authn::bootstrap::parse(token).is_some(),
            "the join token's bootstrap token is not <6 of [a-z0-9]>.<16 of [a-z0-9]>"
        );
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            token: token.to_string(),
        })
    }

    pub fn format(ca_der: &[u8], token: &str) -> String {
        format!("{PREFIX}{}::{token}", ca_hash(ca_der))
    }

    /// The token as users pass it (`K10<ca-hash>::<id>.<secret>`).
    pub fn text(&self) -> String {
        format!("{PREFIX}{}::{}", self.ca_hash, self.token)
    }
}

/// SHA-256 of the CA certificate (DER), in hex.
pub fn ca_hash(ca_der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, ca_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn random(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    let rng = ring::rand::SystemRandom::new();
    let _ = ring::rand::SecureRandom::fill(&rng, &mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// `rkube token create`: a bootstrap token valid for `ttl`, as a join token.
pub async fn create_token(config: kube::Config, ttl: Duration) -> anyhow::Result<String> {
    let ca = config
        .root_cert
        .as_ref()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| anyhow!("the kubeconfig names no CA to hash"))?;
    let client = kube::Client::try_from(config)?;
    let (id, secret) = (random(6), random(16));
    let expiration = time::OffsetDateTime::now_utc() + ttl;
    let expiration = expiration
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the expiry")?;
    let obj = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some(apiserver::authn::bootstrap::SECRET_TYPE.into()),
        string_data: Some(
            [
                ("token-id", id.as_str()),
                ("token-secret", secret.as_str()),
                ("expiration", expiration.as_str()),
                ("usage-bootstrap-authentication", "true"),
                ("description", "made by rkube token create"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client, "kube-system")
        .create(&PostParams::default(), &obj)
        .await
        .context("creating the bootstrap token")?;
    Ok(JoinToken::format(&ca, &format!("{id}.{secret}")))
}

/// The node's kubeconfig, joining with `token` first if there is none yet.
pub async fn node_kubeconfig(
    server: &str,
    token: &JoinToken,
    node_name: &str,
    data_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("agent/kubelet.kubeconfig");
    if path.exists() {
        return Ok(path);
    }
    let ca_pem = fetch_ca(server, &token.ca_hash).await?;
    let mut config = kube::Config::new(server.parse().context("the server URL")?);
    config.root_cert = Some(vec![pem_to_der(&ca_pem)?]);
    config.auth_info.token = Some(token.token.clone().into());
    let client = kube::Client::try_from(config)?;
    let (cert, key) = request_client_cert(
        client,
        "node-csr",
        &format!("system:node:{node_name}"),
        Some("system:nodes"),
        controllers::csrsigning::KUBELET_CLIENT,
        "the node's client certificate",
    )
    .await?;
    let yaml = apiserver::pki::kubeconfig_yaml(
        server,
        &ca_pem,
        &format!("system:node:{node_name}"),
        &apiserver::pki::Credentials::Cert {
            cert: &cert,
            key: &key,
        },
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    apiserver::pki::write_secret(&path, &yaml)?;
    tracing::info!(node = node_name, path = %path.display(), "joined: the node has its own certificate");
    Ok(path)
}

/// Asks for a client certificate for `cn` (in group `org`) from `signer` with a
/// CertificateSigningRequest named `<prefix>-<random>`, and waits up to 120 s for it to be
/// signed: (certificate, key) PEM. `what` names it in errors.
async fn request_client_cert(
    client: kube::Client,
    prefix: &str,
    cn: &str,
    org: Option<&str>,
    signer: &str,
    what: &str,
) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(rcgen::DnType::OrganizationName, o);
    }
    params.distinguished_name = dn;
    let request = params.serialize_request(&key)?.pem()?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let name = format!("{prefix}-{}", random(10));
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: signer.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    csrs.create(&PostParams::default(), &csr)
        .await
        .with_context(|| format!("asking for {what}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let cert = loop {
        let csr = csrs
            .get(&name)
            .await
            .context("reading the certificate request")?;
        let status = csr.status.unwrap_or_default();
        for c in status.conditions.iter().flatten() {
            if matches!(c.type_.as_str(), "Denied" | "Failed") {
                bail!(
                    "the request for {what} was {}: {}",
                    c.type_,
                    c.message.clone().unwrap_or_default()
                );
            }
        }
        if let Some(c) = status.certificate.filter(|c| !c.0.is_empty()) {
            break String::from_utf8(c.0).context("the certificate is not PEM")?;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no certificate ({what}) after 120 s: is the controller manager running with the cluster CA's key?"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    Ok((cert, key.serialize_pem()))
}

/// The ingress controller's kubeconfig at `path` (`system:rkube-ingress`, no groups), asked
/// for as the node (`node`: its client configuration): the CSR approver grants a node this
/// one identity, whose ClusterRole lets it read Ingresses and TLS Secrets, which the Node
/// authorizer does not let a node do.
pub async fn ingress_kubeconfig(node: kube::Config, path: &Path) -> anyhow::Result<()> {
    let server = node.cluster_url.to_string();
    let ca_pem = node
        .root_cert
        .as_ref()
        .and_then(|c| c.first())
        .map(|der| der_to_pem(der))
        .ok_or_else(|| anyhow!("the node's kubeconfig names no CA"))?;
    let client = kube::Client::try_from(node)?;
    let user = controllers::csrapproving::INGRESS_USER;
    let (cert, key) = request_client_cert(
        client,
        "ingress-csr",
        user,
        None,
        controllers::csrsigning::CLIENT,
        "the ingress controller's client certificate",
    )
    .await?;
    let yaml = apiserver::pki::kubeconfig_yaml(
        server.trim_end_matches('/'),
        &ca_pem,
        user,
        &apiserver::pki::Credentials::Cert {
            cert: &cert,
            key: &key,
        },
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    apiserver::pki::write_secret(path, &yaml)
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "the ingress controller has its own certificate");
    Ok(())
}

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

pub(crate) fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("the CA is not a PEM certificate")
}

/// Reads cluster-info without trusting the server yet, and returns its CA only if it has
/// `hash`.
pub(crate) async fn fetch_ca(server: &str, hash: &str) -> anyhow::Result<String> {
    let mut config = kube::Config::new(server.parse().context("the server URL")?);
    // Anything read this way is checked against the token's hash before it is used.
    config.accept_invalid_certs = true;
    let client = kube::Client::try_from(config)?;
    let info = Api::<ConfigMap>::namespaced(client, "kube-public")
        .get("cluster-info")
        .await
        .context("reading kube-public/cluster-info")?;
    let kubeconfig = info
        .data
        .and_then(|d| d.get("kubeconfig").cloned())
        .ok_or_else(|| anyhow!("cluster-info has no kubeconfig"))?;
    let kc =
        kube::config::Kubeconfig::from_yaml(&kubeconfig).context("cluster-info's kubeconfig")?;
    let ca_b64 = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| anyhow!("cluster-info names no CA"))?;
    use base64::Engine;
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(ca_b64.trim())
            .context("cluster-info's CA is not base64")?,
    )?;
    let got = ca_hash(&pem_to_der(&ca_pem)?);
    ensure!(
        got == hash,
        "the server's CA (sha256 {got}) is not the one the join token names ({hash}): refusing to join"
    );
    Ok(ca_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_parse() {
        let hash = "ab".repeat(32);
        let t = JoinToken::parse(&format!("K10{hash}::abcdef.0123456789abcdef")).unwrap();
        assert_eq!(t.token, "abcdef.0123456789abcdef");
        assert_eq!(t.ca_hash, hash);
        assert!(JoinToken::parse("abcdef.0123456789abcdef").is_err());
        assert!(JoinToken::parse(&format!("K10{hash}::nope")).is_err());
        assert_eq!(ca_hash(b"x").len(), 64);
    }

    #[test]
    fn pem_round_trips() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        assert_eq!(pem_to_der(&der_to_pem(&der)).unwrap(), der);
    }
}
