//! `projected` volumes (pkg/volume/projected): configMap, secret, downwardAPI and
//! serviceAccountToken sources merged into one tmpfs directory with one `defaultMode` (the
//! ServiceAccount admission plugin gives every pod one: token, `ca.crt` and `namespace`).
//! `clusterTrustBundle` sources are not supported yet: such a volume fails to mount, saying so.

use std::path::Path;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::atomic_writer::Payload;
use super::config_map::{self, Kind, make_payload};
use super::{
    VolumeHost, VolumePlugin, aggregate, downward_api, mode_or_default, secret,
    service_account_token,
};

pub struct ProjectedPlugin;

impl VolumePlugin for ProjectedPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/projected"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.projected.is_some()
    }

    fn read_only(&self) -> bool {
        true
    }

    fn set_up<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let src = v.projected.clone().unwrap_or_default();
            let mode = mode_or_default(src.default_mode);
            let mut payload = Payload::new();
            let mut errors = Vec::new();
            for s in src.sources.iter().flatten() {
                let part = if let Some(c) = &s.config_map {
                    let optional = c.optional.unwrap_or(false);
                    match config_map::get(host, pod, &c.name, optional).await {
                        Ok(data) => {
                            make_payload(c.items.as_deref(), &data, mode, optional, Kind::ConfigMap)
                        }
                        Err(e) => Err(e),
                    }
                } else if let Some(sec) = &s.secret {
                    let optional = sec.optional.unwrap_or(false);
                    match secret::get(host, pod, &sec.name, optional).await {
                        Ok(data) => {
                            make_payload(sec.items.as_deref(), &data, mode, optional, Kind::Secret)
                        }
                        Err(e) => Err(e),
                    }
                } else if let Some(d) = &s.downward_api {
                    downward_api::collect_data(
                        d.items.as_deref().unwrap_or_default(),
                        pod,
                        host,
                        mode,
                    )
                } else if let Some(t) = &s.service_account_token {
                    service_account_token::payload(host, pod, t, mode).await
                } else if s.cluster_trust_bundle.is_some() {
                    Err("clusterTrustBundle projected volume sources are not supported by this kubelet yet".into())
                } else {
                    Ok(Payload::new())
                };
                match part {
                    Ok(p) => payload.extend(p),
                    Err(e) => errors.push(e),
                }
            }
            aggregate(errors)?;
            super::write_payload(host, pod, dir, true, &payload)
        })
    }
}
