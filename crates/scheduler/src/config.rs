//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1): profiles that enable,
//! disable and weight plugins, plugin arguments, percentageOfNodesToScore. Each profile
//! starts from Kubernetes' default profile; `disabled: [{name: "*"}]` clears an extension
//! point first, as upstream does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::framework::{Plugin, Profile};
use crate::plugins::{self, node_label::NodeLabel};

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProfileConfig {
    pub scheduler_name: Option<String>,
    pub percentage_of_nodes_to_score: Option<u32>,
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Plugins {
    pub multi_point: Option<PluginSet>,
    pub filter: Option<PluginSet>,
    pub score: Option<PluginSet>,
}

#[derive(Deserialize, Debug, Default)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Deserialize, Debug)]
pub struct PluginRef {
    pub name: String,
    pub weight: Option<i64>,
}

#[derive(Deserialize, Debug)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: serde_json::Value,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct NodeLabelArgs {
    #[serde(default)]
    present_labels: Vec<String>,
    #[serde(default)]
    absent_labels: Vec<String>,
    #[serde(default)]
    present_labels_preference: Vec<String>,
    #[serde(default)]
    absent_labels_preference: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct ServiceAffinityArgs {
    #[serde(default)]
    affinity_labels: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct VolumeBindingArgs {
    bind_timeout_seconds: Option<u64>,
}

/// What a profile's plugins may need beyond the pod and the nodes.
#[derive(Default)]
pub struct Deps {
    pub services: Option<client_go::informer::Informer<k8s_openapi::api::core::v1::Service>>,
    /// VolumeBinding's informers and the client it binds volumes with (without them the
    /// plugin is left out).
    pub storage: Option<(kube::Client, plugins::volume_binding::Sources)>,
}

/// Which extension points a plugin implements (as upstream's registry knows).
fn points(name: &str) -> (bool, bool) {
    match name {
        "NodeName" | "NodeUnschedulable" | "NodePorts" | "VolumeRestrictions"
        | "ServiceAffinity" | "VolumeBinding" => (true, false),
        "NodeResourcesBalancedAllocation" | "ImageLocality" => (false, true),
        _ => (true, true),
    }
}

fn build(name: &str, cfg: &[PluginConfig], deps: &Deps) -> anyhow::Result<Arc<dyn Plugin>> {
    let args = cfg
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.args.clone())
        .unwrap_or(serde_json::Value::Null);
    let from_args = |v: serde_json::Value| {
        if v.is_null() {
            serde_json::json!({})
        } else {
            v
        }
    };
    Ok(match name {
        "NodeName" => Arc::new(plugins::node_name::NodeName),
        "NodeUnschedulable" => Arc::new(plugins::node_unschedulable::NodeUnschedulable),
        "NodePorts" => Arc::new(plugins::node_ports::NodePorts),
        "NodeResourcesFit" => Arc::new(plugins::node_resources_fit::NodeResourcesFit),
        "NodeAffinity" => Arc::new(plugins::node_affinity::NodeAffinity),
        "TaintToleration" => Arc::new(plugins::taint_toleration::TaintToleration),
        "VolumeRestrictions" => {
            let claims = deps.storage.as_ref().map(|(_, src)| {
                let informer = src.claims.clone();
                let lookup: plugins::volume_restrictions::ClaimLookup =
                    Arc::new(move |ns, name| informer.get(Some(ns), name));
                lookup
            });
            Arc::new(plugins::volume_restrictions::VolumeRestrictions { claims })
        }
        "InterPodAffinity" => Arc::new(plugins::inter_pod_affinity::InterPodAffinity),
        "PodTopologySpread" => Arc::new(plugins::pod_topology_spread::PodTopologySpread),
        "NodeResourcesBalancedAllocation" => {
            Arc::new(plugins::balanced_allocation::BalancedAllocation)
        }
        "ImageLocality" => Arc::new(plugins::image_locality::ImageLocality),
        "NodeLabel" => {
            let a: NodeLabelArgs =
                serde_json::from_value(from_args(args)).context("NodeLabel args")?;
            Arc::new(NodeLabel {
                present: a.present_labels,
                absent: a.absent_labels,
                present_preference: a.present_labels_preference,
                absent_preference: a.absent_labels_preference,
            })
        }
        "ServiceAffinity" => {
            let a: ServiceAffinityArgs =
                serde_json::from_value(from_args(args)).context("ServiceAffinity args")?;
            let Some(services) = deps.services.clone() else {
                bail!("ServiceAffinity needs a Service informer");
            };
            Arc::new(plugins::service_affinity::ServiceAffinity {
                labels: a.affinity_labels,
                services,
            })
        }
        "VolumeBinding" => {
            let a: VolumeBindingArgs =
                serde_json::from_value(from_args(args)).context("VolumeBinding args")?;
            let Some((client, sources)) = &deps.storage else {
                bail!("VolumeBinding needs the storage informers");
            };
            let timeout = a.bind_timeout_seconds.map_or(
                plugins::volume_binding::DEFAULT_BIND_TIMEOUT,
                Duration::from_secs,
            );
            let plugin = plugins::volume_binding::VolumeBinding::new(Some(client.clone()), timeout);
            plugin.watch(sources);
            plugin
        }
        other => bail!("unknown scheduler plugin {other:?}"),
    })
}

fn apply_set(
    profile: &mut Profile,
    set: &PluginSet,
    filter: bool,
    score: bool,
    cfg: &[PluginConfig],
    deps: &Deps,
) -> anyhow::Result<()> {
    for d in &set.disabled {
        if d.name == "*" {
            if filter {
                profile.filters.clear();
            }
            if score {
                profile.scores.clear();
            }
        } else {
            if filter {
                profile.filters.retain(|p| p.name() != d.name);
            }
            if score {
                profile.scores.retain(|(p, _)| p.name() != d.name);
            }
        }
    }
    for e in &set.enabled {
        let plugin = build(&e.name, cfg, deps)?;
        let (is_filter, is_score) = points(&e.name);
        if filter && is_filter && !profile.filters.iter().any(|p| p.name() == e.name) {
            profile.filters.push(plugin.clone());
        }
        if score && is_score {
            let weight = e.weight.unwrap_or(1);
            match profile.scores.iter_mut().find(|(p, _)| p.name() == e.name) {
                Some(entry) => entry.1 = weight,
                None => profile.scores.push((plugin, weight)),
            }
        }
    }
    Ok(())
}

impl Configuration {
    pub fn parse(text: &str) -> anyhow::Result<Configuration> {
        let c: Configuration =
            serde_saphyr::from_str(text).context("parsing KubeSchedulerConfiguration")?;
        if let Some(kind) = c.kind.as_deref()
            && kind != "KubeSchedulerConfiguration"
        {
            bail!("expected kind KubeSchedulerConfiguration, got {kind}");
        }
        if let Some(v) = c.api_version.as_deref()
            && v != "kubescheduler.config.k8s.io/v1"
        {
            bail!("unsupported apiVersion {v} (kubescheduler.config.k8s.io/v1 is)");
        }
        Ok(c)
    }

    /// The profiles: the default one when none is configured.
    pub fn profiles(&self, deps: &Deps) -> anyhow::Result<Vec<Profile>> {
        let configs: Vec<&ProfileConfig> = self.profiles.iter().collect();
        let default = ProfileConfig::default();
        let configs = if configs.is_empty() {
            vec![&default]
        } else {
            configs
        };
        let mut out = Vec::new();
        for pc in configs {
            let mut p = plugins::default_profile();
            if deps.storage.is_some() {
                // With the claims at hand, VolumeRestrictions checks ReadWriteOncePod too,
                // and VolumeBinding takes upstream's place right after it.
                let at = p
                    .filters
                    .iter()
                    .position(|f| f.name() == "VolumeRestrictions");
                if let Some(i) = at {
                    p.filters[i] = build("VolumeRestrictions", &pc.plugin_config, deps)?;
                }
                let at = at.map_or(p.filters.len(), |i| i + 1);
                p.filters
                    .insert(at, build("VolumeBinding", &pc.plugin_config, deps)?);
            }
            if let Some(name) = &pc.scheduler_name {
                p.scheduler_name = name.clone();
            }
            if let Some(pct) = pc
                .percentage_of_nodes_to_score
                .or(self.percentage_of_nodes_to_score)
            {
                p.percentage_of_nodes_to_score = pct;
            }
            if let Some(pl) = &pc.plugins {
                if let Some(s) = &pl.multi_point {
                    apply_set(&mut p, s, true, true, &pc.plugin_config, deps)?;
                }
                if let Some(s) = &pl.filter {
                    apply_set(&mut p, s, true, false, &pc.plugin_config, deps)?;
                }
                if let Some(s) = &pl.score {
                    apply_set(&mut p, s, false, true, &pc.plugin_config, deps)?;
                }
            }
            out.push(p);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Profile) -> (Vec<&str>, Vec<(&str, i64)>) {
        (
            p.filters.iter().map(|f| f.name()).collect(),
            p.scores.iter().map(|(s, w)| (s.name(), *w)).collect(),
        )
    }

    #[test]
    fn profiles_enable_disable_and_weight_plugins() {
        let c = Configuration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 70
profiles:
- schedulerName: default-scheduler
- schedulerName: labelled
  plugins:
    filter:
      enabled: [{name: NodeLabel}]
      disabled: [{name: TaintToleration}]
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeLabel, weight: 5}, {name: NodeResourcesFit, weight: 2}]
  pluginConfig:
  - name: NodeLabel
    args: {presentLabels: [ssd], presentLabelsPreference: [fast]}
"#,
        )
        .unwrap();
        let profiles = c.profiles(&Deps::default()).unwrap();
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0].percentage_of_nodes_to_score, 70);
        assert_eq!(names(&profiles[0]).1.len(), 7);
        let (filters, scores) = names(&profiles[1]);
        assert_eq!(profiles[1].scheduler_name, "labelled");
        assert!(!filters.contains(&"TaintToleration") && filters.contains(&"NodeLabel"));
        assert_eq!(scores, [("NodeLabel", 5), ("NodeResourcesFit", 2)]);
        assert!(Configuration::parse("kind: Pod").is_err());
        let unknown =
            Configuration::parse("profiles: [{plugins: {filter: {enabled: [{name: Nope}]}}}]")
                .unwrap();
        assert!(unknown.profiles(&Deps::default()).is_err());
    }
}
