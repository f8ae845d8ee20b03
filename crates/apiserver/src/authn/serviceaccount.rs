//! ServiceAccount tokens: JWTs the API server signs (ES256 with its own key) and verifies —
//! issuer, audience, expiry, and that the ServiceAccount (and the Pod or Secret the token is
//! bound to) still exists with the same uid. Issued by the TokenRequest API
//! (`serviceaccounts/<name>/token`, `kubectl create token`, the kubelet's projected volumes).

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

use super::UserInfo;

/// The issuer and default audience (as k3s and kubeadm clusters name themselves).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub struct TokenSigner {
    key: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

/// What a token is bound to besides its ServiceAccount.
#[derive(Clone, Debug, Default)]
pub struct Binding {
    pub pod: Option<(String, String)>,
    pub secret: Option<(String, String)>,
    pub node: Option<(String, String)>,
}

/// What a valid token says, before the live objects are checked.
#[derive(Clone, Debug)]
pub struct Verified {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub binding: Binding,
    pub id: String,
}

impl TokenSigner {
    /// The signing key at `path` (PKCS#8 PEM), made on first start.
    pub fn load_or_create(path: &Path) -> Result<TokenSigner> {
        let rng = SystemRandom::new();
        if !path.exists() {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow::anyhow!("generating the service account key"))?;
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
            );
            crate::pki::write_secret(path, &pem)?;
        }
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .context("the service account key is not PEM")?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| anyhow::anyhow!("the service account key: {e}"))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = B64.encode(digest.as_ref());
        Ok(TokenSigner { key, key_id, rng })
    }

    /// Signs a token for ServiceAccount `ns/name` (uid `uid`) for `audiences`, valid for
    /// `seconds`, bound to `binding`. Returns the token and its expiry (Unix seconds).
    pub fn issue(
        &self,
        (ns, name, uid): (&str, &str, &str),
        audiences: &[String],
        seconds: i64,
        binding: &Binding,
    ) -> Result<(String, i64)> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let exp = now + seconds;
        let mut k8s = json!({
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": uid},
        });
        let refs = [
            ("pod", &binding.pod),
            ("secret", &binding.secret),
            ("node", &binding.node),
        ];
        for (field, r) in refs {
            if let Some((n, u)) = r {
                k8s[field] = json!({"name": n, "uid": u});
            }
        }
        if binding.pod.is_some() {
            // Kubelets refresh before this; upstream warns of stale tokens after it.
            k8s["warnafter"] = json!(now + (seconds * 8 / 10));
        }
        let claims = json!({
            "aud": audiences,
            "exp": exp,
            "iat": now,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": k8s,
            "nbf": now,
            "sub": format!("system:serviceaccount:{ns}:{name}"),
        });
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing a token"))?;
        Ok((format!("{signing_input}.{}", B64.encode(sig.as_ref())), exp))
    }

    /// Checks a token's signature, issuer, audience and times. `None`: not one of ours, or
    /// not valid (the caller answers 401).
    pub fn verify(&self, token: &str, audiences: &[String]) -> Option<Verified> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let sig = B64.decode(s).ok()?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .ok()?;
        let claims: Value = serde_json::from_slice(&B64.decode(c).ok()?).ok()?;
        if claims.get("iss")?.as_str()? != ISSUER {
            return None;
        }
        let aud: Vec<&str> = match claims.get("aud")? {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        if !aud.iter().any(|a| audiences.iter().any(|x| x == a)) {
            return None;
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // A minute of leeway for clocks, as upstream allows.
        if claims.get("exp")?.as_i64()? + 60 < now {
            return None;
        }
        if claims.get("nbf").and_then(Value::as_i64).unwrap_or(0) > now + 60 {
            return None;
        }
        let k = claims.get("kubernetes.io")?;
        let pair = |field: &str| -> Option<(String, String)> {
            let o = k.get(field)?;
            Some((
                o.get("name")?.as_str()?.to_string(),
                o.get("uid")?.as_str()?.to_string(),
            ))
        };
        let (name, uid) = pair("serviceaccount")?;
        Some(Verified {
            namespace: k.get("namespace")?.as_str()?.to_string(),
            name,
            uid,
            binding: Binding {
                pod: pair("pod"),
                secret: pair("secret"),
                node: pair("node"),
            },
            id: claims
                .get("jti")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }
}

impl Verified {
    /// The user the token authenticates as.
    pub fn user(&self) -> UserInfo {
        let mut u = UserInfo::new(
            format!("system:serviceaccount:{}:{}", self.namespace, self.name),
            vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
        );
        u.uid = self.uid.clone();
        if let Some((n, uid)) = &self.binding.pod {
            u.extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![n.clone()],
            );
            u.extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![uid.clone()],
            );
        }
        if let Some((n, uid)) = &self.binding.node {
            u.extra.insert(
                "authentication.kubernetes.io/node-name".into(),
                vec![n.clone()],
            );
            u.extra.insert(
                "authentication.kubernetes.io/node-uid".into(),
                vec![uid.clone()],
            );
        }
        if !self.id.is_empty() {
            u.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={}", self.id)],
            );
        }
        u.authenticated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_as_issued() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&dir.path().join("sa.key")).unwrap();
        let aud = vec![ISSUER.to_string()];
        let (t, _) = signer
            .issue(("ns", "sa", "u1"), &aud, 3600, &Binding::default())
            .unwrap();
        let v = signer.verify(&t, &aud).unwrap();
        assert_eq!(
            (v.namespace.as_str(), v.name.as_str(), v.uid.as_str()),
            ("ns", "sa", "u1")
        );
        assert_eq!(v.user().name, "system:serviceaccount:ns:sa");
        // Another audience, a tampered payload, another key, an expired token: refused.
        assert!(signer.verify(&t, &["vault".to_string()]).is_none());
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], B64.encode(r#"{"iss":"x"}"#), parts[2]);
        assert!(signer.verify(&forged, &aud).is_none());
        let other = TokenSigner::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.verify(&t, &aud).is_none());
        let (old, _) = signer
            .issue(("ns", "sa", "u1"), &aud, -120, &Binding::default())
            .unwrap();
        assert!(signer.verify(&old, &aud).is_none());
        // The key survives a restart.
        let again = TokenSigner::load_or_create(&dir.path().join("sa.key")).unwrap();
        assert!(again.verify(&t, &aud).is_some());
    }
}
