//! Which Ingresses are ours, as upstream decides: `spec.ingressClassName` naming a class whose
//! `spec.controller` is ours; else the deprecated `kubernetes.io/ingress.class` annotation
//! naming our class; else, with no class at all, when the default IngressClass is ours.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressClassSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::config::IngressConfig;

pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The classes served and the cluster's default class, from the IngressClasses.
#[derive(Debug, Default)]
pub struct Classes {
    ours: BTreeSet<String>,
    /// The class an Ingress without one gets: the newest marked default (ties: the first
    /// name), as upstream's DefaultIngressClass admission picks it.
    default: Option<String>,
    /// The annotation's value that is ours even without an IngressClass object.
    annotation: String,
}

fn is_default(c: &IngressClass) -> bool {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

impl Classes {
    pub fn new(classes: &[Arc<IngressClass>], cfg: &IngressConfig) -> Self {
        let ours = classes
            .iter()
            .filter(|c| {
                c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(&cfg.controller)
            })
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        let default = classes
            .iter()
            .filter(|c| is_default(c))
            .max_by(|a, b| {
                let created =
                    |c: &IngressClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(a)
                    .cmp(&created(b))
                    // Equal times: the smaller name is "newer" here so it wins, as upstream.
                    .then_with(|| b.metadata.name.cmp(&a.metadata.name))
            })
            .and_then(|c| c.metadata.name.clone());
        Classes {
            ours,
            default,
            annotation: cfg.class_name.clone(),
        }
    }

    /// Whether `ing` is served by this controller.
    pub fn serves(&self, ing: &Ingress) -> bool {
        if let Some(name) = ing
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref())
        {
            return self.ours.contains(name);
        }
        if let Some(a) = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLASS_ANNOTATION))
        {
            return *a == self.annotation || self.ours.contains(a);
        }
        self.default.as_ref().is_some_and(|d| self.ours.contains(d))
    }
}

/// Creates our IngressClass when missing, marked default unless another class already is
/// (as k3s' Traefik chart installs its class). Another node creating it first is fine.
pub async fn ensure_class(client: &Client, cfg: &IngressConfig) -> anyhow::Result<()> {
    let api: Api<IngressClass> = Api::all(client.clone());
    if api.get_opt(&cfg.class_name).await?.is_some() {
        return Ok(());
    }
    let another_default = api.list(&Default::default()).await?.iter().any(is_default);
    let class = IngressClass {
        metadata: ObjectMeta {
            name: Some(cfg.class_name.clone()),
            annotations: (!another_default)
                .then(|| [(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        spec: Some(IngressClassSpec {
            controller: Some(cfg.controller.clone()),
            parameters: None,
        }),
    };
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => {
            tracing::info!(class = %cfg.class_name, default = !another_default, "created the IngressClass");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::IngressSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn class(name: &str, controller: &str, default: bool, age_s: i64) -> Arc<IngressClass> {
        let now =
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_s).unwrap_or_default();
        Arc::new(IngressClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(now)),
                annotations: default
                    .then(|| [(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            spec: Some(IngressClassSpec {
                controller: Some(controller.into()),
                parameters: None,
            }),
        })
    }

    fn ing(class: Option<&str>, annotation: Option<&str>) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                annotations: annotation
                    .map(|a| [(CLASS_ANNOTATION.to_string(), a.to_string())].into()),
                ..Default::default()
            },
            spec: Some(IngressSpec {
                ingress_class_name: class.map(Into::into),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn cfg() -> IngressConfig {
        IngressConfig::new("n", vec![])
    }

    #[test]
    fn class_name_annotation_and_default() {
        let cs = Classes::new(
            &[
                class("rkube", "rkube.io/ingress", true, 10),
                class("nginx", "k8s.io/ingress-nginx", false, 10),
            ],
            &cfg(),
        );
        assert!(cs.serves(&ing(Some("rkube"), None)));
        assert!(!cs.serves(&ing(Some("nginx"), None)));
        assert!(!cs.serves(&ing(Some("missing"), None)));
        assert!(cs.serves(&ing(None, Some("rkube"))));
        assert!(!cs.serves(&ing(None, Some("nginx"))));
        assert!(cs.serves(&ing(None, None)), "ours is the default");
    }

    #[test]
    fn the_newest_default_class_decides_classless_ingresses() {
        let newer_nginx = Classes::new(
            &[
                class("rkube", "rkube.io/ingress", true, 100),
                class("nginx", "k8s.io/ingress-nginx", true, 10),
            ],
            &cfg(),
        );
        assert!(!newer_nginx.serves(&ing(None, None)));
        let older_nginx = Classes::new(
            &[
                class("rkube", "rkube.io/ingress", true, 10),
                class("nginx", "k8s.io/ingress-nginx", true, 100),
            ],
            &cfg(),
        );
        assert!(older_nginx.serves(&ing(None, None)));
        let no_default = Classes::new(&[class("rkube", "rkube.io/ingress", false, 1)], &cfg());
        assert!(!no_default.serves(&ing(None, None)));
        assert!(no_default.serves(&ing(Some("rkube"), None)));
    }
}
