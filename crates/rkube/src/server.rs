//! `rkube server`: the control plane in one process.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use store::{CompactionPolicy, Compactor, DatastoreConfig};

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Port of the HTTPS API.
    #[arg(long, default_value_t = 6443)]
    pub(crate) https_listen_port: u16,
    /// Address the API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Address in-cluster clients reach the API at (the `kubernetes` Service's endpoint);
    /// default: --node-ip, else the bind address, else this machine's primary address.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// `Node,RBAC` (default) or `AlwaysAllow` (no authorization: for measurements only).
    #[arg(long, default_value = "Node,RBAC", value_parser = parse_authorization_mode)]
    authorization_mode: apiserver::AuthorizationMode,
    /// Admission plugins to turn off, comma-separated (e.g. PodSecurity,ResourceQuota).
    #[arg(long, value_delimiter = ',')]
    disable_admission_plugins: Vec<String>,
    /// Static bearer tokens: lines of `token,user,uid[,"group1,group2"]`.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Where to write the admin kubeconfig (default: <data-dir>/kubeconfig.yaml).
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// How long Events are kept, in seconds.
    #[arg(long, default_value_t = 3600)]
    event_ttl_seconds: u64,
    /// Encrypt resources at rest as this `EncryptionConfiguration` says (kube-apiserver's
    /// flag).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Encrypt Secrets at rest with an aescbc key generated under the data dir (k3s's flag);
    /// --encryption-provider-config wins when both are given.
    #[arg(long)]
    secrets_encryption: bool,
    /// Audit requests as this audit `Policy` says.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Where audit events are written, one JSON object a line (`-`: stdout).
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Do not run the controllers in this process.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run a node agent (kubelet + containerd) in this process.
    #[arg(long)]
    pub(crate) disable_agent: bool,
    /// A packaged component not to deploy (repeatable, or comma-separated): `coredns`
    /// (cluster DNS), `servicelb` (the service load balancer), `metrics-server` (the
    /// resource metrics API `kubectl top` and the HPA read), `local-storage` (the default
    /// StorageClass `local-path` and its provisioner), `ingress` (the IngressClass `rkube`
    /// and this server's agent's ingress controller). Its manifest is removed from
    /// <data-dir>/server/manifests and what it applied is deleted.
    #[arg(long, value_delimiter = ',', value_parser = crate::deploy::packaged::parse_part)]
    disable: Vec<String>,
    /// How often the metrics server scrapes every kubelet (Go duration, metrics-server's
    /// flag).
    #[arg(long, default_value = "15s", value_parser = parse_resolution)]
    metric_resolution: std::time::Duration,
    /// Start a managed etcd cluster with this server as its first member (k3s' flag): etcd
    /// under <data-dir>/db/etcd, supervised by this server, TLS from its own CA. Other
    /// servers join with --server and the token in <data-dir>/token.
    #[arg(long, conflicts_with_all = ["datastore_endpoint", "join_server"])]
    cluster_init: bool,
    /// Join the managed etcd cluster of the server at this URL (`https://IP:6443`) as
    /// another server; needs --token.
    #[arg(
        long = "server",
        env = "RKUBE_URL",
        requires = "token",
        conflicts_with = "datastore_endpoint"
    )]
    join_server: Option<String>,
    /// The server token (`K10<CA hash>::<id>.<secret>`, from the first server's
    /// <data-dir>/token); with --cluster-init, the token to use instead of a generated one.
    #[arg(long, env = "RKUBE_TOKEN")]
    token: Option<String>,
    /// Make this server's etcd member the only member of a new cluster, keeping its data
    /// (k3s' flag), then exit: restart without it. Other servers rejoin from empty data dirs.
    #[arg(long, conflicts_with = "datastore_endpoint")]
    cluster_reset: bool,
    /// With --cluster-reset: restore this etcd snapshot (`rkube etcd-snapshot save`'s) as the
    /// member's data; the old data is moved to <data-dir>/db/etcd-old-<unix seconds>.
    #[arg(long, requires = "cluster_reset")]
    cluster_reset_restore_path: Option<PathBuf>,
    #[command(flatten)]
    snapshots: crate::snapshots::SnapshotArgs,
    #[command(flatten)]
    etcd_snapshots: crate::etcd::snapshot::ScheduleArgs,
    #[command(flatten)]
    node_lifecycle: crate::node_lifecycle::NodeLifecycleArgs,
    #[command(flatten)]
    node: crate::agent::NodeArgs,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let advertise = args
            .advertise_address
            .or(args.node.node_ip)
            .or_else(|| (!args.bind_address.is_unspecified()).then_some(args.bind_address))
            .unwrap_or_else(kubelet::machine::node_ip);
        if args.cluster_reset {
            let data_dir = &args.store.data_dir;
            let restore = args.cluster_reset_restore_path.as_deref();
            let reset = crate::etcd::reset::run(data_dir, advertise, restore).await?;
            if let (Some(file), Some(old)) = (restore, &reset.old) {
                let _ = writeln!(
                    std::io::stdout(),
                    "Restored etcd snapshot {}; the previous member data is in {}",
                    file.display(),
                    old.display()
                );
            }
            // k3s' words.
            let _ = writeln!(
                std::io::stdout(),
                "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. \
                 Backup and delete {} on each peer etcd server and rejoin the nodes",
                data_dir.join("db").display()
            );
            return Ok(());
        }
        // The managed etcd, when this server runs one: the API server uses its member.
        let role = match (&args.join_server, args.cluster_init) {
            (Some(server), _) => {
                let token = args.token.as_deref().unwrap_or_default();
                let token = crate::join::JoinToken::parse(token).context("--token")?;
                Some(crate::etcd::Role::Join { server: server.clone(), token })
            }
            (None, true) => Some(crate::etcd::Role::Init),
            (None, false) => None,
        };
        let managed = match role {
            Some(role) => Some(crate::etcd::start(&args.store.data_dir, advertise, role).await?),
            None => None,
        };
        let endpoint = match &managed {
            Some(m) => Some(m.endpoint.as_str()),
            None => args.store.datastore_endpoint.as_deref(),
        };
        let mut datastore = args.store.datastore(endpoint)?;
        // The managed member takes only TLS clients with the etcd CA's certificates, on
        // loopback too: no other local process reads the cluster's state.
        if let (Some(m), DatastoreConfig::Etcd(etcd)) = (&managed, &mut datastore) {
            etcd.tls = Some(m.tls.clone());
        }
        let kubeconfig = args
            .write_kubeconfig
            .clone()
            .unwrap_or_else(|| args.store.data_dir.join("kubeconfig.yaml"));
        let encryption_config = match (args.encryption_provider_config.clone(), args.secrets_encryption) {
            (Some(path), _) => Some(path),
            (None, true) => Some(apiserver::encryption::ensure_generated(&args.store.data_dir)?),
            (None, false) => None,
        };
        // The resource metrics API, served in this process (k3s runs metrics-server as a
        // packaged Deployment behind an APIService).
        let metrics = (!args.disable.iter().any(|d| d == "metrics-server"))
            .then(metrics_server::MetricsServer::new);
        let mut local_services = apiserver::aggregator::LocalServices::default();
        for service in metrics.iter().flat_map(|m| m.services()) {
            local_services.add(service);
        }
        let server = apiserver::Server::start(apiserver::Config {
            data_dir: args.store.data_dir.clone(),
            bind: SocketAddr::new(args.bind_address, args.https_listen_port),
            datastore: datastore.clone(),
            kubeconfig,
            event_ttl: std::time::Duration::from_secs(args.event_ttl_seconds),
            advertise_address: Some(advertise),
            authorization_mode: args.authorization_mode,
            token_auth_file: args.token_auth_file.clone(),
            encryption_config,
            audit_policy: args.audit_policy_file.clone(),
            audit_log: args.audit_log_path.clone(),
            disable_admission_plugins: args.disable_admission_plugins.clone(),
            // The agent puts pods on the node's own network (the cni0 bridge).
            pod_netns: None,
            // Kubelets (this one, and agents that join) get serving certificates from the
            // cluster CA: the API server checks them against it, as k3s does.
            kubelet_certificate_authority: Some(
                apiserver::pki::Pki::new(&args.store.data_dir).ca_cert(),
            ),
            local_services,
        })
        .await?;
        // Old history is compacted for every backend (Kubernetes' API server does the same
        // for etcd); a second store client shares the backend.
        let compaction_store: Arc<dyn store::Store> = match &datastore {
            DatastoreConfig::Etcd(_) => store::open(&datastore).await?,
            DatastoreConfig::Sqlite { .. } => server.store(),
        };
        let _compactor = Compactor::new(compaction_store, CompactionPolicy::default()).spawn();
        // Scheduled snapshots of the SQLite store (an external etcd is snapshotted by its
        // own tools)...
        if let DatastoreConfig::Sqlite { path } = &datastore {
            args.snapshots.spawn(path.clone(), &args.store.data_dir);
        }
        // And of the managed etcd, through its member.
        if managed.is_some() {
            let node = crate::etcd::snapshot::node_name(args.node.node_name.as_deref(), &args.store.data_dir);
            args.etcd_snapshots.spawn(&args.store.data_dir, &node);
        }
        // A server's etcd member goes with its Node (`kubectl delete node`).
        if let Some(m) = &managed {
            let client = kube::Client::try_from(crate::client::config(&server.kubeconfig).await?)
                .context("a client for the etcd member removal")?;
            let pki = apiserver::pki::Pki::new(&args.store.data_dir);
            let etcd = crate::etcd::member::connect(std::slice::from_ref(&m.endpoint), &pki).await?;
            tokio::spawn(crate::etcd::node_members::MemberRemoval::new(client.clone(), etcd).run());
            if !args.disable_agent {
                let node =
                    kubelet::config::KubeletConfig::new(args.node.node_name.as_deref(), &args.store.data_dir)
                        .node_name;
                tokio::spawn(crate::etcd::node_members::mark_own_node(
                    client,
                    node,
                    m.name.clone(),
                    m.peer_url.clone(),
                ));
            }
        }
        // The controllers talk to this server through the API, as they would from elsewhere.
        if !args.disable_controller_manager {
            let config = crate::client::config(&server.kubeconfig).await?;
            let mut options = controllers::Options::from_config(&config);
            // The controller manager runs here, beside the CA: it signs node certificates.
            let pki = apiserver::pki::Pki::new(&args.store.data_dir);
            options.cluster_signing = Some((
                std::fs::read_to_string(pki.ca_cert()).context("reading the CA")?,
                std::fs::read_to_string(pki.ca_key()).context("reading the CA key")?,
            ));
            options.disable_servicelb = args.disable.iter().any(|d| d == "servicelb");
            options.node_lifecycle = args.node_lifecycle.options();
            options.volume.disable_local_path = args.disable.iter().any(|d| d == "local-storage");
            // k3s' default local storage path: volumes of nodes that name no directory.
            options.volume.local_path.default_storage_dir = args.store.data_dir.join("storage");
            let client = controllers::client(config)?;
            tokio::spawn(controllers::run_with(client, crate::client::identity(), options));
        }
        if let Some(m) = metrics {
            let pki = apiserver::pki::Pki::new(&args.store.data_dir);
            let kubelet = apiserver::kubelet_client::KubeletClient::new(&pki, Some(&pki.ca_cert()))
                .context("the metrics server's kubelet client")?;
            let scraper = metrics_server::Scraper::new(Arc::new(kubelet), metrics_server::SCRAPE_TIMEOUT);
            let client = client_go::client_as(
                crate::client::config(&server.kubeconfig).await?,
                metrics_server::USER_AGENT,
            )?;
            tokio::spawn(m.run(client, scraper, args.metric_resolution));
        }
        // Packaged components and the user's manifests (k3s' deploy controller).
        let manifests = crate::deploy::manifests_dir(&args.store.data_dir);
        crate::deploy::packaged::write(&manifests, &args.disable)?;
        let client = kube::Client::try_from(crate::client::config(&server.kubeconfig).await?)
            .context("a client for the deploy controller")?;
        tokio::spawn(crate::deploy::Deployer::new(client, manifests).run());
        if !args.disable_scheduler {
            let client = ::scheduler::client(crate::client::config(&server.kubeconfig).await?)?;
            tokio::spawn(::scheduler::run(client, crate::client::identity()));
        }
        // The first server publishes what joining servers fetch with its token.
        if args.cluster_init {
            let token = crate::etcd::bundle::server_token(&args.store.data_dir, args.token.as_deref())?;
            let client = kube::Client::try_from(crate::client::config(&server.kubeconfig).await?)
                .context("a client to publish the server bootstrap")?;
            crate::etcd::bundle::publish(client, &args.store.data_dir, &token)
                .await
                .context("publishing the server bootstrap bundle")?;
            crate::etcd::bundle::save_server_token(&args.store.data_dir, &token)?;
            let _ = writeln!(
                std::io::stdout(),
                "server token (joins servers with --server https://{}:{} --token): {}",
                advertise,
                args.https_listen_port,
                args.store.data_dir.join("token").display()
            );
        }
        // A server must outlive whoever reads its banner: a closed stdout is not an error.
        let _ = writeln!(
            std::io::stdout(),
            "rkube API server listening on https://{}\nadmin kubeconfig: {}\n  export KUBECONFIG={}",
            server.addr,
            server.kubeconfig.display(),
            server.kubeconfig.display()
        );
        // The node agent, unless disabled, in the background: containerd may take a while.
        let (stop_agent, stopped) = tokio::sync::oneshot::channel();
        // This node's agent authenticates as the node, as a joined one does.
        let mut node = args.node.clone();
        node.disable_ingress |= args.disable.iter().any(|d| d == "ingress");
        let node_kubeconfig = if args.disable_agent {
            server.kubeconfig.clone()
        } else {
            let name =
                kubelet::config::KubeletConfig::new(node.node_name.as_deref(), &args.store.data_dir)
                    .node_name;
            let path = client_kubeconfig(
                &args,
                &server,
                &format!("system:node:{name}"),
                &["system:nodes"],
                "agent/kubelet.kubeconfig",
            )
            .context("the node's client certificate")?;
            // The ingress controller's own identity (its ClusterRole, not the node's rules).
            if !node.disable_ingress {
                client_kubeconfig(
                    &args,
                    &server,
                    controllers::csrapproving::INGRESS_USER,
                    &[],
                    crate::agent::INGRESS_KUBECONFIG,
                )
                .context("the ingress controller's client certificate")?;
            }
            path
        };
        let agent = (!args.disable_agent).then(|| {
            tokio::spawn(crate::agent::in_process(
                node_kubeconfig,
                args.store.data_dir.clone(),
                node,
                stopped,
            ))
        });
        let store = server.store();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("handling SIGTERM")?;
        let result = tokio::select! {
            r = server.wait() => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = writeln!(std::io::stdout(), "shutting down");
                Ok(())
            }
            _ = term.recv() => {
                let _ = writeln!(std::io::stdout(), "shutting down (SIGTERM)");
                Ok(())
            }
        };
        let _ = stop_agent.send(());
        if let Some(a) = agent {
            let _ = a.await;
        }
        // Out of the `kubernetes` Service's endpoints now, not when the lease runs out.
        // Bounded: without an etcd quorum the delete would wait out the store's retries.
        let removal = apiserver::remove_master_lease(store.as_ref(), advertise);
        if tokio::time::timeout(std::time::Duration::from_secs(3), removal).await.is_err() {
            tracing::warn!("the datastore did not answer; this server's endpoint lease will expire");
        }
        if let Some(m) = managed {
            m.stop().await;
        }
        result
    })
}

fn parse_resolution(s: &str) -> Result<std::time::Duration, String> {
    match common::duration::parse_go(s) {
        Some(d) if d >= std::time::Duration::from_secs(1) => Ok(d),
        Some(_) => Err("must be at least 1s".into()),
        None => Err(format!("{s:?} is not a duration (e.g. 15s, 1m)")),
    }
}

fn parse_authorization_mode(s: &str) -> Result<apiserver::AuthorizationMode, String> {
    match s {
        "Node,RBAC" | "RBAC,Node" | "RBAC" => Ok(apiserver::AuthorizationMode::NodeRbac),
        "AlwaysAllow" => Ok(apiserver::AuthorizationMode::AlwaysAllow),
        other => Err(format!(
            "unsupported --authorization-mode {other:?}: use Node,RBAC or AlwaysAllow"
        )),
    }
}

/// A kubeconfig at `<data-dir>/<file>` for `user` in `groups` (this server's node, its
/// ingress controller), signed here with the cluster CA.
fn client_kubeconfig(
    args: &ServerArgs,
    server: &apiserver::Server,
    user: &str,
    groups: &[&str],
    file: &str,
) -> anyhow::Result<PathBuf> {
    let data_dir = &args.store.data_dir;
    let pki = apiserver::pki::Pki::new(data_dir);
    let (cert, key) = pki.issue_client_cert(user, groups)?;
    let host = if server.addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        server.addr.ip()
    };
    let url = format!("https://{}", SocketAddr::new(host, server.addr.port()));
    let path = data_dir.join(file);
    pki.write_kubeconfig(
        &path,
        &url,
        user,
        &apiserver::pki::Credentials::Cert {
            cert: &cert,
            key: &key,
        },
    )?;
    Ok(path)
}
