//! The audit log (kube-apiserver's `--audit-policy-file` and `--audit-log-path`): an audit
//! `Policy` (audit.k8s.io/v1) picks a level per request, first matching rule wins, no match
//! is `None`; each audited request is written as `audit.k8s.io/v1` `Event` JSON lines, one
//! per stage (`RequestReceived`, `ResponseStarted` for watches and other streams,
//! `ResponseComplete`), unless the policy omits the stage. Every response carries an
//! `Audit-Id` header, audited or not, as upstream.
//!
//! Lines go through a channel to a writer thread: a request never waits on the disk.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authn::UserInfo;
use crate::request_info::RequestInfo;

/// How much of a request is recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    #[default]
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PolicyFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// A parsed audit `Policy`.
pub struct Policy {
    file: PolicyFile,
}

/// What the policy says of one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

/// `*`, an exact path, or a prefix ending in `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

impl Rule {
    fn matches(&self, user: &UserInfo, ri: &RequestInfo) -> bool {
        if !self.users.is_empty() && !has(&self.users, &user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !user.groups.iter().any(|g| has(&self.user_groups, g)) {
            return false;
        }
        if !self.verbs.is_empty() && !has(&self.verbs, &ri.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(ri);
        }
        if !self.non_resource_urls.is_empty() {
            return !ri.is_resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&ri.path, spec));
        }
        true
    }

    fn matches_resource(&self, ri: &RequestInfo) -> bool {
        if !ri.is_resource_request {
            return false;
        }
        // Cluster-scoped resources have the namespace "".
        if !self.namespaces.is_empty() && !has(&self.namespaces, &ri.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = match ri.subresource.as_str() {
            "" => ri.resource.clone(),
            sub => format!("{}/{sub}", ri.resource),
        };
        self.resources
            .iter()
            .filter(|gr| gr.group == ri.api_group)
            .any(|gr| {
                if gr.resources.is_empty() {
                    return true;
                }
                if !gr.resource_names.is_empty() && !has(&gr.resource_names, &ri.name) {
                    return false;
                }
                gr.resources.iter().any(|res| {
                    res == "*"
                        || *res == combined
                        || (!ri.subresource.is_empty()
                            && res.strip_prefix("*/") == Some(ri.subresource.as_str()))
                        || res.strip_suffix("/*") == Some(ri.resource.as_str())
                })
            })
    }
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the audit policy {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing the audit policy {}", path.display()))
    }

    /// Parses YAML or JSON.
    pub fn parse(text: &str) -> Result<Self> {
        let file: PolicyFile = serde_saphyr::from_str(text).context("not an audit Policy")?;
        if file.kind != "Policy" {
            bail!("kind {:?} is not Policy", file.kind);
        }
        if file.api_version != "audit.k8s.io/v1" {
            bail!("apiVersion {:?} is not audit.k8s.io/v1", file.api_version);
        }
        Ok(Policy { file })
    }

    /// The first matching rule's level (`None` when none matches) and stages to omit.
    pub fn decide(&self, user: &UserInfo, ri: &RequestInfo) -> Decision {
        let rule = self.file.rules.iter().find(|r| r.matches(user, ri));
        let mut omit_stages = self.file.omit_stages.clone();
        if let Some(r) = rule {
            omit_stages.extend(r.omit_stages.iter().copied());
        }
        Decision {
            level: rule.map(|r| r.level).unwrap_or_default(),
            omit_stages,
            omit_managed_fields: rule
                .and_then(|r| r.omit_managed_fields)
                .unwrap_or(self.file.omit_managed_fields),
        }
    }
}

/// The audit backend: the policy and the writer the events go to.
pub struct Auditor {
    policy: Policy,
    lines: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
}

impl Auditor {
    /// `log`: a file (appended to) or `-` for stdout. The writer thread flushes after each
    /// burst of events and ends, flushed, once the auditor is gone.
    pub fn start(policy: Policy, log: &Path) -> Result<Arc<Auditor>> {
        let out: Box<dyn Write + Send> = if log == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .with_context(|| format!("opening the audit log {}", log.display()))?,
            )
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(out);
                while let Some(line) = rx.blocking_recv() {
                    let mut result = out.write_all(&line);
                    // Whatever else is queued goes in the same write, then one flush.
                    while let Ok(line) = rx.try_recv() {
                        result = result.and_then(|_| out.write_all(&line));
                    }
                    if let Err(e) = result.and_then(|_| out.flush()) {
                        tracing::warn!(error = %e, "writing the audit log");
                    }
                }
            })
            .context("starting the audit log writer")?;
        Ok(Arc::new(Auditor { policy, lines: tx }))
    }

    fn emit(&self, event: &Value) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        if self.lines.send(line).is_err() {
            tracing::warn!("the audit log writer has stopped; event dropped");
        }
    }
}

/// The peer address of a connection, put in each request's extensions by the listener.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

tokio::task_local! {
    /// Where the request body reader leaves a copy of the body for the audit event.
    static BODY: BodySlot;
}

/// What a request sent, as read, and what its handling added to its event.
#[derive(Default)]
pub struct Captured {
    raw: Option<Bytes>,
    /// A body that is not JSON (protobuf), decoded.
    object: Option<Value>,
    /// The event's `annotations` (admission's, e.g. a ValidatingAdmissionPolicy's).
    annotations: serde_json::Map<String, Value>,
}

/// Called with every request body read: kept when the request is being audited.
pub fn capture_request_body(body: &Bytes) {
    let _ = BODY.try_with(|slot| {
        if let Ok(mut s) = slot.lock() {
            s.raw = Some(body.clone());
        }
    });
}

/// Adds an annotation to the request's audit event (when it is audited). A key already set
/// keeps its first value, as upstream's `AddAuditAnnotation`.
pub fn annotate(key: String, value: String) {
    let _ = BODY.try_with(|slot| {
        if let Ok(mut s) = slot.lock() {
            s.annotations.entry(key).or_insert(Value::String(value));
        }
    });
}

/// Called with a protobuf body once decoded: kept when the request is being audited.
pub fn capture_request_object(obj: &Value) {
    let _ = BODY.try_with(|slot| {
        if let Ok(mut s) = slot.lock() {
            s.object = Some(obj.clone());
        }
    });
}

/// Where a request's body is kept for its audit event.
pub type BodySlot = Arc<Mutex<Captured>>;

/// Runs a request's handling with its audit body slot in place (when it has one).
pub async fn capturing<F: std::future::Future>(slot: Option<BodySlot>, f: F) -> F::Output {
    match slot {
        Some(slot) => BODY.scope(slot, f).await,
        None => f.await,
    }
}

/// One request's audit record while it is served.
pub struct Audit {
    id: String,
    /// `None`: the policy says None, only the `Audit-Id` header is set.
    event: Option<Event>,
    body: Option<BodySlot>,
}

struct Event {
    auditor: Arc<Auditor>,
    decision: Decision,
    base: serde_json::Map<String, Value>,
    received: String,
    streaming: bool,
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Starts a request's audit: its ID, and when the policy audits it, the event's common
/// fields, the `RequestReceived` stage, and a slot for the body.
pub fn begin<B>(
    auditor: Option<&Arc<Auditor>>,
    user: Option<&UserInfo>,
    req: &Request<B>,
) -> Audit {
    // A client-chosen Audit-ID is kept, as upstream does.
    let id = req
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
        .unwrap_or_else(|| crate::meta::new_uid().to_string());
    let Some(auditor) = auditor else {
        return Audit {
            id,
            event: None,
            body: None,
        };
    };
    let user = user
        .cloned()
        .map(UserInfo::authenticated)
        .unwrap_or_else(UserInfo::anonymous);
    let ri = RequestInfo::new(
        req.method(),
        req.uri().path(),
        &query_map(req.uri().query()),
    );
    let decision = auditor.policy.decide(&user, &ri);
    if decision.level == Level::None {
        return Audit {
            id,
            event: None,
            body: None,
        };
    }
    let received = now();
    let mut base = serde_json::Map::new();
    base.insert("kind".into(), json!("Event"));
    base.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    base.insert("level".into(), json!(decision.level.as_str()));
    base.insert("auditID".into(), json!(id));
    base.insert("stage".into(), json!("RequestReceived"));
    base.insert(
        "requestURI".into(),
        json!(
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        ),
    );
    base.insert("verb".into(), json!(ri.verb));
    base.insert("user".into(), user.to_json());
    let mut ips: Vec<String> = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    // As upstream: X-Forwarded-For, then X-Real-Ip, then the connection's peer.
    if let Some(ip) = req
        .headers()
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|ip| !ip.is_empty() && !ips.contains(ip))
    {
        ips.push(ip);
    }
    if let Some(PeerAddr(peer)) = req.extensions().get::<PeerAddr>() {
        let ip = peer.ip().to_canonical().to_string();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    base.insert("sourceIPs".into(), json!(ips));
    if let Some(ua) = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        base.insert("userAgent".into(), json!(ua));
    }
    if ri.is_resource_request {
        let mut r = serde_json::Map::new();
        r.insert("resource".into(), json!(ri.resource));
        if !ri.namespace.is_empty() {
            r.insert("namespace".into(), json!(ri.namespace));
        }
        if !ri.name.is_empty() {
            r.insert("name".into(), json!(ri.name));
        }
        if !ri.api_group.is_empty() {
            r.insert("apiGroup".into(), json!(ri.api_group));
        }
        r.insert("apiVersion".into(), json!(ri.api_version));
        if !ri.subresource.is_empty() {
            r.insert("subresource".into(), json!(ri.subresource));
        }
        base.insert("objectRef".into(), Value::Object(r));
    }
    let streaming = ri.verb == "watch"
        || matches!(
            ri.subresource.as_str(),
            "log" | "exec" | "attach" | "portforward" | "proxy"
        );
    let event = Event {
        auditor: auditor.clone(),
        decision,
        base,
        received,
        streaming,
    };
    event.emit(Stage::RequestReceived, serde_json::Map::new());
    Audit {
        id,
        event: Some(event),
        // The body names a created object (objectRef.name) even at Metadata.
        body: Some(Arc::new(Mutex::new(Captured::default()))),
    }
}

impl Audit {
    /// The slot [`capturing`] fills, when the request is audited.
    pub fn body_slot(&self) -> Option<BodySlot> {
        self.body.clone()
    }
}

impl Event {
    fn emit(&self, stage: Stage, extra: serde_json::Map<String, Value>) {
        if self.decision.omit_stages.contains(&stage) {
            return;
        }
        let mut ev = self.base.clone();
        ev.insert("stage".into(), json!(stage.as_str()));
        for (k, v) in extra {
            ev.insert(k, v);
        }
        ev.insert(
            "requestReceivedTimestamp".into(),
            json!(self.received.clone()),
        );
        ev.insert("stageTimestamp".into(), json!(now()));
        self.auditor.emit(&Value::Object(ev));
    }

    fn strip(&self, mut obj: Value) -> Value {
        if self.decision.omit_managed_fields {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
            if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
                for i in items {
                    if let Some(m) = i.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                    }
                }
            }
        }
        obj
    }
}

/// `responseStatus`: the code, and for a `Status` body its status, message and reason.
fn response_status(code: u16, body: Option<&Value>) -> Value {
    let mut s = serde_json::Map::new();
    s.insert("metadata".into(), json!({}));
    if let Some(b) = body.filter(|b| b.get("kind").and_then(Value::as_str) == Some("Status")) {
        for k in ["status", "message", "reason", "details"] {
            if let Some(v) = b.get(k) {
                s.insert(k.into(), v.clone());
            }
        }
    }
    s.insert("code".into(), json!(code));
    Value::Object(s)
}

/// Ends a request's audit: the `Audit-Id` header, and the event's last stages (for a
/// stream, `ResponseStarted` now and `ResponseComplete` when the body is dropped).
pub async fn finish(
    audit: Audit,
    resp: http::Response<crate::handler::Body>,
) -> http::Response<crate::handler::Body> {
    let mut resp = resp;
    if let Ok(v) = http::HeaderValue::from_str(&audit.id) {
        resp.headers_mut().insert("audit-id", v);
    }
    let Some(ev) = audit.event else {
        return resp;
    };
    let code = resp.status().as_u16();
    let mut extra = serde_json::Map::new();
    let mut captured = audit
        .body
        .as_ref()
        .and_then(|b| b.lock().ok().map(|mut b| std::mem::take(&mut *b)));
    let annotations = captured
        .as_mut()
        .map(|c| std::mem::take(&mut c.annotations))
        .unwrap_or_default();
    if !annotations.is_empty() {
        extra.insert("annotations".into(), Value::Object(annotations));
    }
    let request_object = captured.and_then(|c| {
        c.object
            .or_else(|| c.raw.and_then(|b| serde_json::from_slice::<Value>(&b).ok()))
    });
    if let Some(obj) = &request_object
        && let Some(r) = ev.base.get("objectRef").and_then(Value::as_object)
    {
        // A create names its object in the body, as upstream fills it in.
        let mut r = r.clone();
        for (field, ptr) in [
            ("namespace", "/metadata/namespace"),
            ("name", "/metadata/name"),
        ] {
            if !r.contains_key(field)
                && let Some(v) = obj
                    .pointer(ptr)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
            {
                r.insert(field.into(), json!(v));
            }
        }
        extra.insert("objectRef".into(), Value::Object(r));
    }
    if ev.streaming && code < 300 {
        extra.insert("responseStatus".into(), response_status(code, None));
        ev.emit(Stage::ResponseStarted, extra.clone());
        // Completed when the stream ends (the body is dropped).
        struct Done(Event, serde_json::Map<String, Value>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0
                    .emit(Stage::ResponseComplete, std::mem::take(&mut self.1));
            }
        }
        let done = Done(ev, extra);
        let (parts, body) = resp.into_parts();
        let body = body
            .map_frame(move |f| {
                let _ = &done;
                f
            })
            .boxed();
        return http::Response::from_parts(parts, body);
    }
    let json_body = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let want_response = ev.decision.level >= Level::RequestResponse && !ev.streaming;
    let mut response_object = None;
    if json_body && (code >= 400 || want_response) {
        // A full (non-streaming) body: collecting it is immediate.
        let (parts, body) = resp.into_parts();
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        };
        response_object = serde_json::from_slice::<Value>(&bytes).ok();
        resp = http::Response::from_parts(parts, http_body_util::Full::new(bytes).boxed());
    }
    extra.insert(
        "responseStatus".into(),
        response_status(code, response_object.as_ref()),
    );
    if ev.decision.level >= Level::Request
        && let Some(obj) = request_object
    {
        extra.insert("requestObject".into(), ev.strip(obj));
    }
    if want_response && let Some(obj) = response_object {
        extra.insert("responseObject".into(), ev.strip(obj));
    }
    ev.emit(Stage::ResponseComplete, extra);
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ri(method: &str, path: &str) -> RequestInfo {
        RequestInfo::new(&method.parse().unwrap(), path, &HashMap::new())
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-proxy"]
  - level: RequestResponse
    resources: [{group: "", resources: ["pods/log", "*/status"]}]
  - level: Metadata
    resources: [{group: "", resources: ["secrets"], resourceNames: ["s1"]}]
  - level: Request
    verbs: [create]
    namespaces: [kube-system]
  - level: Metadata
    resources: [{group: apps}]
  - level: Request
    nonResourceURLs: ["/healthz*", "/version"]
  - level: Metadata
    userGroups: ["system:nodes"]
"#;

    #[test]
    fn first_matching_rule_wins() {
        let p = Policy::parse(POLICY).unwrap();
        let admin = UserInfo::new("system:admin", vec!["system:masters".into()]);
        let level = |u: &UserInfo, m, path| p.decide(u, &ri(m, path)).level;
        assert_eq!(
            level(&admin, "GET", "/api/v1/namespaces/d/pods/p/log"),
            Level::RequestResponse
        );
        assert_eq!(
            level(
                &admin,
                "PUT",
                "/apis/apps/v1/namespaces/d/deployments/x/status"
            ),
            Level::Metadata,
            "*/status is in the core group only"
        );
        assert_eq!(
            level(&admin, "PUT", "/api/v1/namespaces/d/pods/x/status"),
            Level::RequestResponse
        );
        assert_eq!(
            level(&admin, "GET", "/api/v1/namespaces/d/secrets/s1"),
            Level::Metadata
        );
        assert_eq!(
            level(&admin, "GET", "/api/v1/namespaces/d/secrets/s2"),
            Level::None
        );
        assert_eq!(
            level(&admin, "POST", "/api/v1/namespaces/kube-system/configmaps"),
            Level::Request
        );
        assert_eq!(
            level(&admin, "GET", "/apis/apps/v1/deployments"),
            Level::Metadata
        );
        assert_eq!(level(&admin, "GET", "/healthz/ready"), Level::Request);
        assert_eq!(level(&admin, "GET", "/version"), Level::Request);
        assert_eq!(level(&admin, "GET", "/metrics"), Level::None);
        let proxy = UserInfo::new("system:kube-proxy", vec![]);
        assert_eq!(level(&proxy, "GET", "/version"), Level::None);
        let node = UserInfo::new("system:node:n1", vec!["system:nodes".into()]);
        assert_eq!(level(&node, "GET", "/api/v1/nodes"), Level::Metadata);
        assert_eq!(
            p.decide(&admin, &ri("GET", "/version")).omit_stages,
            vec![Stage::RequestReceived]
        );
    }

    #[test]
    fn policies_are_checked() {
        assert!(
            Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Bogus}]")
                .is_err()
        );
        assert!(Policy::parse("apiVersion: v1\nkind: Policy\n").is_err());
        assert!(
            Policy::parse("{\"apiVersion\": \"audit.k8s.io/v1\", \"kind\": \"Policy\"}").is_ok()
        );
    }
}
