//! The root CA publisher (Kubernetes' `pkg/controller/certificates/rootcacertpublisher`):
//! every active namespace has a ConfigMap `kube-root-ca.crt` holding the cluster CA as
//! `ca.crt`, so a program in a pod can verify the API server it reaches through
//! `kubernetes.default.svc`. A deleted or edited one is put back.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::serviceaccounts::is_active;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub const CONFIG_MAP: &str = "kube-root-ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub struct RootCaCertPublisher {
    client: Client,
    namespaces: Informer<Namespace>,
    config_maps: Informer<ConfigMap>,
    ca_pem: String,
    queue: Arc<WorkQueue>,
}

impl RootCaCertPublisher {
    pub fn new(
        client: Client,
        namespaces: Informer<Namespace>,
        config_maps: Informer<ConfigMap>,
        ca_pem: String,
    ) -> Arc<Self> {
        let c = Arc::new(RootCaCertPublisher {
            client,
            namespaces,
            config_maps,
            ca_pem,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.namespaces.on_change(move |ch: &Change<Namespace>| {
            if let Some(ns) = &ch.new {
                me.queue.add(key_of(ns.as_ref()));
            }
        });
        let me = c.clone();
        c.config_maps.on_change(move |ch: &Change<ConfigMap>| {
            if let Some(cm) = ch.object()
                && cm.metadata.name.as_deref() == Some(CONFIG_MAP)
            {
                me.queue
                    .add(cm.metadata.namespace.clone().unwrap_or_default());
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(
            &self,
            &self.queue,
            &[&self.namespaces, &self.config_maps],
            workers,
        )
        .await;
    }

    fn data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("ca.crt".to_string(), self.ca_pem.clone())])
    }
}

impl Reconciler for RootCaCertPublisher {
    const NAME: &'static str = "root-ca-cert-publisher";

    async fn reconcile(self: &Arc<Self>, ns: &str) -> anyhow::Result<Action> {
        if !self.namespaces.get(None, ns).is_some_and(|n| is_active(&n)) {
            return Ok(Action::Done);
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let current = self.config_maps.get(Some(ns), CONFIG_MAP);
        let data = self.data();
        match current {
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(CONFIG_MAP.into()),
                        annotations: Some(BTreeMap::from([(
                            DESCRIPTION_KEY.to_string(),
                            DESCRIPTION.to_string(),
                        )])),
                        ..Default::default()
                    },
                    data: Some(data),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
                    Err(e) => return Err(e).context("creating kube-root-ca.crt"),
                }
            }
            Some(cm) if cm.data.as_ref() != Some(&data) || cm.binary_data.is_some() => {
                // Someone changed it: the CA goes back (with the cached resourceVersion, so a
                // stale cache is a conflict and a retry, not a lost write).
                let mut fixed = (*cm).clone();
                fixed.data = Some(data);
                fixed.binary_data = None;
                api.replace(CONFIG_MAP, &PostParams::default(), &fixed)
                    .await
                    .context("restoring kube-root-ca.crt")?;
            }
            Some(_) => {}
        }
        Ok(Action::Done)
    }
}

/// The PEM form of DER certificates (as a kubeconfig's CA arrives in `kube::Config`).
pub fn pem_of(ders: &[Vec<u8>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in ders {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
