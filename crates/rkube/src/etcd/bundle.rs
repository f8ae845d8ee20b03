//! What a joining server must share with the others (k3s' bootstrap data, kubeadm's
//! `--upload-certs`): the cluster CA, the front-proxy CA, the service-account signing key,
//! the etcd CA, and the Secrets encryption key when there is one. The first server keeps it
//! in the Secret `kube-system/rkube-server-bootstrap`, encrypted (AES-256-GCM) with a key
//! derived from the server token's secret; only that token's bootstrap user may read it (an
//! extra group an agent's `rkube token create` token does not have), and only a holder of
//! the token can decrypt it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use ring::aead;
use tokio::time::Instant;

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
/// in `<data-dir>/token`, else a new one; [`save_server_token`] writes it there (k3s'
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
    Ok(token)
}

/// Writes the server token to `<data-dir>/token`: after [`publish`], so that whoever joins
/// as soon as the file appears finds the token known to the cluster.
pub fn save_server_token(data_dir: &Path, token: &JoinToken) -> anyhow::Result<()> {
    apiserver::pki::write_secret(&data_dir.join("token"), &format!("{}\n", token.text()))
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

/// How long a joining server waits for a first server that is still starting: its API may
/// not listen yet, and it publishes the bundle and the RBAC that lets the server token read
/// it only once serving, which the authorizer applies a moment later. Long enough for a
/// joiner started right after the first server, short enough that a wrong `--server` fails
/// while its user still waits for it.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(60);
/// The first pause between tries, doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Fetches the bundle from `server` with the server token (the CA checked against the
/// token's hash before the token is sent) and writes its files into `data_dir`. A data dir
/// that already has another cluster's CA is refused. Waits (up to [`WAIT_FOR_FIRST`]) while
/// the answers are a still-starting first server's; a wrong token or CA fails at once.
pub async fn fetch(server: &str, token: &JoinToken, data_dir: &Path) -> anyhow::Result<()> {
    let (ca_pem, secret) = read_waiting(server, token).await?;
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

/// Tries [`read_once`] until it succeeds, fails for good, or [`WAIT_FOR_FIRST`] passes (then
/// its last error is the answer).
async fn read_waiting(server: &str, token: &JoinToken) -> anyhow::Result<(String, Secret)> {
    let deadline = Instant::now() + WAIT_FOR_FIRST;
    let mut pause = RETRY_FIRST;
    let mut told = false;
    loop {
        let err = match read_once(server, token).await {
            Ok(got) => return Ok(got),
            Err(Attempt::Fail(e)) => return Err(e),
            Err(Attempt::Wait(e)) => e,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(err.context(format!(
                "gave up after waiting {}s for {server}",
                WAIT_FOR_FIRST.as_secs()
            )));
        }
        if told {
            tracing::debug!(
                server,
                error = %format!("{err:#}"),
                "still waiting for the join bundle"
            );
        } else {
            tracing::info!(
                server,
                error = %format!("{err:#}"),
                "waiting for the first server to publish its join bundle"
            );
            told = true;
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// How one try at reading the bundle failed.
enum Attempt {
    /// As a first server that is still starting would answer: try again.
    Wait(anyhow::Error),
    /// For good (a wrong token or CA, a bad URL, an agent's token, ...).
    Fail(anyhow::Error),
}

/// What a failed request says about the server that answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Connection refused or reset: not listening (yet).
    Unreachable,
    /// 503: listening, not ready.
    Unavailable,
    /// 401: the token does not authenticate.
    Unauthorized,
    /// 403: authenticated, not (yet) allowed.
    Forbidden,
    /// 404: not (yet) there.
    NotFound,
    /// Anything else, a CA hash mismatch among them.
    Other,
}

impl Failure {
    /// Whether a first server still starting gives this answer; `bundle` for the read of the
    /// bundle itself (published, and made readable, only once that server serves).
    fn transient(self, bundle: bool) -> bool {
        match self {
            Failure::Unreachable | Failure::Unavailable => true,
            Failure::Forbidden | Failure::NotFound => bundle,
            Failure::Unauthorized | Failure::Other => false,
        }
    }
}

/// Classifies an error by the first API status or socket error in its chain.
fn classify(err: &(dyn std::error::Error + 'static)) -> Failure {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let code = match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => Some(status.code),
            _ => e.downcast_ref::<kube::core::Status>().map(|s| s.code),
        };
        if let Some(code) = code {
            return match code {
                401 => Failure::Unauthorized,
                403 => Failure::Forbidden,
                404 => Failure::NotFound,
                503 => Failure::Unavailable,
                _ => Failure::Other,
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
            if matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted
            ) {
                return Failure::Unreachable;
            }
        }
        cause = e.source();
    }
    Failure::Other
}

/// One try: the server's CA (checked against the token's hash), then the sealed bundle.
async fn read_once(server: &str, token: &JoinToken) -> Result<(String, Secret), Attempt> {
    let ca_pem = match crate::join::fetch_ca(server, &token.ca_hash).await {
        Ok(pem) => pem,
        Err(e) if classify(e.as_ref()).transient(false) => return Err(Attempt::Wait(e)),
        Err(e) => return Err(Attempt::Fail(e)),
    };
    let client = (|| -> anyhow::Result<kube::Client> {
        let mut config = kube::Config::new(server.parse().context("the server URL")?);
        config.root_cert = Some(vec![crate::join::pem_to_der(&ca_pem)?]);
        config.auth_info.token = Some(token.token.clone().into());
        Ok(kube::Client::try_from(config)?)
    })()
    .map_err(Attempt::Fail)?;
    let err = match Api::<Secret>::namespaced(client.clone(), "kube-system")
        .get(SECRET)
        .await
    {
        Ok(secret) => return Ok((ca_pem, secret)),
        Err(e) => e,
    };
    let failure = classify(&err);
    let wait = failure.transient(true);
    let err = match failure {
        Failure::Unauthorized => anyhow!(
            "the server refused the token (401 Unauthorized): it is not this cluster's server token \
             (<data-dir>/token on the first server)"
        ),
        Failure::Forbidden => {
            // A server token's user is in SERVER_GROUP before the RBAC for it applies; an
            // agent's never is, and waiting would not change that.
            if in_server_group(client).await == Some(false) {
                return Err(Attempt::Fail(not_a_server_token()));
            }
            not_a_server_token()
        }
        _ => anyhow::Error::new(err).context(format!("reading kube-system/{SECRET}")),
    };
    Err(if wait {
        Attempt::Wait(err)
    } else {
        Attempt::Fail(err)
    })
}

fn not_a_server_token() -> anyhow::Error {
    anyhow!(
        "the token is not a server token (403 Forbidden reading kube-system/{SECRET}): an agent's \
         token joins agents only; use <data-dir>/token of a server"
    )
}

/// Whether the token's user is in [`SERVER_GROUP`], as the server says (SelfSubjectReview,
/// `kubectl auth whoami`); `None` when it does not say.
async fn in_server_group(client: kube::Client) -> Option<bool> {
    match Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => {
            let groups = review.status?.user_info?.groups.unwrap_or_default();
            Some(groups.iter().any(|g| g == SERVER_GROUP))
        }
        Err(e) => {
            tracing::debug!(error = %e, "no SelfSubjectReview: cannot tell an agent's token");
            None
        }
    }
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
    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("no", "Because")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_starting_first_server_is_waited_for_a_wrong_token_is_not() {
        let cases = [
            (api(401), Failure::Unauthorized, false, false),
            (api(403), Failure::Forbidden, false, true),
            (api(404), Failure::NotFound, false, true),
            (api(503), Failure::Unavailable, true, true),
            (api(500), Failure::Other, false, false),
        ];
        for (err, failure, ca, bundle) in cases {
            // As fetch_ca and read_once see them: wrapped in context.
            let err = anyhow::Error::new(err).context("reading kube-system/cluster-info");
            assert_eq!(classify(err.as_ref()), failure, "{err:#}");
            assert_eq!(failure.transient(false), ca, "{failure:?}");
            assert_eq!(failure.transient(true), bundle, "{failure:?}");
        }
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
        ] {
            let err = anyhow::Error::new(std::io::Error::from(kind)).context("connecting");
            assert_eq!(classify(err.as_ref()), Failure::Unreachable);
        }
        // A CA hash mismatch (fetch_ca's `ensure!`) and a bad URL fail at once.
        let mismatch = anyhow!("the server's CA is not the one the join token names");
        assert_eq!(classify(mismatch.as_ref()), Failure::Other);
        let url = anyhow::Error::new(std::io::Error::other("bad URL"));
        assert!(!classify(url.as_ref()).transient(true));
    }

    /// A real client's "connection refused" (nothing listens on a loopback port) is found in
    /// its error chain, however kube and hyper wrap it.
    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = crate::join::fetch_ca(&format!("https://127.0.0.1:{port}"), &"ab".repeat(32))
            .await
            .unwrap_err();
        assert_eq!(classify(err.as_ref()), Failure::Unreachable, "{err:#}");
    }
}
