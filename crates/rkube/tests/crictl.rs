//! `rkube crictl` and `rkube ctr` against a real node: the whole `rkube server` (with its agent
//! and containerd) in a network namespace of the test's own (tests/harness, as services_e2e.rs runs it),
//! one busybox pod from the agent's air-gap directory, and every subcommand's output checked
//! the way the real crictl prints it. Needs root, containerd, runc, nft and the CNI plugins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use harness::Node;

const IMAGE: &str = "rkube.local/busybox:crictl";
/// Imported too but never used: `rmi` removes it.
const SPARE: &str = "rkube.local/spare:crictl";
/// `crictl ps`'s columns.
const PS_HEADER: [&str; 9] = [
    "CONTAINER",
    "IMAGE",
    "CREATED",
    "STATE",
    "NAME",
    "ATTEMPT",
    "POD ID",
    "POD",
    "NAMESPACE",
];

/// The node, with both images in its air-gap directory.
fn start_node() -> Node {
    let mut node = Node::new("rkube-crictl", "crictl", "warn");
    // The spare image differs in its config: the same content would be the same image, and
    // removing either tag would remove both.
    for (tag, file, env) in [
        (IMAGE, "busybox.tar", "RKUBE_IMAGE=busybox"),
        (SPARE, "spare.tar", "RKUBE_IMAGE=spare"),
    ] {
        harness::air_gap_image(node.dir.path(), tag, file, &["--env", env]);
    }
    node.start_server();
    node
}

/// `rkube crictl` on the node's runtime.
trait Crictl {
    /// `rkube crictl --data-dir <node> ARGS`, from the host's network namespace: the CRI
    /// socket is a file, reachable from anywhere.
    fn crictl(&self, args: &[&str]) -> Output;
    /// `rkube crictl ARGS` that must succeed; its stdout.
    fn crictl_ok(&self, args: &[&str]) -> String;
}

impl Crictl for Node {
    fn crictl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("crictl")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env_remove("RKUBE_DATA_DIR")
            .output()
            .unwrap()
    }

    fn crictl_ok(&self, args: &[&str]) -> String {
        let out = self.crictl(args);
        assert!(
            out.status.success(),
            "rkube crictl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Checks that `out` is a table exactly as crictl's tabwriter prints it (minwidth 20,
/// padding 3, the last column unpadded) with this header; returns its rows' cells.
fn table(out: &str, header: &[&str]) -> Vec<Vec<String>> {
    // Cells never hold three spaces in a row; padding is at least three.
    let rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "no output");
    assert_eq!(rows[0], header, "header of:\n{out}");
    for r in &rows {
        assert_eq!(r.len(), header.len(), "row {r:?} of:\n{out}");
    }
    let widths: Vec<usize> = (0..header.len() - 1)
        .map(|c| {
            let widest = rows.iter().map(|r| r[c].chars().count()).max().unwrap();
            (widest + 3).max(20)
        })
        .collect();
    let mut expected = String::new();
    for r in &rows {
        for (c, cell) in r.iter().enumerate() {
            expected.push_str(cell);
            if let Some(w) = widths.get(c) {
                expected.push_str(&" ".repeat(w - cell.chars().count()));
            }
        }
        expected.push('\n');
    }
    assert_eq!(out, expected, "not laid out as crictl's tabwriter");
    rows.into_iter().skip(1).collect()
}

fn is_short_id(s: &str) -> bool {
    s.len() == 13 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

const POD: &str = r#"{"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web", "namespace": "default"},
  "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
    "name": "main", "image": "rkube.local/busybox:crictl", "imagePullPolicy": "Never",
    "command": ["sh", "-c", "echo one; echo two; sleep 1; echo oops >&2; exec sleep 3600"]}]}}"#;

#[test]
fn crictl_shows_the_node_as_crictl_does() {
    if !harness::can_run_node(&[]) {
        common::ci::skip("needs root, containerd, runc, nft and the CNI plugins");
        return;
    }
    let node = start_node();
    let manifest = node.dir.path().join("pod.json");
    std::fs::write(&manifest, POD).unwrap();
    let out = node.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    node.eventually(90, "pod web Running", || {
        let out = node.kubectl(&["get", "pod", "web", "-o", "jsonpath={.status.phase}"]);
        (String::from_utf8_lossy(&out.stdout) == "Running").then_some(())
    });

    // ps: the running container, crictl's columns, IDs cut to 13 characters.
    let id = node.crictl_ok(&["ps", "-q", "--name", "^main$"]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "{id:?}");
    let ps = node.crictl_ok(&["ps"]);
    let rows = table(&ps, &PS_HEADER);
    let row = rows
        .iter()
        .find(|r| r[4] == "main")
        .unwrap_or_else(|| panic!("no container main in:\n{ps}"));
    assert_eq!(row[0], id[..13], "{ps}");
    assert!(row[2].ends_with(" ago"), "{ps}");
    assert_eq!(&row[3..6], ["Running", "main", "0"], "{ps}");
    assert!(is_short_id(&row[6]), "{ps}");
    assert_eq!(&row[7..], ["web", "default"], "{ps}");
    let ps_json: serde_json::Value =
        serde_json::from_str(&node.crictl_ok(&["ps", "-o", "json", "--name", "main"])).unwrap();
    let c = &ps_json["containers"][0];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["state"], "CONTAINER_RUNNING");
    assert_eq!(c["metadata"]["name"], "main");
    assert!(c["createdAt"].is_string(), "int64 as a string: {ps_json}");
    // IMAGE is the container's image as the kubelet named it: an image ID (sha256:…) is cut
    // to 13 characters, a name is shown whole.
    let image = c["image"]["image"].as_str().unwrap();
    let shown = match image.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 => &hex[..13],
        _ => image,
    };
    assert!(shown == IMAGE || image.starts_with("sha256:"), "{ps_json}");
    let ps = node.crictl_ok(&["ps", "--name", "^main$"]);
    let row = &table(&ps, &PS_HEADER)[0];
    assert_eq!(row[1], shown, "{ps}");
    let ps_yaml = node.crictl_ok(&["ps", "-o", "yaml", "--name", "main"]);
    assert!(
        ps_yaml.starts_with("containers:\n- annotations:\n"),
        "{ps_yaml}"
    );
    assert!(
        ps_yaml.contains("  state: CONTAINER_RUNNING\n"),
        "{ps_yaml}"
    );

    // pods: the sandbox with its namespace.
    let pods = node.crictl_ok(&["pods"]);
    let rows = table(
        &pods,
        &[
            "POD ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME",
        ],
    );
    let row = rows
        .iter()
        .find(|r| r[3] == "web")
        .unwrap_or_else(|| panic!("no pod web in:\n{pods}"));
    assert!(is_short_id(&row[0]), "{pods}");
    assert_eq!(
        &row[2..],
        ["Ready", "web", "default", "0", "(default)"],
        "{pods}"
    );
    let pod_id = node.crictl_ok(&["pods", "-q", "--name", "web", "--namespace", "default"]);
    assert_eq!(pod_id.trim()[..13], row[0]);
    assert_eq!(c["podSandboxId"], pod_id.trim());

    // images: both imported images, with their tags, IDs and sizes.
    let images = node.crictl_ok(&["images"]);
    let rows = table(&images, &["IMAGE", "TAG", "IMAGE ID", "SIZE"]);
    for name in ["rkube.local/busybox", "rkube.local/spare"] {
        let row = rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no image {name} in:\n{images}"));
        assert_eq!(row[1], "crictl", "{images}");
        assert!(is_short_id(&row[2]), "{images}");
        let size = row[3].trim_end_matches(char::is_alphabetic);
        assert!(
            size.parse::<f64>().is_ok() && ["B", "kB", "MB"].iter().any(|u| row[3].ends_with(u)),
            "{images}"
        );
    }

    // logs: stdout and stderr apart, --tail counting lines from the end, --timestamps.
    node.eventually(30, "the container's whole log", || {
        let out = node.crictl(&["logs", &id]);
        (String::from_utf8_lossy(&out.stderr) == "oops\n").then_some(())
    });
    let out = node.crictl(&["logs", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    let out = node.crictl(&["logs", "--tail", "2", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let out = node.crictl(&["logs", "--tail", "1", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = node.crictl_ok(&["logs", "-t", "--stream", "stdout", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, text) in lines.iter().zip(["one", "two"]) {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, text);
        // RFC3339NanoFixed: always nine fractional digits.
        let frac = ts.split_once('.').unwrap().1;
        assert!(frac[..9].bytes().all(|b| b.is_ascii_digit()), "{line}");
        assert!(matches!(&frac[9..10], "Z" | "+" | "-"), "{line}");
    }

    // inspect: Go's JSON (keys sorted: info before status) with the CRI status.
    let text = node.crictl_ok(&["inspect", &id]);
    assert!(text.starts_with("{\n  \"info\": {\n"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(v["status"]["id"], id.as_str());
    assert_eq!(v["status"]["metadata"]["name"], "main");
    assert_eq!(v["status"]["finishedAt"], "0001-01-01T00:00:00Z");
    assert!(v["info"].is_object(), "{text}");
    let quiet: serde_json::Value =
        serde_json::from_str(&node.crictl_ok(&["inspect", "-q", &id])).unwrap();
    assert!(quiet.get("info").is_none(), "{quiet}");

    // exec: the command's output, and its exit code as rkube's.
    let out = node.crictl(&["exec", &id, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = node.crictl(&["exec", &id, "cat", "/proc/1/cmdline"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sleep\u{0}3600\u{0}");
    // With -i through the runtime's stream server, which listens in the node's namespace.
    let mut child = node
        .cmd(env!("CARGO_BIN_EXE_rkube"))
        .args(["crictl", "--data-dir"])
        .arg(node.dir.path())
        .args(["exec", "-i", &id, "sh", "-c", "cat; exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // rmi: an image no container uses goes, with every tag.
    let out = node.crictl_ok(&["rmi", SPARE]);
    assert_eq!(out, format!("Deleted: {SPARE}\n"));
    let listed = node.crictl_ok(&["images"]);
    assert!(!listed.contains("rkube.local/spare"), "{listed}");
    assert!(listed.contains("rkube.local/busybox"), "{listed}");
    let out = node.crictl(&["rmi", SPARE]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such image"),
        "{out:?}"
    );

    // ctr: containerd's own tool on the agent's containerd, in k8s.io.
    if Path::new("/usr/bin/ctr").exists() {
        let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["ctr", "--data-dir"])
            .arg(node.dir.path())
            .args(["images", "ls", "-q"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let names = String::from_utf8_lossy(&out.stdout);
        assert!(names.lines().any(|l| l == IMAGE), "{names}");
    }

    // Without a running agent: a clear error, not a hang.
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["crictl", "--data-dir", "/nonexistent/rkube", "ps"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no containerd socket at /nonexistent"),
        "{out:?}"
    );
}
