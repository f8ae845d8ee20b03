//! Encryption at rest (`--encryption-provider-config`) through the real kubectl: what the
//! store holds, key rotation across restarts, and what a missing key does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::Cluster;

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const KEY2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes
const KEY3: &str = "YWFhYWFhYWFhYWFhYWFhYQ=="; // 16 bytes

/// An EncryptionConfiguration for secrets with these providers (YAML list items).
fn config(providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
    )
}

fn aescbc(keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("{{name: {n}, secret: \"{s}\"}}"))
        .collect();
    format!("      - aescbc: {{keys: [{}]}}\n", keys.join(", "))
}

const IDENTITY: &str = "      - identity: {}\n";

/// The raw stored bytes of an object, read from the store itself.
async fn raw(c: &Cluster, key: &str) -> Vec<u8> {
    c.server
        .store()
        .get(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is not stored"))
        .value
        .to_vec()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Writes `text` as the encryption config file `name` in the cluster's data dir.
fn write_config(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SECRET_KEY: &str = "/registry/core/secrets/default/s1";
// "topsecret-value" and its base64 (how a Secret's data is held in JSON).
const PLAIN: &str = "topsecret-value";
const PLAIN_B64: &str = "dG9wc2VjcmV0LXZhbHVl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_rotated_and_decrypted() {
    let c = Cluster::start_configured(false, |cfg| {
        let text = config(&format!("{}{IDENTITY}", aescbc(&[("key1", KEY1)])));
        cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc1.yaml", &text));
    })
    .await;
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        &format!("--from-literal=password={PLAIN}"),
    ])
    .await;
    let stored = raw(&c, SECRET_KEY).await;
    assert!(
        stored.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert!(!contains(&stored, PLAIN) && !contains(&stored, PLAIN_B64));
    assert!(!contains(&stored, "\"kind\""), "no plaintext JSON at all");
    // On disk: the row in the SQLite file, and no plaintext anywhere in its files.
    let db = c.dir.path().join("db").join("state.db");
    let row: Vec<u8> =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .query_row(
                "SELECT value FROM kv WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
                [SECRET_KEY.as_bytes()],
                |r| r.get(0),
            )
            .unwrap();
    assert_eq!(row, stored);
    for f in ["state.db", "state.db-wal"] {
        let bytes = std::fs::read(c.dir.path().join("db").join(f)).unwrap_or_default();
        assert!(
            !contains(&bytes, PLAIN_B64) && !contains(&bytes, PLAIN),
            "{f}"
        );
    }
    // Reads decrypt: get, list (the byte-splicing list path), a filtered list, a patch.
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"])
            .await,
        PLAIN_B64
    );
    let list = c.ok(&["get", "secrets", "-A", "-o", "json"]).await;
    assert!(list.contains(PLAIN_B64), "{list}");
    c.ok(&["label", "secret", "s1", "tier=db"]).await;
    assert_eq!(
        c.ok(&["get", "secrets", "-l", "tier=db", "-o", "name"])
            .await
            .trim(),
        "secret/s1"
    );
    assert!(
        raw(&c, SECRET_KEY)
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key1:")
    );
    // Unconfigured resources are stored as they always were.
    c.ok(&[
        "create",
        "configmap",
        "cm",
        "--from-literal=k=visible-value",
    ])
    .await;
    let cm = raw(&c, "/registry/core/configmaps/default/cm").await;
    assert!(cm.starts_with(b"{") && contains(&cm, "visible-value"));

    // Rotation: the new key first, restart, rewrite every secret.
    let c = c
        .restart(|cfg| {
            let text = config(&format!(
                "{}{IDENTITY}",
                aescbc(&[("key2", KEY2), ("key1", KEY1)])
            ));
            cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc2.yaml", &text));
        })
        .await;
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"])
            .await,
        PLAIN_B64
    );
    assert!(
        raw(&c, SECRET_KEY)
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key1:")
    );
    let all = c.ok(&["get", "secrets", "-A", "-o", "json"]).await;
    let file = c.write("all-secrets.json", &all);
    c.ok(&["replace", "-f", &file]).await;
    let rotated = raw(&c, SECRET_KEY).await;
    assert!(
        rotated.starts_with(b"k8s:enc:aescbc:v1:key2:"),
        "{}",
        String::from_utf8_lossy(&rotated)
    );
    assert!(!contains(&rotated, PLAIN_B64));

    // Old key removed and a wrong secret under the current name: an error Status, and the
    // server goes on serving everything else.
    let c = c
        .restart(|cfg| {
            let text = config(&aescbc(&[("key3", KEY3), ("key1", KEY1)]));
            cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc3.yaml", &text));
        })
        .await;
    let err = c.fails(&["get", "secret", "s1"]).await;
    let expected = format!(
        "Internal error occurred: unable to transform key \"{SECRET_KEY}\": no matching key was found for the provided AES transformer"
    );
    assert!(err.contains(&expected), "{err}");
    let err = c.fails(&["get", "secrets"]).await;
    assert!(err.contains("no matching key was found"), "{err}");
    assert!(
        c.ok(&["get", "configmap", "cm", "-o", "jsonpath={.data.k}"])
            .await
            .contains("visible-value")
    );
    let c = c
        .restart(|cfg| {
            let text = config(&aescbc(&[("key2", KEY3)]));
            cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc4.yaml", &text));
        })
        .await;
    let err = c.fails(&["get", "secret", "s1"]).await;
    assert!(err.contains("InternalError"), "{err}");

    // Identity first (turning encryption off): old encrypted data is still read, new
    // writes are plain.
    let c = c
        .restart(|cfg| {
            let text = config(&format!("{IDENTITY}{}", aescbc(&[("key2", KEY2)])));
            cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc5.yaml", &text));
        })
        .await;
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"])
            .await,
        PLAIN_B64
    );
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s2",
        "--from-literal=a=plain-now",
    ])
    .await;
    let s2 = raw(&c, "/registry/core/secrets/default/s2").await;
    assert!(s2.starts_with(b"{"), "{}", String::from_utf8_lossy(&s2));
    // Deleting an encrypted secret works too.
    c.ok(&["delete", "secret", "s1"]).await;
    c.fails(&["get", "secret", "s1"]).await;
}

/// aesgcm and secretbox on etcd: the raw value etcd holds, and a watch that decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aesgcm_and_secretbox_on_etcd() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, WatchEvent, WatchParams};

    let c = Cluster::start_configured(true, |cfg| {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aesgcm: {{keys: [{{name: g1, secret: \"{KEY1}\"}}]}}\n      - secretbox: {{keys: [{{name: b1, secret: \"{KEY2}\"}}]}}\n"
        );
        cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc.yaml", &text));
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(c.client().await, "default");
    let mut watch = secrets
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        &format!("--from-literal=password={PLAIN}"),
    ])
    .await;
    let stored = raw(&c, SECRET_KEY).await;
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:g1:"));
    assert!(!contains(&stored, PLAIN_B64));
    let added = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match watch.next().await {
                Some(Ok(WatchEvent::Added(s))) => break s,
                Some(Ok(_)) => continue,
                other => panic!("watch ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    let data = added.data.unwrap();
    assert_eq!(data["password"].0, PLAIN.as_bytes());
    // Secretbox first now: the aesgcm value is still read; new writes are secretbox.
    let c = c
        .restart(|cfg| {
            let text = format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - secretbox: {{keys: [{{name: b1, secret: \"{KEY2}\"}}]}}\n      - aesgcm: {{keys: [{{name: g1, secret: \"{KEY1}\"}}]}}\n"
            );
            cfg.encryption_config = Some(write_config(&cfg.data_dir, "enc2.yaml", &text));
        })
        .await;
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"])
            .await,
        PLAIN_B64
    );
    c.ok(&["annotate", "secret", "s1", "rotated=yes"]).await;
    assert!(
        raw(&c, SECRET_KEY)
            .await
            .starts_with(b"k8s:enc:secretbox:v1:b1:")
    );
    assert_eq!(
        c.ok(&[
            "get",
            "secret",
            "s1",
            "-o",
            "jsonpath={.metadata.annotations.rotated}"
        ])
        .await,
        "yes"
    );
}
