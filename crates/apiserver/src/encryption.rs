//! Encryption at rest (kube-apiserver's `--encryption-provider-config`): an
//! `EncryptionConfiguration` names resources and an ordered list of providers for them.
//! Writes use the first provider; reads pick the provider by the stored value's prefix, so
//! data written with any listed key stays readable (key rotation: put the new key first,
//! restart, rewrite every object).
//!
//! Stored layout, as upstream's `storage/value/encrypt`: `k8s:enc:<provider>:v1:<key>:`
//! followed by
//! - aesgcm: 12-byte random nonce || AES-GCM sealed data, with the storage key as the
//!   additional authenticated data (an encrypted value cannot be moved to another key);
//! - aescbc: 16-byte random IV || AES-CBC of the PKCS#7-padded data;
//! - secretbox: 24-byte random nonce || NaCl secretbox (tag || ciphertext).
//!
//! `identity` stores plaintext with no prefix.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use anyhow::{Context, Result, bail};
use base64::Engine;
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::rand::SecureRandom;
use serde::Deserialize;

/// The prefix of every encrypted value; identity refuses to read such data.
const ENCRYPTED: &[u8] = b"k8s:enc:";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderConfig {
    aesgcm: Option<KeysConfig>,
    aescbc: Option<KeysConfig>,
    secretbox: Option<KeysConfig>,
    identity: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

/// A parsed `EncryptionConfiguration`.
pub struct EncryptionConfig {
    /// In file order: the first rule naming a resource wins.
    rules: Vec<Rule>,
}

struct Rule {
    resources: Vec<Pattern>,
    transformer: Arc<Transformer>,
}

/// `secrets` (core), `deployments.apps`, `*.apps`, `*.` (every core resource), `*.*`.
struct Pattern {
    resource: String,
    group: String,
}

impl Pattern {
    fn parse(s: &str) -> Pattern {
        let (resource, group) = s.split_once('.').unwrap_or((s, ""));
        Pattern {
            resource: resource.to_string(),
            group: group.to_string(),
        }
    }

    fn matches(&self, group: &str, plural: &str) -> bool {
        (self.group == "*" || self.group == group)
            && (self.resource == "*" || self.resource == plural)
    }
}

/// The providers of one resource, flattened in order (each key is one entry).
pub struct Transformer {
    providers: Vec<Provider>,
}

struct Provider {
    /// `k8s:enc:<provider>:v1:<key>:`, empty for identity.
    prefix: Vec<u8>,
    cipher: Cipher,
}

enum Cipher {
    Identity,
    AesGcm(Vec<u8>),
    AesCbc(Vec<u8>),
    Secretbox(Vec<u8>),
}

impl EncryptionConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the encryption config {}", path.display()))?;
        Self::parse(&text)
            .with_context(|| format!("parsing the encryption config {}", path.display()))
    }

    /// Parses YAML or JSON (JSON is YAML).
    pub fn parse(text: &str) -> Result<Self> {
        let file: ConfigFile =
            serde_saphyr::from_str(text).context("not an EncryptionConfiguration")?;
        if file.kind != "EncryptionConfiguration" {
            bail!("kind {:?} is not EncryptionConfiguration", file.kind);
        }
        if !matches!(
            file.api_version.as_str(),
            "apiserver.config.k8s.io/v1" | "apiserver.config.k8s.io/v1beta1"
        ) {
            bail!(
                "apiVersion {:?} is not apiserver.config.k8s.io/v1",
                file.api_version
            );
        }
        let mut rules = Vec::new();
        for (i, r) in file.resources.iter().enumerate() {
            if r.resources.is_empty() {
                bail!("resources[{i}].resources: at least one resource is required");
            }
            if r.providers.is_empty() {
                bail!("resources[{i}].providers: at least one provider is required");
            }
            let mut providers = Vec::new();
            for (j, p) in r.providers.iter().enumerate() {
                providers.extend(
                    parse_provider(p).with_context(|| format!("resources[{i}].providers[{j}]"))?,
                );
            }
            rules.push(Rule {
                resources: r.resources.iter().map(|s| Pattern::parse(s)).collect(),
                transformer: Arc::new(Transformer { providers }),
            });
        }
        Ok(EncryptionConfig { rules })
    }

    /// The transformer for a resource (`group` "" is core), if the config names it.
    pub fn for_resource(&self, group: &str, plural: &str) -> Option<Arc<Transformer>> {
        self.rules
            .iter()
            .find(|r| r.resources.iter().any(|p| p.matches(group, plural)))
            .map(|r| r.transformer.clone())
    }
}

/// k3s's `--secrets-encryption`: the config at `<data_dir>/cred/encryption-config.json`,
/// created on first use with a random 32-byte aescbc key (and identity, so Secrets written
/// before encryption was turned on stay readable). An existing file is kept as it is: it
/// may hold rotated keys.
pub fn ensure_generated(data_dir: &Path) -> Result<std::path::PathBuf> {
    let path = data_dir.join("cred").join("encryption-config.json");
    if path.exists() {
        return Ok(path);
    }
    let dir = data_dir.join("cred");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = random::<32>().map_err(anyhow::Error::msg)?;
    let config = serde_json::json!({
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                {"aescbc": {"keys": [{
                    "name": "aescbckey",
                    "secret": base64::engine::general_purpose::STANDARD.encode(key),
                }]}},
                {"identity": {}},
            ],
        }],
    });
    let text = serde_json::to_vec_pretty(&config).context("encoding the encryption config")?;
    // The key is a credential: only its owner may read it.
    let tmp = dir.join(".encryption-config.json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated the secrets encryption config");
    Ok(path)
}

fn parse_provider(p: &ProviderConfig) -> Result<Vec<Provider>> {
    let set = [
        p.aesgcm.is_some(),
        p.aescbc.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.kms.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        bail!("exactly one provider must be specified per entry");
    }
    if p.identity.is_some() {
        return Ok(vec![Provider {
            prefix: Vec::new(),
            cipher: Cipher::Identity,
        }]);
    }
    if p.kms.is_some() {
        bail!("the kms provider is not supported");
    }
    let (name, keys, sizes): (&str, &KeysConfig, &[usize]) = if let Some(k) = &p.aesgcm {
        ("aesgcm", k, &[16, 24, 32])
    } else if let Some(k) = &p.aescbc {
        ("aescbc", k, &[16, 24, 32])
    } else if let Some(k) = &p.secretbox {
        ("secretbox", k, &[32])
    } else {
        bail!("no provider specified");
    };
    if keys.keys.is_empty() {
        bail!("{name}.keys: at least one key is required");
    }
    let mut out = Vec::new();
    for (i, k) in keys.keys.iter().enumerate() {
        if k.name.is_empty() || k.name.contains(':') {
            bail!("{name}.keys[{i}].name: must be non-empty and contain no ':'");
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(k.secret.trim())
            .with_context(|| format!("{name}.keys[{i}].secret: not valid base64"))?;
        if !sizes.contains(&secret.len()) {
            bail!(
                "{name}.keys[{i}].secret: the key is {} bytes, must be one of {sizes:?}",
                secret.len()
            );
        }
        out.push(Provider {
            prefix: format!("k8s:enc:{name}:v1:{}:", k.name).into_bytes(),
            cipher: match name {
                "aesgcm" => Cipher::AesGcm(secret),
                "aescbc" => Cipher::AesCbc(secret),
                _ => Cipher::Secretbox(secret),
            },
        });
    }
    Ok(out)
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut buf = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| "the system random generator failed".to_string())?;
    Ok(buf)
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, U12>;

fn gcm_seal(key: &[u8], nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let payload = Payload { msg, aad };
    let sealed = match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key).map(|c| c.encrypt(nonce, payload)),
        24 => Aes192Gcm::new_from_slice(key).map(|c| c.encrypt(nonce, payload)),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key).map(|c| c.encrypt(nonce, payload)),
    };
    sealed
        .map_err(|e| e.to_string())?
        .map_err(|_| "AES-GCM encryption failed".to_string())
}

fn gcm_open(key: &[u8], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let payload = Payload { msg, aad };
    let opened = match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key).map(|c| c.decrypt(nonce, payload)),
        24 => Aes192Gcm::new_from_slice(key).map(|c| c.decrypt(nonce, payload)),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key).map(|c| c.decrypt(nonce, payload)),
    };
    opened
        .map_err(|e| e.to_string())?
        .map_err(|_| "cipher: message authentication failed".to_string())
}

fn cbc_seal<C>(key: &[u8], iv: &[u8; 16], msg: &[u8]) -> Result<Vec<u8>, String>
where
    C: BlockEncryptMut + BlockCipher + KeyInit,
{
    let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|e| e.to_string())?;
    Ok(enc.encrypt_padded_vec_mut::<Pkcs7>(msg))
}

fn cbc_open<C>(key: &[u8], iv: &[u8], msg: &[u8]) -> Result<Vec<u8>, String>
where
    C: BlockDecryptMut + BlockCipher + KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|e| e.to_string())?;
    let mut out = dec
        .decrypt_padded_vec_mut::<NoPadding>(msg)
        .map_err(|_| "the stored data is not a multiple of the block size".to_string())?;
    // PKCS#7 checked by hand, to fail with upstream's two messages.
    let pad = out.last().copied().unwrap_or(0) as usize;
    if pad == 0 || pad > out.len() {
        return Err("invalid PKCS7 data (empty or not padded)".into());
    }
    let size = out.len() - pad;
    if out[size..].iter().any(|b| *b as usize != pad) {
        return Err("invalid padding on input".into());
    }
    out.truncate(size);
    Ok(out)
}

impl Cipher {
    /// `k8s:enc:<provider>:v1:`, the part of the prefix before the key name.
    fn provider_prefix(&self) -> Option<&'static [u8]> {
        match self {
            Cipher::Identity => None,
            Cipher::AesGcm(_) => Some(b"k8s:enc:aesgcm:v1:"),
            Cipher::AesCbc(_) => Some(b"k8s:enc:aescbc:v1:"),
            Cipher::Secretbox(_) => Some(b"k8s:enc:secretbox:v1:"),
        }
    }

    fn no_key_error(&self) -> &'static str {
        match self {
            Cipher::Secretbox(_) => {
                "no matching key was found for the provided Secretbox transformer"
            }
            _ => "no matching key was found for the provided AES transformer",
        }
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Cipher::Identity => Ok(plain.to_vec()),
            Cipher::AesGcm(key) => {
                let nonce = random::<12>()?;
                let mut out = nonce.to_vec();
                out.extend(gcm_seal(key, &nonce, plain, aad)?);
                Ok(out)
            }
            Cipher::AesCbc(key) => {
                let iv = random::<16>()?;
                let sealed = match key.len() {
                    16 => cbc_seal::<aes::Aes128>(key, &iv, plain)?,
                    24 => cbc_seal::<aes::Aes192>(key, &iv, plain)?,
                    _ => cbc_seal::<aes::Aes256>(key, &iv, plain)?,
                };
                let mut out = iv.to_vec();
                out.extend(sealed);
                Ok(out)
            }
            Cipher::Secretbox(key) => {
                let nonce = random::<24>()?;
                let sealed = crypto_secretbox::XSalsa20Poly1305::new_from_slice(key)
                    .map_err(|e| e.to_string())?
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plain)
                    .map_err(|_| "secretbox encryption failed".to_string())?;
                let mut out = nonce.to_vec();
                out.extend(sealed);
                Ok(out)
            }
        }
    }

    fn open<'a>(&self, data: &'a [u8], aad: &[u8]) -> Result<Cow<'a, [u8]>, String> {
        match self {
            Cipher::Identity => {
                if data.starts_with(ENCRYPTED) {
                    return Err("identity transformer tried to read encrypted data".into());
                }
                Ok(Cow::Borrowed(data))
            }
            Cipher::AesGcm(key) => {
                if data.len() < 12 {
                    return Err("the stored data was shorter than the required size".into());
                }
                gcm_open(key, &data[..12], &data[12..], aad).map(Cow::Owned)
            }
            Cipher::AesCbc(key) => {
                if data.len() < 16 {
                    return Err("the stored data was shorter than the required size".into());
                }
                let (iv, body) = data.split_at(16);
                if body.len() % 16 != 0 {
                    return Err("the stored data is not a multiple of the block size".into());
                }
                let opened = match key.len() {
                    16 => cbc_open::<aes::Aes128>(key, iv, body)?,
                    24 => cbc_open::<aes::Aes192>(key, iv, body)?,
                    _ => cbc_open::<aes::Aes256>(key, iv, body)?,
                };
                Ok(Cow::Owned(opened))
            }
            Cipher::Secretbox(key) => {
                if data.len() < 24 {
                    return Err("the stored data was shorter than the required size".into());
                }
                crypto_secretbox::XSalsa20Poly1305::new_from_slice(key)
                    .map_err(|e| e.to_string())?
                    .decrypt(
                        crypto_secretbox::Nonce::from_slice(&data[..24]),
                        &data[24..],
                    )
                    .map(Cow::Owned)
                    .map_err(|_| "output array too small or decryption failed".to_string())
            }
        }
    }
}

/// What reading a stored value gives: the plaintext, and whether it was stored with
/// something other than the write provider (then a rewrite is not a no-op).
pub struct Opened<'a> {
    pub data: Cow<'a, [u8]>,
    pub stale: bool,
}

impl Transformer {
    /// The value to store under `key`: the first provider's encryption of `plain`.
    pub fn to_storage(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let Some(p) = self.providers.first() else {
            return Ok(plain.to_vec());
        };
        let sealed = p.cipher.seal(plain, key.as_bytes())?;
        let mut out = Vec::with_capacity(p.prefix.len() + sealed.len());
        out.extend_from_slice(&p.prefix);
        out.extend(sealed);
        Ok(out)
    }

    /// The plaintext of a value stored under `key`, by the provider its prefix names. An
    /// empty-prefix (identity) provider that cannot read it lets the next ones try, so an
    /// identity-first config still reads encrypted data while migrating away.
    ///
    /// Errors as upstream words them: the keys' errors when a key of that name failed
    /// (another key of the same name may follow, so none ends the search), "no matching
    /// key" when the provider is listed but not the key, else "no matching prefix found".
    pub fn from_storage<'a>(&self, key: &str, stored: &'a [u8]) -> Result<Opened<'a>, String> {
        let mut errors = Vec::new();
        let mut provider_listed = None;
        for (i, p) in self.providers.iter().enumerate() {
            if provider_listed.is_none()
                && p.cipher
                    .provider_prefix()
                    .is_some_and(|pp| stored.starts_with(pp))
            {
                provider_listed = Some(p.cipher.no_key_error());
            }
            let Some(rest) = stored.strip_prefix(p.prefix.as_slice()) else {
                continue;
            };
            match p.cipher.open(rest, key.as_bytes()) {
                Err(_) if p.prefix.is_empty() => continue,
                Err(e) => errors.push(e),
                Ok(data) => {
                    return Ok(Opened {
                        data,
                        stale: i != 0,
                    });
                }
            }
        }
        Err(match errors.len() {
            0 => provider_listed
                .unwrap_or("no matching prefix found")
                .to_string(),
            1 => errors.remove(0),
            _ => format!("[{}]", errors.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(providers: &str) -> EncryptionConfig {
        EncryptionConfig::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, '*.apps']\n  providers:\n{providers}"
        ))
        .unwrap()
    }

    const K16: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 0123456789abcdef
    const K24: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3";
    const K32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn every_provider_and_key_size_round_trips() {
        for (p, k) in [
            ("aescbc", K16),
            ("aescbc", K24),
            ("aescbc", K32),
            ("aesgcm", K16),
            ("aesgcm", K24),
            ("aesgcm", K32),
            ("secretbox", K32),
        ] {
            let c = config(&format!(
                "  - {p}: {{keys: [{{name: k1, secret: '{k}'}}]}}\n"
            ));
            let t = c.for_resource("", "secrets").unwrap();
            let stored = t
                .to_storage("/registry/core/secrets/a/b", b"hello")
                .unwrap();
            assert!(stored.starts_with(format!("k8s:enc:{p}:v1:k1:").as_bytes()));
            assert!(!stored.windows(5).any(|w| w == b"hello"));
            let opened = t
                .from_storage("/registry/core/secrets/a/b", &stored)
                .unwrap();
            assert_eq!(&*opened.data, b"hello");
            assert!(!opened.stale);
        }
    }

    #[test]
    fn resources_match_by_group() {
        let c = config("  - identity: {}\n");
        assert!(c.for_resource("", "secrets").is_some());
        assert!(c.for_resource("apps", "deployments").is_some());
        assert!(c.for_resource("", "configmaps").is_none());
        assert!(c.for_resource("batch", "jobs").is_none());
    }

    #[test]
    fn aesgcm_binds_the_key() {
        let c = config(&format!(
            "  - aesgcm: {{keys: [{{name: k, secret: '{K32}'}}]}}\n"
        ));
        let t = c.for_resource("", "secrets").unwrap();
        let stored = t.to_storage("/a", b"x").unwrap();
        assert!(t.from_storage("/b", &stored).is_err());
    }

    #[test]
    fn rotation_identity_and_unknown_prefixes() {
        let old = config(&format!(
            "  - aescbc: {{keys: [{{name: key1, secret: '{K32}'}}]}}\n  - identity: {{}}\n"
        ));
        let t = old.for_resource("", "secrets").unwrap();
        let v1 = t.to_storage("/k", b"secret").unwrap();
        // Plaintext written before encryption was turned on is read (stale) via identity.
        let plain = t.from_storage("/k", b"{}").unwrap();
        assert!(plain.stale);
        let new = config(&format!(
            "  - aescbc: {{keys: [{{name: key2, secret: '{K16}'}}, {{name: key1, secret: '{K32}'}}]}}\n"
        ));
        let t2 = new.for_resource("", "secrets").unwrap();
        let read = t2.from_storage("/k", &v1).unwrap();
        assert_eq!((&*read.data, read.stale), (&b"secret"[..], true));
        assert!(
            t2.to_storage("/k", b"s")
                .unwrap()
                .starts_with(b"k8s:enc:aescbc:v1:key2:")
        );
        // A key that is gone, under a provider still listed.
        let only2 = config(&format!(
            "  - aescbc: {{keys: [{{name: key2, secret: '{K16}'}}]}}\n"
        ));
        assert_eq!(
            only2
                .for_resource("", "secrets")
                .unwrap()
                .from_storage("/k", &v1)
                .err()
                .unwrap(),
            "no matching key was found for the provided AES transformer"
        );
        // A wrong secret under the right name.
        let wrong = config(&format!(
            "  - aescbc: {{keys: [{{name: key1, secret: '{K16}'}}]}}\n"
        ));
        assert!(
            wrong
                .for_resource("", "secrets")
                .unwrap()
                .from_storage("/k", &v1)
                .is_err()
        );
        // Without identity, plaintext has no provider.
        assert_eq!(
            t2.from_storage("/k", b"{}").err().unwrap(),
            "no matching prefix found"
        );
        // Identity first: writes plain, still reads the encrypted data.
        let back = config(&format!(
            "  - identity: {{}}\n  - aescbc: {{keys: [{{name: key1, secret: '{K32}'}}]}}\n"
        ));
        let t3 = back.for_resource("", "secrets").unwrap();
        assert_eq!(&*t3.from_storage("/k", &v1).unwrap().data, b"secret");
        assert_eq!(t3.to_storage("/k", b"s").unwrap(), b"s");
    }

    #[test]
    fn generated_config_encrypts_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = ensure_generated(dir.path()).unwrap();
        let c = EncryptionConfig::load(&path).unwrap();
        let t = c.for_resource("", "secrets").unwrap();
        assert!(
            t.to_storage("/k", b"x")
                .unwrap()
                .starts_with(b"k8s:enc:aescbc:v1:aescbckey:")
        );
        // Kept as it is on the next start.
        let before = std::fs::read(&path).unwrap();
        ensure_generated(dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            "  - aescbc: {keys: [{name: k, secret: 'c2hvcnQ='}]}\n",
            "  - secretbox: {keys: [{name: k, secret: 'MDEyMzQ1Njc4OWFiY2RlZg=='}]}\n",
            "  - aescbc: {keys: []}\n",
            "  - kms: {name: x}\n",
        ] {
            assert!(
                EncryptionConfig::parse(&format!(
                    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{bad}"
                ))
                .is_err(),
                "{bad}"
            );
        }
    }
}
