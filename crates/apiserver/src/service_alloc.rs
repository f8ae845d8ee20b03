//! Service ClusterIP (10.43.0.0/16) and NodePort (30000-32767) allocation.
//!
//! Each allocated IP or port is one key in the store (`/registry/allocations/...`), claimed
//! with create-if-absent: the store's atomic create is what makes two Services never get the
//! same address, even with several API servers on one etcd. Keys are released when the
//! Service goes or stops needing them.

use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use store::Store;

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;

pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// The `kubernetes` Service's address (first of the range, as Kubernetes does it).
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);
/// The cluster DNS Service's address.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 10);
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

const IP_PREFIX: &str = "/registry/allocations/serviceips/";
const PORT_PREFIX: &str = "/registry/allocations/nodeports/";

fn range() -> (u32, u32) {
    let base = u32::from(SERVICE_CIDR.0);
    let size = 1u32 << (32 - SERVICE_CIDR.1);
    // Network and broadcast addresses are never handed out.
    (base + 1, base + size - 2)
}

fn in_range(ip: Ipv4Addr) -> bool {
    let (lo, hi) = range();
    (lo..=hi).contains(&u32::from(ip))
}

/// A pseudo-random start point, so allocation does not always scan from the bottom.
fn random_u32() -> u32 {
    rand::random()
}

async fn claim(store: &Arc<dyn Store>, key: &str, owner: &str) -> ApiResult<bool> {
    match store
        .create(key, Bytes::from(owner.to_string()), None)
        .await
    {
        Ok(_) => Ok(true),
        Err(store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(ApiError::internal(format!("allocating {key}: {e}"))),
    }
}

async fn release(store: &Arc<dyn Store>, key: &str) {
    match store.delete(key, None).await {
        Ok(_) | Err(store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(key, error = %e, "releasing a service allocation failed"),
    }
}

fn owner(obj: &Value) -> String {
    format!("{}/{}", meta::namespace(obj), meta::name(obj))
}

fn invalid(obj: &Value, cause: Cause) -> ApiError {
    let info = crate::resources::service_info();
    ApiError::invalid(&info, meta::name(obj), vec![cause])
}

async fn allocate_ip(store: &Arc<dyn Store>, obj: &Value) -> ApiResult<Ipv4Addr> {
    let (lo, hi) = range();
    let size = hi - lo + 1;
    let start = random_u32() % size;
    for i in 0..size {
        let ip = Ipv4Addr::from(lo + (start + i) % size);
        if ip == KUBERNETES_SERVICE_IP || ip == DNS_SERVICE_IP {
            continue;
        }
        if claim(store, &format!("{IP_PREFIX}{ip}"), &owner(obj)).await? {
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a service IP: the range is full",
    ))
}

async fn allocate_port(store: &Arc<dyn Store>, obj: &Value) -> ApiResult<u16> {
    let size = u32::from(NODE_PORTS.end() - NODE_PORTS.start() + 1);
    let start = random_u32() % size;
    for i in 0..size {
        let port = NODE_PORTS.start() + ((start + i) % size) as u16;
        if claim(store, &format!("{PORT_PREFIX}{port}"), &owner(obj)).await? {
            return Ok(port);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a node port: the range is full",
    ))
}

fn needs_node_ports(obj: &Value) -> bool {
    matches!(
        meta::str_at(obj, "/spec/type"),
        Some("NodePort" | "LoadBalancer")
    )
}

/// What a Service holds: its ClusterIP (if allocated from the range) and node ports.
fn held(obj: &Value) -> (Option<Ipv4Addr>, Vec<u16>) {
    let ip = meta::str_at(obj, "/spec/clusterIP")
        .and_then(|s| s.parse().ok())
        .filter(|ip| in_range(*ip));
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default();
    (ip, ports)
}

/// Allocates what a new Service needs, filling `spec.clusterIP(s)` and `nodePort`s. On an
/// error nothing stays claimed.
pub async fn allocate(store: &Arc<dyn Store>, obj: &mut Value) -> ApiResult<()> {
    let mut claimed: Vec<String> = Vec::new();
    let result = allocate_inner(store, obj, &mut claimed).await;
    if result.is_err() {
        for key in &claimed {
            release(store, key).await;
        }
    }
    result
}

async fn allocate_inner(
    store: &Arc<dyn Store>,
    obj: &mut Value,
    claimed: &mut Vec<String>,
) -> ApiResult<()> {
    let typ = meta::str_at(obj, "/spec/type")
        .unwrap_or("ClusterIP")
        .to_string();
    if typ != "ExternalName" {
        match meta::str_at(obj, "/spec/clusterIP").unwrap_or("") {
            "None" => {}
            "" => {
                let ip = allocate_ip(store, obj).await?;
                claimed.push(format!("{IP_PREFIX}{ip}"));
                obj["spec"]["clusterIP"] = json!(ip.to_string());
            }
            wanted => {
                let ip: Ipv4Addr = wanted.parse().map_err(|_| {
                    invalid(
                        obj,
                        Cause::invalid(
                            "spec.clusterIPs",
                            wanted,
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ),
                    )
                })?;
                if !in_range(ip) {
                    return Err(invalid(
                        obj,
                        Cause::invalid(
                            "spec.clusterIPs",
                            wanted,
                            "failed to allocate IP: the provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16",
                        ),
                    ));
                }
                let key = format!("{IP_PREFIX}{ip}");
                if !claim(store, &key, &owner(obj)).await? {
                    return Err(invalid(
                        obj,
                        Cause::invalid(
                            "spec.clusterIPs",
                            wanted,
                            "failed to allocate IP: provided IP is already allocated",
                        ),
                    ));
                }
                claimed.push(key);
            }
        }
        let ip = obj["spec"]["clusterIP"].clone();
        obj["spec"]["clusterIPs"] = json!([ip]);
    }
    if needs_node_ports(obj) {
        allocate_node_ports(store, obj, claimed, &[]).await?;
    }
    Ok(())
}

async fn allocate_node_ports(
    store: &Arc<dyn Store>,
    obj: &mut Value,
    claimed: &mut Vec<String>,
    already: &[u16],
) -> ApiResult<()> {
    let count = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..count {
        let wanted = obj["spec"]["ports"][i]
            .get("nodePort")
            .and_then(Value::as_u64);
        let port = match wanted {
            Some(p) if already.contains(&(p as u16)) => continue,
            Some(p) => {
                let p16 = u16::try_from(p).ok().filter(|p| NODE_PORTS.contains(p)).ok_or_else(|| {
                    invalid(obj, Cause::invalid(format!("spec.ports[{i}].nodePort"), p, "provided port is not in the valid range. The range of valid ports is 30000-32767"))
                })?;
                let key = format!("{PORT_PREFIX}{p16}");
                if !claim(store, &key, &owner(obj)).await? {
                    return Err(invalid(
                        obj,
                        Cause::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            p,
                            "provided port is already allocated",
                        ),
                    ));
                }
                claimed.push(key);
                p16
            }
            None => {
                let p = allocate_port(store, obj).await?;
                claimed.push(format!("{PORT_PREFIX}{p}"));
                p
            }
        };
        obj["spec"]["ports"][i]["nodePort"] = json!(port);
    }
    Ok(())
}

/// On update: keeps the ClusterIP (immutable), keeps node ports the old object held, and
/// allocates or releases node ports as the type changes.
pub async fn reallocate(store: &Arc<dyn Store>, new: &mut Value, old: &Value) -> ApiResult<()> {
    let (_, old_ports) = held(old);
    let old_cluster_ip = old.pointer("/spec/clusterIP").cloned();
    match meta::str_at(new, "/spec/clusterIP") {
        None | Some("") => {
            if let Some(ip) = old_cluster_ip.clone() {
                new["spec"]["clusterIP"] = ip;
                new["spec"]["clusterIPs"] = old
                    .pointer("/spec/clusterIPs")
                    .cloned()
                    .unwrap_or(json!([]));
            }
        }
        Some(ip) if Some(ip) != old_cluster_ip.as_ref().and_then(Value::as_str) => {
            return Err(invalid(
                new,
                Cause::invalid("spec.clusterIPs[0]", ip, "may not change once set"),
            ));
        }
        _ => {}
    }
    let mut claimed = Vec::new();
    if needs_node_ports(new) {
        // Ports without a nodePort keep the one they had at the same port number.
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if p.get("nodePort").is_none()
                    && let Some(prev) = old
                        .pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .and_then(|ops| {
                            ops.iter()
                                .find(|o| o.get("port") == p.get("port"))
                                .and_then(|o| o.get("nodePort"))
                        })
                {
                    p["nodePort"] = prev.clone();
                }
            }
        }
        if let Err(e) = allocate_node_ports(store, new, &mut claimed, &old_ports).await {
            for key in &claimed {
                release(store, key).await;
            }
            return Err(e);
        }
    } else if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
    }
    let (_, new_ports) = held(new);
    for p in old_ports.iter().filter(|p| !new_ports.contains(p)) {
        release(store, &format!("{PORT_PREFIX}{p}")).await;
    }
    Ok(())
}

/// Frees node ports `new` claimed that `old` did not hold (an update that was not written).
pub async fn release_added(store: &Arc<dyn Store>, new: &Value, old: &Value) {
    let (_, old_ports) = held(old);
    let (_, new_ports) = held(new);
    for p in new_ports.iter().filter(|p| !old_ports.contains(p)) {
        release(store, &format!("{PORT_PREFIX}{p}")).await;
    }
}

/// Frees what a deleted Service held.
pub async fn release_all(store: &Arc<dyn Store>, obj: &Value) {
    let (ip, ports) = held(obj);
    if let Some(ip) = ip {
        release(store, &format!("{IP_PREFIX}{ip}")).await;
    }
    for p in ports {
        release(store, &format!("{PORT_PREFIX}{p}")).await;
    }
}
