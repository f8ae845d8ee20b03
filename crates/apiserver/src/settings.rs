//! `settings.k8s.io/v1alpha1`: PodPreset, which Kubernetes served until 1.20 and `k8s-openapi`
//! has no type for. Our own type, with Kubernetes' metadata conventions, serialization and
//! schema, so it decodes, validates and is explained like every other kind.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// PodPreset is a policy resource that defines additional runtime requirements for a Pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodPreset {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodPresetSpec>,
}

/// PodPresetSpec is a description of a pod preset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPresetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
}

impl k8s_openapi::Resource for PodPreset {
    const API_VERSION: &'static str = "settings.k8s.io/v1alpha1";
    const GROUP: &'static str = "settings.k8s.io";
    const KIND: &'static str = "PodPreset";
    const VERSION: &'static str = "v1alpha1";
    const URL_PATH_SEGMENT: &'static str = "podpresets";
    type Scope = NamespaceResourceScope;
}

// The schema by hand (as k8s-openapi writes its own), under Kubernetes' definition names and
// with upstream's field descriptions, which `kubectl explain` shows; generated into
// `schemas/builtin.json` with the other kinds' (crate::schemas).
#[cfg(feature = "schemas")]
impl schemars::JsonSchema for PodPreset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "io.k8s.api.settings.v1alpha1.PodPreset".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let described = |mut s: schemars::Schema, d: &str| {
            s.ensure_object().insert("description".into(), d.into());
            s
        };
        schemars::json_schema!({
            "description": "PodPreset is a policy resource that defines additional runtime requirements for a Pod.",
            "type": "object",
            "properties": {
                "apiVersion": {
                    "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                    "type": "string",
                },
                "kind": {
                    "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                    "type": "string",
                },
                "metadata": described(
                    generator.subschema_for::<ObjectMeta>(),
                    "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                ),
                "spec": generator.subschema_for::<PodPresetSpec>(),
            },
        })
    }
}

#[cfg(feature = "schemas")]
impl schemars::JsonSchema for PodPresetSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "io.k8s.api.settings.v1alpha1.PodPresetSpec".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let described = |mut s: schemars::Schema, d: &str| {
            s.ensure_object().insert("description".into(), d.into());
            s
        };
        let list = |items: schemars::Schema, d: &str| schemars::json_schema!({"description": d, "type": "array", "items": items});
        schemars::json_schema!({
            "description": "PodPresetSpec is a description of a pod preset.",
            "type": "object",
            "properties": {
                "selector": described(
                    generator.subschema_for::<LabelSelector>(),
                    "Selector is a label query over a set of resources, in this case pods. Required.",
                ),
                "env": list(generator.subschema_for::<EnvVar>(), "Env defines the collection of EnvVar to inject into containers."),
                "envFrom": list(generator.subschema_for::<EnvFromSource>(), "EnvFrom defines the collection of EnvFromSource to inject into containers."),
                "volumes": list(generator.subschema_for::<Volume>(), "Volumes defines the collection of Volume to inject into the pod."),
                "volumeMounts": list(generator.subschema_for::<VolumeMount>(), "VolumeMounts defines the collection of VolumeMount to inject into containers."),
            },
        })
    }
}
