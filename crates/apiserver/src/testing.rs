//! A test cluster: an API server on a temporary data directory (SQLite or a real etcd of its
//! own) with the real kubectl and a `kube` client pointed at it. For this crate's tests and
//! every crate that builds on the API server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

use std::path::PathBuf;
use std::process::{Command, Output};

use store::DatastoreConfig;
use store::testing::EtcdProcess;

use crate::{Config, Server};

pub struct Cluster {
    pub server: Server,
    pub dir: tempfile::TempDir,
    _etcd: Option<EtcdProcess>,
    /// What the server was started with (a restart reuses it).
    config: Config,
}

impl Cluster {
    /// A server on a fresh data directory: SQLite, or a real etcd of its own.
    pub async fn start(etcd: bool) -> Cluster {
        Self::start_with(etcd, std::time::Duration::from_secs(3)).await
    }

    /// Like [`Cluster::start`], keeping Events for `event_ttl` (short by default, so the
    /// TTL itself can be tested).
    pub async fn start_with(etcd: bool, event_ttl: std::time::Duration) -> Cluster {
        Self::start_configured(etcd, |c| c.event_ttl = event_ttl).await
    }

    /// A server whose [`Config`] `f` adjusts first (e.g. an encryption config; the data
    /// directory is `config.data_dir`).
    pub async fn start_configured(etcd: bool, f: impl FnOnce(&mut Config)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (datastore, etcd) = if etcd {
            let e = EtcdProcess::start().await.unwrap();
            let cfg =
                DatastoreConfig::parse(Some(&format!("{}?prefix=/t", e.client_url)), dir.path())
                    .unwrap();
            (cfg, Some(e))
        } else {
            (DatastoreConfig::parse(None, dir.path()).unwrap(), None)
        };
        let mut config = Config {
            event_ttl: std::time::Duration::from_secs(3),
            ..config(dir.path(), datastore)
        };
        f(&mut config);
        let server = Server::start(config.clone()).await.unwrap();
        let c = Cluster {
            server,
            dir,
            _etcd: etcd,
            config,
        };
        // What the ServiceAccounts controller and the root CA publisher would create: pods
        // need their namespace's `default` account (ServiceAccount admission) and the
        // `kube-root-ca.crt` their token volume projects, and most tests run no controllers.
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            c.default_service_account(ns).await;
        }
        c
    }

    /// Stops the server and starts a new one on the same store and data directory, its
    /// [`Config`] adjusted by `f` (a restart with new flags).
    pub async fn restart(self, f: impl FnOnce(&mut Config)) -> Cluster {
        let Cluster {
            server,
            dir,
            _etcd,
            mut config,
        } = self;
        // The same store: in one process, SQLite's lock outlives a stopped server.
        let store = server.store();
        server.stop();
        drop(server);
        f(&mut config);
        let server = Server::start_on(config.clone(), store).await.unwrap();
        Cluster {
            server,
            dir,
            _etcd,
            config,
        }
    }

    /// Creates the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap in `ns`, as
    /// the ServiceAccounts controller and the root CA publisher do in every namespace
    /// (existing ones are fine).
    pub async fn default_service_account(&self, ns: &str) {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client().await, ns);
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "default", "namespace": ns}
        }))
        .unwrap();
        match api.create(&Default::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating the default service account in {ns}: {e}"),
        }
        let ca = std::fs::read_to_string(crate::pki::Pki::new(self.dir.path()).ca_cert()).unwrap();
        let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(self.client().await, ns);
        let cm = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns},
            "data": {"ca.crt": ca},
        }))
        .unwrap();
        match cms.create(&Default::default(), &cm).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating kube-root-ca.crt in {ns}: {e}"),
        }
    }

    /// Creates a namespace with its `default` ServiceAccount, ready for pods.
    pub async fn namespace(&self, name: &str) {
        self.ok(&["create", "namespace", name]).await;
        self.default_service_account(name).await;
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig.clone()
    }

    /// A kubeconfig that authenticates with bearer `token`.
    pub fn kubeconfig_with_token(&self, file: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        let server = format!("https://{}", self.server.addr);
        crate::pki::Pki::new(self.dir.path())
            .write_kubeconfig(
                &path,
                &server,
                "token-user",
                &crate::pki::Credentials::Token(token),
            )
            .unwrap();
        path
    }

    /// A kubeconfig for user `name` in `groups`: a client certificate signed by the
    /// cluster's CA.
    pub fn kubeconfig_as(&self, name: &str, groups: &[&str]) -> PathBuf {
        let pki = crate::pki::Pki::new(self.dir.path());
        let (cert, key) = pki.issue_client_cert(name, groups).unwrap();
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{}.yaml", name.replace(':', "_")));
        let server = format!("https://{}", self.server.addr);
        pki.write_kubeconfig(
            &path,
            &server,
            name,
            &crate::pki::Credentials::Cert {
                cert: &cert,
                key: &key,
            },
        )
        .unwrap();
        path
    }

    /// Runs kubectl off the async threads (the server runs on them).
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig(), args).await
    }

    /// Runs kubectl with another kubeconfig (another user).
    pub async fn kubectl_with(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
        let kubeconfig = kubeconfig.to_path_buf();
        let cache = self.dir.path().join("kube-cache");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(&args)
                .output()
                .expect("run kubectl")
        })
        .await
        .unwrap()
    }

    /// kubectl that must succeed; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout.into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn write(&self, name: &str, contents: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.display().to_string()
    }

    /// The admin client configuration.
    pub async fn config(&self) -> kube::Config {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap()
    }

    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).unwrap()
    }
}

/// A server's configuration on `dir` and `datastore`, on a loopback port, everything else
/// as `rkube server` defaults it (tests and benches start servers from it).
pub fn config(dir: &std::path::Path, datastore: DatastoreConfig) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        bind: "127.0.0.1:0".parse().unwrap(),
        datastore,
        kubeconfig: dir.join("kubeconfig.yaml"),
        event_ttl: crate::registry::DEFAULT_EVENT_TTL,
        advertise_address: None,
        authorization_mode: Default::default(),
        token_auth_file: None,
        encryption_config: None,
        audit_policy: None,
        audit_log: None,
        disable_admission_plugins: Vec::new(),
        pod_netns: None,
        kubelet_certificate_authority: None,
        local_services: Default::default(),
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for up to `secs` seconds; panics
/// naming `what` when it never does.
pub async fn eventually_within<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// [`eventually_within`] 30 seconds.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(30, what, check).await
}

/// The official Python client release the tests use (Kubernetes 1.32's generated client).
pub const PYTHON_CLIENT: &str = "kubernetes==32.0.1";

/// A Python interpreter with [`PYTHON_CLIENT`] installed: a virtual environment under
/// `/var/tmp` (or `RKUBE_PYTHON_VENV`), made on first use with pip from PyPI. Panics when it
/// cannot be made: a test that needs the client never passes without having run.
pub fn python_client() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("RKUBE_PYTHON_VENV")
            .unwrap_or_else(|_| "/var/tmp/rkube-python-client-32.0.1".into()),
    );
    let python = dir.join("bin/python");
    let has_client = |p: &std::path::Path| {
        Command::new(p)
            .args([
                "-c",
                "import kubernetes, sys; sys.exit(kubernetes.__version__ != '32.0.1')",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_client(&python) {
        return python;
    }
    let out = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 -m venv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PYTHON_CLIENT,
        ])
        .output()
        .expect("pip runs");
    assert!(
        out.status.success(),
        "pip install {PYTHON_CLIENT} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        has_client(&python),
        "{PYTHON_CLIENT} is not importable after install"
    );
    python
}
