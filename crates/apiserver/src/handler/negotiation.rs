//! Content negotiation (upstream's `endpoints/handlers/negotiation` and the response
//! writers): what the Accept header asks for, and an object or list rendered as JSON, as
//! PartialObjectMetadata, or as a Table.

use std::collections::HashMap;

use http::Response;
use serde_json::{Value, json};

use super::{Body, ok};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::table::{self, IncludeObject};

/// What the Accept header asks for.
pub(super) struct Accept {
    pub(super) table: bool,
    /// `apidiscovery.k8s.io/<version>` for aggregated discovery, if acceptable.
    pub(super) discovery: Option<&'static str>,
    /// Whether plain JSON is acceptable.
    pub(super) json: bool,
    /// Whether the JSON media type itself is acceptable (`application/json` whatever its
    /// parameters, `application/*`, `*/*`, or no Accept): for a document served only as
    /// JSON (`/openapi/v2`, whose other form Kubernetes serves is protobuf), which a YAML-
    /// or protobuf-only client must not get.
    pub(super) json_media: bool,
    /// Whether `/openapi/v2`'s protobuf media type (kubectl's only Accept there) comes
    /// before any JSON media type.
    pub(super) openapi_protobuf: bool,
    /// `as=PartialObjectMetadata[List]`: only metadata (the garbage collector's and other
    /// metadata informers' form).
    pub(super) metadata_only: bool,
}

/// `/openapi/v2`'s protobuf media types: kubectl's spelling (which Go's `mime` cannot parse,
/// so it is never answered with) and the one served ([`OPENAPI_PROTOBUF_SERVED`]).
const OPENAPI_PROTOBUF: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

pub(super) const OPENAPI_PROTOBUF_SERVED: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

pub(super) fn parse_accept(h: Option<&str>) -> Accept {
    let h = h.unwrap_or("application/json");
    let mut a = Accept {
        table: false,
        discovery: None,
        json: false,
        json_media: false,
        openapi_protobuf: false,
        metadata_only: false,
    };
    for part in h.split(',') {
        let mut items = part.split(';').map(str::trim);
        let media = items.next().unwrap_or("");
        let params: HashMap<&str, &str> = items.filter_map(|p| p.split_once('=')).collect();
        if matches!(media, "application/json" | "application/*" | "*/*" | "") {
            a.json_media = true;
        }
        if !a.json_media && OPENAPI_PROTOBUF.contains(&media) {
            a.openapi_protobuf = true;
        }
        let json_like = matches!(
            media,
            "application/json" | "*/*" | "application/*" | "application/yaml"
        );
        match (
            params.get("as").copied(),
            params.get("g").copied(),
            params.get("v").copied(),
        ) {
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) if json_like => {
                a.table = true
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) if json_like && !a.table => a.metadata_only = true,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some(v))
                if json_like && a.discovery.is_none() =>
            {
                a.discovery = match v {
                    "v2" => Some("apidiscovery.k8s.io/v2"),
                    "v2beta1" => Some("apidiscovery.k8s.io/v2beta1"),
                    _ => None,
                }
            }
            (None, _, _) if json_like || media.is_empty() => a.json = true,
            _ => {}
        }
    }
    a
}

/// An object (or list) as PartialObjectMetadata (or PartialObjectMetadataList).
pub(super) fn partial_metadata(v: &Value) -> Value {
    let one = |o: &Value| {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    };
    match v.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "items": items.iter().map(one).collect::<Vec<_>>(),
        }),
        None => one(v),
    }
}

/// Renders one object or a list, as a Table when the client asked for one.
pub(super) fn render(
    info: &ResourceInfo,
    value: Value,
    accept: &Accept,
    query: &HashMap<String, String>,
) -> ApiResult<Response<Body>> {
    if accept.metadata_only && !accept.table {
        return Ok(ok(&partial_metadata(&value)));
    }
    if !accept.table {
        if !accept.json {
            return Err(ApiError::not_acceptable(
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            ));
        }
        return Ok(ok(&value));
    }
    let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
    let (items, metadata) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.clone(),
            value.get("metadata").cloned().unwrap_or_default(),
        ),
        None => {
            let rv = value
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or_default();
            (vec![value], json!({"resourceVersion": rv}))
        }
    };
    Ok(ok(&table::table(info, &items, metadata, include)))
}
