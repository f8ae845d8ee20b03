//! What a joining server must share with the others (k3s' bootstrap data, kubeadm's
//! `--upload-certs`): the cluster CA, the front-proxy CA, the service-account signing key,
//! the etcd CA, and the Secrets encryption key when there is one. The first server keeps it
//! in the Secret `kube-system/rkube-server-bootstrap`, encrypted (AES-256-GCM) with a key
//! derived from the server token's secret; only that token's bootstrap user may read it (an
//! extra group an agent's `rkube token create` token does not have), and only a holder of
//! the token can decrypt it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use ring::aead;

use crate::join::JoinToken;

/// The Secret holding the encrypted bundle.
pub const SECRET: &str = "rkube-server-bootstrap";
/// The extra group of the server token's bootstrap user: the one allowed to read [`SECRET`].
pub const SERVER_GROUP: &str = "system:bootstrappers:rkube:servers";
const FIELD_MANAGER: &str = "rkube-server";

/// The files shared, relative to the data dir.
const FILES: &[&str] = &[
    "tls/server-ca.crt",
    "tls/server-ca.key",
    "tls/front-proxy-ca.crt",
    "tls/front-proxy-ca.key",
    "tls/service.key",
    "tls/etcd/server-ca.crt",
    "tls/etcd/server-ca.key",
    "cred/encryption-config.json",
];

/// The server token: `--token` (a whole `K10...` token, or its `<id>.<secret>`), else the one
/// in `<data-dir>/token`, else a new one; written to `<data-dir>/token` (k3s'
/// `server/token`) in its full form.
pub fn server_token(data_dir: &Path, given: Option<&str>) -> anyhow::Result<JoinToken> {
    let ca = std::fs::read_to_string(apiserver::pki::Pki::new(data_dir).ca_cert())
        .context("reading the CA")?;
    let ca_der = crate::join::pem_to_der(&ca)?;
    let path = data_dir.join("token");
    let text = match given {
        Some(t) if t.starts_with("K10") => t.to_string(),
        Some(t) => JoinToken::format(&ca_der, t),
        None => match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => JoinToken::format(
                &ca_der,
                &format!("{}.{}", crate::join::random(6), crate::join::random(16)),
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        },
    };
    let token = JoinToken::parse(&text).context("the server token")?;
    ensure!(
        token.ca_hash == crate::join::ca_hash(&ca_der),
        "the server token names another CA than this server's"
    );
    apiserver::pki::write_secret(&path, &format!("{}\n", text.trim()))?;
    Ok(token)
}

/// Publishes the token's bootstrap Secret (no expiry, with [`SERVER_GROUP`]), the Role that
/// lets that group read the bundle, and the bundle itself. Idempotent (server-side apply).
pub async fn publish(
    client: kube::Client,
    data_dir: &Path,
    token: &JoinToken,
) -> anyhow::Result<()> {
    let (id, secret) = token
        .token
        .split_once('.')
        .ok_or_else(|| anyhow!("the server token has no secret"))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let token_secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some(apiserver::authn::bootstrap::SECRET_TYPE.into()),
        // `data`, not `stringData`: server-side apply compares what is stored.
        data: Some(
            [
                ("token-id", id),
                ("token-secret", secret),
                ("usage-bootstrap-authentication", "true"),
                ("auth-extra-groups", SERVER_GROUP),
                (
                    "description",
                    "the server token: joins servers (rkube server --server)",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
        ),
        ..Default::default()
    };
    let mut bundle = BTreeMap::new();
    for f in FILES {
        match std::fs::read(data_dir.join(f)) {
            Ok(b) => {
                bundle.insert(f.to_string(), String::from_utf8(b).context("a PEM file")?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {f}")),
        }
    }
    let sealed = seal(secret, &serde_json::to_vec(&bundle)?)?;
    let bundle_secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some([("bundle".to_string(), ByteString(sealed))].into()),
        ..Default::default()
    };
    for s in [&token_secret, &bundle_secret] {
        let name = s.metadata.name.clone().unwrap_or_default();
        secrets
            .patch(&name, &pp, &Patch::Apply(s))
            .await
            .with_context(|| format!("writing kube-system/{name}"))?;
    }
    let role = Role {
        metadata: ObjectMeta {
            name: Some("rkube:server-bootstrap".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![SECRET.into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: role.metadata.clone(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "rkube:server-bootstrap".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: SERVER_GROUP.into(),
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), "kube-system")
        .patch("rkube:server-bootstrap", &pp, &Patch::Apply(&role))
        .await
        .context("writing the server bootstrap Role")?;
    Api::<RoleBinding>::namespaced(client, "kube-system")
        .patch("rkube:server-bootstrap", &pp, &Patch::Apply(&binding))
        .await
        .context("writing the server bootstrap RoleBinding")?;
    Ok(())
}

/// Fetches the bundle from `server` with the server token (the CA checked against the
/// token's hash before the token is sent) and writes its files into `data_dir`. A data dir
/// that already has another cluster's CA is refused.
pub async fn fetch(server: &str, token: &JoinToken, data_dir: &Path) -> anyhow::Result<()> {
    let ca_pem = crate::join::fetch_ca(server, &token.ca_hash).await?;
    let mut config = kube::Config::new(server.parse().context("the server URL")?);
    config.root_cert = Some(vec![crate::join::pem_to_der(&ca_pem)?]);
    config.auth_info.token = Some(token.token.clone().into());
    let client = kube::Client::try_from(config)?;
    let secret = match Api::<Secret>::namespaced(client, "kube-system")
        .get(SECRET)
        .await
    {
        Ok(s) => s,
        Err(kube::Error::Api(e)) if e.code == 401 => bail!(
            "the server refused the token (401 Unauthorized): it is not this cluster's server token \
             (<data-dir>/token on the first server)"
        ),
        Err(kube::Error::Api(e)) if e.code == 403 => bail!(
            "the token is not a server token (403 Forbidden reading kube-system/{SECRET}): an agent's \
             token joins agents only; use <data-dir>/token of a server"
        ),
        Err(e) => return Err(e).context(format!("reading kube-system/{SECRET}")),
    };
    let sealed = secret
        .data
        .and_then(|mut d| d.remove("bundle"))
        .ok_or_else(|| anyhow!("kube-system/{SECRET} holds no bundle"))?;
    let (_, token_secret) = token
        .token
        .split_once('.')
        .ok_or_else(|| anyhow!("the token has no secret"))?;
    let plain = open(token_secret, &sealed.0)?;
    let bundle: BTreeMap<String, String> =
        serde_json::from_slice(&plain).context("the server bootstrap bundle")?;
    let ca_path = data_dir.join("tls/server-ca.crt");
    match std::fs::read_to_string(&ca_path) {
        Ok(have) if have != ca_pem => bail!(
            "{} is another cluster's CA: this data dir belongs to another cluster",
            ca_path.display()
        ),
        _ => {}
    }
    for (name, contents) in &bundle {
        ensure!(
            FILES.contains(&name.as_str()),
            "unexpected file {name:?} in the bundle"
        );
        let path = data_dir.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        apiserver::pki::write_secret(&path, contents)?;
    }
    tracing::info!(files = bundle.len(), "fetched the cluster's CAs and keys");
    Ok(())
}

fn key(token_secret: &str) -> anyhow::Result<aead::LessSafeKey> {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("rkube server bootstrap\0{token_secret}").as_bytes(),
    );
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, digest.as_ref())
        .map_err(|_| anyhow!("making the bundle key"))?;
    Ok(aead::LessSafeKey::new(unbound))
}

/// nonce (12 bytes) ‖ ciphertext ‖ tag.
fn seal(token_secret: &str, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut nonce = [0u8; aead::NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| anyhow!("no randomness for the bundle's nonce"))?;
    let mut out = plain.to_vec();
    key(token_secret)?
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut out,
        )
        .map_err(|_| anyhow!("encrypting the bundle"))?;
    let mut sealed = nonce.to_vec();
    sealed.extend(out);
    Ok(sealed)
}

fn open(token_secret: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
    ensure!(sealed.len() > aead::NONCE_LEN, "the bundle is too short");
    let (nonce, body) = sealed.split_at(aead::NONCE_LEN);
    let nonce =
        aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("the bundle's nonce"))?;
    let mut body = body.to_vec();
    let plain = key(token_secret)?
        .open_in_place(nonce, aead::Aad::empty(), &mut body)
        .map_err(|_| anyhow!("the bundle does not decrypt with this token"))?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_opens_only_with_its_token() {
        let sealed = seal("0123456789abcdef", b"the CA key").unwrap();
        assert_eq!(open("0123456789abcdef", &sealed).unwrap(), b"the CA key");
        assert!(open("fedcba9876543210", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open("0123456789abcdef", &tampered).is_err());
    }
}
