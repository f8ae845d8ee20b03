//! The Gateway API informers. The CRDs may not be installed: until they are served, a probe
//! retries quietly (debug logs, backoff 1 s doubling to 30 s) while the controller serves
//! Ingresses; once they are, the informers start and the controller serves Gateways too
//! (GRPCRoutes too once their CRD is served: its informer retries until then).

use std::sync::Arc;
use std::time::Duration;

use client_go::informer::{Informer, StopOnDrop};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::Notify;

use super::status::{RouteInformers, Sources};
use super::types::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// GRPCRoutes and ReferenceGrants (optional CRDs) and Namespaces (an older server's role may not grant
/// them) are waited for this long at most.
const OPTIONAL_SYNC: Duration = Duration::from_secs(10);

pub struct Informers {
    pub sources: Arc<Sources>,
    pub grants: Informer<ReferenceGrant>,
    pub namespaces: Informer<Namespace>,
    _stop: StopOnDrop,
}

/// Whether GatewayClasses, Gateways and HTTPRoutes can be listed.
async fn probe(client: &Client) -> Result<(), kube::Error> {
    let lp = ListParams::default().limit(1);
    Api::<GatewayClass>::all(client.clone())
        .list_metadata(&lp)
        .await?;
    Api::<Gateway>::all(client.clone())
        .list_metadata(&lp)
        .await?;
    Api::<HTTPRoute>::all(client.clone())
        .list_metadata(&lp)
        .await?;
    Ok(())
}

/// Waits until the Gateway API is served, then starts the informers, waking `changed` on
/// every change, and returns once they have synced.
pub async fn start_when_served(client: Client, changed: Arc<Notify>) -> Informers {
    let mut delay = FIRST_RETRY;
    while let Err(e) = probe(&client).await {
        tracing::debug!(error = %e, retry_in = ?delay, "Gateway API not served; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
    let classes = Informer::<GatewayClass>::start(Api::all(client.clone()));
    let gateways = Informer::<Gateway>::start(Api::all(client.clone()));
    let routes = Informer::<HTTPRoute>::start(Api::all(client.clone()));
    let grpc_routes = Informer::<GRPCRoute>::start(Api::all(client.clone()));
    let grants = Informer::<ReferenceGrant>::start(Api::all(client.clone()));
    let namespaces = Informer::<Namespace>::start(Api::all(client.clone()));
    let stop = StopOnDrop(vec![
        classes.stopper(),
        gateways.stopper(),
        routes.stopper(),
        grpc_routes.stopper(),
        grants.stopper(),
        namespaces.stopper(),
    ]);
    let n = changed.clone();
    classes.on_change(move |_| n.notify_one());
    let n = changed.clone();
    gateways.on_change(move |_| n.notify_one());
    let n = changed.clone();
    routes.on_change(move |_| n.notify_one());
    let n = changed.clone();
    grpc_routes.on_change(move |_| n.notify_one());
    let n = changed.clone();
    grants.on_change(move |_| n.notify_one());
    namespaces.on_change(move |_| changed.notify_one());
    classes.wait_synced().await;
    gateways.wait_synced().await;
    routes.wait_synced().await;
    // Waited for together: each may never sync (CRD missing, role without the right).
    let (grpc, grants_synced, ns_synced) = tokio::join!(
        tokio::time::timeout(OPTIONAL_SYNC, grpc_routes.wait_synced()),
        tokio::time::timeout(OPTIONAL_SYNC, grants.wait_synced()),
        tokio::time::timeout(OPTIONAL_SYNC, namespaces.wait_synced()),
    );
    if grpc.is_err() {
        tracing::info!("GRPCRoutes not listed yet: none are served until they are");
    }
    if grants_synced.is_err() {
        tracing::info!(
            "ReferenceGrants not listed yet: cross-namespace references are refused until they are"
        );
    }
    if ns_synced.is_err() {
        tracing::info!(
            "Namespaces not listed yet: listeners' namespace selectors select none until they are"
        );
    }
    tracing::info!("gateway API: informers synced");
    Informers {
        sources: Arc::new(Sources {
            classes,
            gateways,
            routes: RouteInformers {
                http: routes,
                grpc: grpc_routes,
            },
        }),
        grants,
        namespaces,
        _stop: stop,
    }
}
