//! CRI messages as Go's `protojson` with `EmitDefaultValues` writes them (what crictl prints
//! for `-o json`): lowerCamelCase names in field order, 64-bit integers as strings, enums by
//! name, zero values, empty lists and maps present, unset messages left out, map keys
//! sorted. Written per message (not through serde) so that each field's proto type is
//! explicit and checked against the generated structs by the compiler.

use std::collections::HashMap;

use kubelet::cri::api;
use serde_json::{Map, Value};

/// An object built field by field, in the order the fields are added.
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Obj(Map::new())
    }

    fn put(mut self, k: &str, v: Value) -> Self {
        self.0.insert(k.to_owned(), v);
        self
    }

    /// A message field: present only when set.
    fn msg<T>(mut self, k: &str, v: Option<&T>, f: fn(&T) -> Value) -> Self {
        if let Some(v) = v {
            self.0.insert(k.to_owned(), f(v));
        }
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// int64/uint64 are JSON strings in proto3's JSON mapping.
fn i64s(v: i64) -> Value {
    Value::String(v.to_string())
}

fn u64s(v: u64) -> Value {
    Value::String(v.to_string())
}

fn n<T: Into<serde_json::Number>>(v: T) -> Value {
    Value::Number(v.into())
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|x| s(x)).collect())
}

fn list<T>(v: &[T], f: fn(&T) -> Value) -> Value {
    Value::Array(v.iter().map(f).collect())
}

fn map(m: &HashMap<String, String>) -> Value {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    Value::Object(keys.into_iter().map(|k| (k.clone(), s(&m[k]))).collect())
}

/// An enum by its proto name; a value the proto does not know stays a number.
fn enumeration(v: i32, name: Option<&'static str>) -> Value {
    name.map_or_else(|| n(v), s)
}

pub fn container_state(v: i32) -> Value {
    enumeration(
        v,
        api::ContainerState::try_from(v)
            .ok()
            .map(|e| e.as_str_name()),
    )
}

fn sandbox_state(v: i32) -> Value {
    enumeration(
        v,
        api::PodSandboxState::try_from(v)
            .ok()
            .map(|e| e.as_str_name()),
    )
}

fn propagation(v: i32) -> Value {
    enumeration(
        v,
        api::MountPropagation::try_from(v)
            .ok()
            .map(|e| e.as_str_name()),
    )
}

fn container_metadata(m: &api::ContainerMetadata) -> Value {
    Obj::new()
        .put("name", s(&m.name))
        .put("attempt", n(m.attempt))
        .done()
}

fn sandbox_metadata(m: &api::PodSandboxMetadata) -> Value {
    Obj::new()
        .put("name", s(&m.name))
        .put("uid", s(&m.uid))
        .put("namespace", s(&m.namespace))
        .put("attempt", n(m.attempt))
        .done()
}

fn image_spec(i: &api::ImageSpec) -> Value {
    Obj::new()
        .put("image", s(&i.image))
        .put("annotations", map(&i.annotations))
        .put("userSpecifiedImage", s(&i.user_specified_image))
        .put("runtimeHandler", s(&i.runtime_handler))
        .done()
}

pub fn container(c: &api::Container) -> Value {
    Obj::new()
        .put("id", s(&c.id))
        .put("podSandboxId", s(&c.pod_sandbox_id))
        .msg("metadata", c.metadata.as_ref(), container_metadata)
        .msg("image", c.image.as_ref(), image_spec)
        .put("imageRef", s(&c.image_ref))
        .put("state", container_state(c.state))
        .put("createdAt", i64s(c.created_at))
        .put("labels", map(&c.labels))
        .put("annotations", map(&c.annotations))
        .put("imageId", s(&c.image_id))
        .done()
}

pub fn sandbox(p: &api::PodSandbox) -> Value {
    Obj::new()
        .put("id", s(&p.id))
        .msg("metadata", p.metadata.as_ref(), sandbox_metadata)
        .put("state", sandbox_state(p.state))
        .put("createdAt", i64s(p.created_at))
        .put("labels", map(&p.labels))
        .put("annotations", map(&p.annotations))
        .put("runtimeHandler", s(&p.runtime_handler))
        .done()
}

fn int64_value(v: &api::Int64Value) -> Value {
    Obj::new().put("value", i64s(v.value)).done()
}

pub fn image(i: &api::Image) -> Value {
    Obj::new()
        .put("id", s(&i.id))
        .put("repoTags", strings(&i.repo_tags))
        .put("repoDigests", strings(&i.repo_digests))
        .put("size", u64s(i.size))
        .msg("uid", i.uid.as_ref(), int64_value)
        .put("username", s(&i.username))
        .msg("spec", i.spec.as_ref(), image_spec)
        .put("pinned", Value::Bool(i.pinned))
        .done()
}

fn id_mapping(m: &api::IdMapping) -> Value {
    Obj::new()
        .put("hostId", n(m.host_id))
        .put("containerId", n(m.container_id))
        .put("length", n(m.length))
        .done()
}

fn mount(m: &api::Mount) -> Value {
    Obj::new()
        .put("containerPath", s(&m.container_path))
        .put("hostPath", s(&m.host_path))
        .put("readonly", Value::Bool(m.readonly))
        .put("selinuxRelabel", Value::Bool(m.selinux_relabel))
        .put("propagation", propagation(m.propagation))
        .put("uidMappings", list(&m.uid_mappings, id_mapping))
        .put("gidMappings", list(&m.gid_mappings, id_mapping))
        .put("recursiveReadOnly", Value::Bool(m.recursive_read_only))
        .msg("image", m.image.as_ref(), image_spec)
        .done()
}

fn hugepage_limit(h: &api::HugepageLimit) -> Value {
    Obj::new()
        .put("pageSize", s(&h.page_size))
        .put("limit", u64s(h.limit))
        .done()
}

fn linux_resources(r: &api::LinuxContainerResources) -> Value {
    Obj::new()
        .put("cpuPeriod", i64s(r.cpu_period))
        .put("cpuQuota", i64s(r.cpu_quota))
        .put("cpuShares", i64s(r.cpu_shares))
        .put("memoryLimitInBytes", i64s(r.memory_limit_in_bytes))
        .put("oomScoreAdj", i64s(r.oom_score_adj))
        .put("cpusetCpus", s(&r.cpuset_cpus))
        .put("cpusetMems", s(&r.cpuset_mems))
        .put("hugepageLimits", list(&r.hugepage_limits, hugepage_limit))
        .put("unified", map(&r.unified))
        .put("memorySwapLimitInBytes", i64s(r.memory_swap_limit_in_bytes))
        .done()
}

fn cpu_affinity(a: &api::WindowsCpuGroupAffinity) -> Value {
    Obj::new()
        .put("cpuMask", u64s(a.cpu_mask))
        .put("cpuGroup", n(a.cpu_group))
        .done()
}

fn windows_resources(r: &api::WindowsContainerResources) -> Value {
    Obj::new()
        .put("cpuShares", i64s(r.cpu_shares))
        .put("cpuCount", i64s(r.cpu_count))
        .put("cpuMaximum", i64s(r.cpu_maximum))
        .put("memoryLimitInBytes", i64s(r.memory_limit_in_bytes))
        .put("rootfsSizeInBytes", i64s(r.rootfs_size_in_bytes))
        .put("affinityCpus", list(&r.affinity_cpus, cpu_affinity))
        .done()
}

fn container_resources(r: &api::ContainerResources) -> Value {
    Obj::new()
        .msg("linux", r.linux.as_ref(), linux_resources)
        .msg("windows", r.windows.as_ref(), windows_resources)
        .done()
}

fn linux_user(u: &api::LinuxContainerUser) -> Value {
    Obj::new()
        .put("uid", i64s(u.uid))
        .put("gid", i64s(u.gid))
        .put(
            "supplementalGroups",
            Value::Array(u.supplemental_groups.iter().map(|g| i64s(*g)).collect()),
        )
        .done()
}

fn container_user(u: &api::ContainerUser) -> Value {
    Obj::new().msg("linux", u.linux.as_ref(), linux_user).done()
}

/// The message fields of `ContainerStatus`, which crictl's inspect shows as `null` when unset.
pub const CONTAINER_STATUS_MESSAGES: [&str; 4] = ["metadata", "image", "resources", "user"];

pub fn container_status(c: &api::ContainerStatus) -> Value {
    Obj::new()
        .put("id", s(&c.id))
        .msg("metadata", c.metadata.as_ref(), container_metadata)
        .put("state", container_state(c.state))
        .put("createdAt", i64s(c.created_at))
        .put("startedAt", i64s(c.started_at))
        .put("finishedAt", i64s(c.finished_at))
        .put("exitCode", n(c.exit_code))
        .msg("image", c.image.as_ref(), image_spec)
        .put("imageRef", s(&c.image_ref))
        .put("reason", s(&c.reason))
        .put("message", s(&c.message))
        .put("labels", map(&c.labels))
        .put("annotations", map(&c.annotations))
        .put("mounts", list(&c.mounts, mount))
        .put("logPath", s(&c.log_path))
        .msg("resources", c.resources.as_ref(), container_resources)
        .put("imageId", s(&c.image_id))
        .msg("user", c.user.as_ref(), container_user)
        .done()
}

/// `ListContainersResponse`, `ListPodSandboxResponse`, `ListImagesResponse`.
pub fn list_response(field: &str, items: Vec<Value>) -> Value {
    Obj::new().put(field, Value::Array(items)).done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_in_protojson() {
        let c = api::Container {
            id: "c1".into(),
            pod_sandbox_id: "p1".into(),
            metadata: Some(api::ContainerMetadata {
                name: "main".into(),
                attempt: 2,
            }),
            state: api::ContainerState::ContainerRunning as i32,
            created_at: 1_700_000_000_000_000_000,
            labels: [
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let v = container(&c);
        let text = super::super::gojson::pretty(&v, super::super::gojson::Flavor::Proto);
        let expected = r#"{
  "id": "c1",
  "podSandboxId": "p1",
  "metadata": {
    "name": "main",
    "attempt": 2
  },
  "imageRef": "",
  "state": "CONTAINER_RUNNING",
  "createdAt": "1700000000000000000",
  "labels": {
    "a": "1",
    "b": "2"
  },
  "annotations": {},
  "imageId": ""
}"#;
        assert_eq!(text, expected);
        assert_eq!(container_state(9), Value::from(9));
    }
}
