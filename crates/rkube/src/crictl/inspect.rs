//! `crictl inspect`: a container's CRI status and the runtime's verbose info. crictl builds
//! the status as protojson, swaps the three times for RFC 3339 strings, then re-encodes
//! everything with Go's encoding/json, so every object's keys come out sorted.

use anyhow::Context;
use kubelet::RuntimeClient;
use kubelet::cri::api;
use serde_json::{Map, Value};

use super::ps;
use super::{gojson, out, protojson, timefmt, yaml};

#[derive(clap::Args)]
pub struct Args {
    /// Container IDs; without any, the containers the filters select
    #[arg(value_name = "CONTAINER-ID")]
    ids: Vec<String>,
    /// Output format, One of: json|yaml|table
    #[arg(short, long)]
    output: Option<String>,
    /// Do not show verbose information
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    filters: ps::Filters,
}

pub async fn run(cri: &RuntimeClient, a: Args) -> anyhow::Result<()> {
    let mut ids = a.ids.clone();
    if ids.is_empty() {
        let opts = a.filters.to_list_options()?;
        let found = ps::list(cri, &opts).await.context("listing containers")?;
        ids = found.into_iter().map(|c| c.id).collect();
    }
    if ids.is_empty() {
        anyhow::bail!("No IDs provided or nothing found per filter");
    }
    status(cri, &ids, a.output.as_deref().unwrap_or("json"), !a.quiet)
        .await
        .context("get the status of containers")
}

/// crictl's `containerStatus` with `resourceStatus`: one object per container (an array when
/// there are several), `{"info": …, "status": …}`.
async fn status(
    cri: &RuntimeClient,
    ids: &[String],
    output: &str,
    verbose: bool,
) -> anyhow::Result<()> {
    if !matches!(output, "json" | "yaml" | "table") {
        anyhow::bail!("unsupported format: {output:?}");
    }
    let mut results = Vec::new();
    let mut table_text = String::new();
    for id in ids {
        let resp = cri
            .container_status_response(id, verbose)
            .await
            .context("get container status")?;
        let status = resp.status.unwrap_or_default();
        if output == "table" {
            table_text.push_str(&status_table(&status, &resp.info, verbose)?);
            continue;
        }
        results.push(status_object(&status, &resp.info)?);
    }
    if output == "table" {
        return out(&table_text);
    }
    // crictl keeps a single result unwrapped (its "old behavior").
    let result = match results.len() {
        1 => results.remove(0),
        _ => Value::Array(results),
    };
    match output {
        "yaml" => out(&format!("{}\n", yaml::to_yaml(&result))),
        _ => out(&format!(
            "{}\n",
            gojson::pretty(&result, gojson::Flavor::Go)
        )),
    }
}

/// crictl's `marshalContainerStatus` plus `outputStatusData` for one container.
fn status_object(
    status: &api::ContainerStatus,
    info: &std::collections::HashMap<String, String>,
) -> anyhow::Result<Value> {
    let mut s = match protojson::container_status(status) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    s.insert(
        "createdAt".into(),
        Value::String(timefmt::rfc3339_nano_local(status.created_at)),
    );
    let state = api::ContainerState::try_from(status.state).ok();
    // Started unless still created; finished once exited (or unknown after finishing).
    let started = if state == Some(api::ContainerState::ContainerCreated) {
        timefmt::GO_ZERO_TIME.to_owned()
    } else {
        timefmt::rfc3339_nano_local(status.started_at)
    };
    let finished = state == Some(api::ContainerState::ContainerExited)
        || (state == Some(api::ContainerState::ContainerUnknown) && status.finished_at > 0);
    let finished = if finished {
        timefmt::rfc3339_nano_local(status.finished_at)
    } else {
        timefmt::GO_ZERO_TIME.to_owned()
    };
    s.insert("startedAt".into(), Value::String(started));
    s.insert("finishedAt".into(), Value::String(finished));
    // crictl writes every field of the Go struct: an unset message is null.
    for field in protojson::CONTAINER_STATUS_MESSAGES {
        s.entry(field).or_insert(Value::Null);
    }
    let mut obj = Map::new();
    obj.insert("status".into(), Value::Object(s));
    for (k, v) in info {
        // A JSON object stays one; anything else is a string without its quotes.
        let value = if v.starts_with('{') {
            serde_json::from_str::<Value>(v)
                .with_context(|| format!("unmarshal status info JSON ({k})"))?
        } else {
            Value::String(v.trim_matches('"').to_owned())
        };
        obj.insert(k.clone(), value);
    }
    Ok(Value::Object(obj))
}

/// crictl's `outputContainerStatusTable`.
fn status_table(
    s: &api::ContainerStatus,
    info: &std::collections::HashMap<String, String>,
    verbose: bool,
) -> anyhow::Result<String> {
    let state = api::ContainerState::try_from(s.state).ok();
    let now = timefmt::now_nanos();
    let ago = |t: i64| format!("{} ago", timefmt::human_duration(now.saturating_sub(t)));
    let mut text = format!("ID: {}\n", s.id);
    if let Some(m) = &s.metadata {
        if !m.name.is_empty() {
            text.push_str(&format!("Name: {}\n", m.name));
        }
        if m.attempt != 0 {
            text.push_str(&format!("Attempt: {}\n", m.attempt));
        }
    }
    let state_name = match protojson::container_state(s.state) {
        Value::String(n) => n,
        other => other.to_string(),
    };
    text.push_str(&format!("State: {state_name}\n"));
    text.push_str(&format!("Created: {}\n", ago(s.created_at)));
    if state != Some(api::ContainerState::ContainerCreated) {
        text.push_str(&format!("Started: {}\n", ago(s.started_at)));
    }
    if state == Some(api::ContainerState::ContainerExited) {
        if s.finished_at > 0 {
            text.push_str(&format!("Finished: {}\n", ago(s.finished_at)));
        }
        text.push_str(&format!("Exit Code: {}\n", s.exit_code));
    }
    super::verbose_map("Labels", &s.labels, &mut text);
    super::verbose_map("Annotations", &s.annotations, &mut text);
    if verbose {
        // Go's %v of a map: `map[k:v k2:v2]`, keys sorted.
        let mut keys: Vec<&String> = info.keys().collect();
        keys.sort();
        let items: Vec<String> = keys.iter().map(|k| format!("{k}:{}", info[*k])).collect();
        text.push_str(&format!("Info: map[{}]\n", items.join(" ")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_object_is_crictls() {
        let status = api::ContainerStatus {
            id: "c1".into(),
            state: api::ContainerState::ContainerRunning as i32,
            created_at: 1_700_000_000_000_000_000,
            started_at: 1_700_000_001_000_000_000,
            exit_code: 0,
            ..Default::default()
        };
        let info = [
            (
                "info".to_owned(),
                r#"{"pid":42,"sandboxID":"p1"}"#.to_owned(),
            ),
            ("other".to_owned(), r#""quoted""#.to_owned()),
        ]
        .into_iter()
        .collect();
        let v = status_object(&status, &info).unwrap();
        assert_eq!(v["status"]["state"], "CONTAINER_RUNNING");
        assert_eq!(v["status"]["finishedAt"], timefmt::GO_ZERO_TIME);
        assert_eq!(v["status"]["metadata"], Value::Null);
        assert_eq!(v["status"]["exitCode"], 0);
        assert_eq!(v["info"]["pid"], 42);
        assert_eq!(v["other"], "quoted");
        let text = gojson::pretty(&v, gojson::Flavor::Go);
        assert!(
            text.starts_with("{\n  \"info\": {\n    \"pid\": 42,"),
            "{text}"
        );
        let status_at = text.find("\"status\"").unwrap();
        assert!(text.find("\"other\"").unwrap() < status_at, "{text}");
    }
}
