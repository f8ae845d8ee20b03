//! Where a remote APIService's Service is served (upstream's endpoint service resolver,
//! `--enable-aggregator-routing`): the Service port `spec.service.port` names, then a ready
//! address of the Service's EndpointSlices and the port of that name there (the target
//! port). Each failure is the `Available=False` reason and message upstream's available
//! controller gives.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::registry::Registry;

/// Why an APIService's Service cannot be reached.
pub struct Unavailable {
    pub reason: &'static str,
    pub message: String,
}

fn unavailable(reason: &'static str, message: String) -> Unavailable {
    Unavailable { reason, message }
}

/// A ready endpoint of the Service an APIService `spec` names.
pub async fn resolve(registry: &Registry, spec: &Value) -> Result<SocketAddr, Unavailable> {
    let service = spec.get("service").cloned().unwrap_or_default();
    let s = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or("");
    let (ns, name) = (s("namespace"), s("name"));
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    let lookup = |e: crate::error::ApiError| unavailable("ServiceAccessError", e.message);
    let info = crate::resources::by_kind("", "Service").map_err(lookup)?;
    let svc = match registry.get_cached(info, Some(ns), name).await {
        Ok(svc) => svc,
        Err(e) if e.code == 404 => {
            return Err(unavailable(
                "ServiceNotFound",
                format!("service/{name} in {ns:?} is not present"),
            ));
        }
        Err(e) => return Err(lookup(e)),
    };
    let port_name = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        .map(|p| p.get("name").and_then(Value::as_str).unwrap_or(""))
        .ok_or_else(|| {
            unavailable(
                "ServicePortError",
                format!("service/{name} in {ns:?} is not listening on port {port}"),
            )
        })?;
    let slices_info =
        crate::resources::by_kind("discovery.k8s.io", "EndpointSlice").map_err(lookup)?;
    let slices: Vec<_> = registry
        .cached_objects(slices_info, Some(ns))
        .await
        .map_err(lookup)?
        .into_iter()
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(name)
        })
        .collect();
    if slices.is_empty() {
        return Err(unavailable(
            "EndpointsNotFound",
            format!("cannot find endpoints for service/{name} in {ns:?}"),
        ));
    }
    slices
        .iter()
        .find_map(|slice| ready_endpoint(slice, port_name))
        .ok_or_else(|| {
            unavailable(
                "MissingEndpoints",
                format!(
                    "endpoints for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
                ),
            )
        })
}

/// The first ready address of `slice` with the port named `port_name`.
fn ready_endpoint(slice: &Value, port_name: &str) -> Option<SocketAddr> {
    let port = slice
        .get("ports")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)?
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())?;
    slice
        .get("endpoints")
        .and_then(Value::as_array)?
        .iter()
        // Ready unless it says it is not (a nil `ready` means ready, as upstream).
        .filter(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false))
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.as_str()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, port))
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_ready_address_at_the_named_port() {
        let slice = json!({
            "ports": [{"name": "https", "port": 8443}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.2"]},
            ],
        });
        assert_eq!(
            ready_endpoint(&slice, "https"),
            Some("10.0.0.2:8443".parse().unwrap())
        );
        assert_eq!(ready_endpoint(&slice, ""), None);
    }
}
