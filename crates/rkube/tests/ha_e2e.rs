//! A highly available control plane, as a user builds it with three commands: `rkube server
//! --cluster-init` on one machine, `rkube server --server https://FIRST:6443 --token K10...`
//! on two more. Each server runs in a network namespace of the test's own, all linked to one
//! bridge (10.99.0.1-3), with `--disable-agent` (control plane only). Checked with kubectl:
//! every server serves and sees the others' writes; the `kubernetes` Service lists all three;
//! joins with a wrong token, another CA's hash or an agent's token are refused; the server
//! holding the controller-manager lease is SIGKILLed (its etcd member dies with it) while a
//! client writes ConfigMaps through the other two: no acknowledged write is lost, another
//! server takes the lease and reconciles a new Deployment, and etcd keeps serving. The
//! failover time and the writers' longest gap are printed, never asserted. Needs root,
//! etcd (Debian's etcd-server) and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::{holder, kill_leftovers, server_binary, wait_until};

const IPS: [&str; 3] = ["10.99.0.1", "10.99.0.2", "10.99.0.3"];
const FIRST: &str = "https://10.99.0.1:6443";

/// One server: its network namespace (held by a sleeping process), data dir and process.
struct Server {
    ip: &'static str,
    dir: tempfile::TempDir,
    holder: Child,
    process: Option<Child>,
}

impl Server {
    fn netns(&self) -> String {
        format!("--net=/proc/{}/ns/net", self.holder.id())
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(self.netns()).arg("--").arg(program);
        c
    }

    /// `rkube server` in this namespace, control plane only, with `extra` flags; its output
    /// goes to files in the data dir.
    fn rkube_server(&self, data_dir: &Path, extra: &[&str]) -> Command {
        let mut c = self.cmd(&server_binary());
        c.args([
            "server",
            "--disable-agent",
            "--disable",
            "metrics-server,servicelb,local-storage,ingress",
            "--node-ip",
            self.ip,
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn,rkube=info")
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN");
        c
    }

    fn start(&mut self, extra: &[&str]) {
        let out = std::fs::File::create(self.dir.path().join("server.out")).unwrap();
        let err = std::fs::File::create(self.dir.path().join("server.err")).unwrap();
        let child = self
            .rkube_server(self.dir.path(), extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.process = Some(child);
        let ok = wait_until(Duration::from_secs(180), || {
            if let Some(Ok(Some(status))) = self.process.as_mut().map(Child::try_wait) {
                panic!("server {} exited ({status}):\n{}", self.ip, self.log_tail());
            }
            self.kubectl(&["get", "ns", "default"])
                .status
                .success()
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "server {} not serving:\n{}",
            self.ip,
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let err = std::fs::read_to_string(self.dir.path().join("server.err")).unwrap_or_default();
        let lines: Vec<&str> = err.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().unwrap().id()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig.yaml"))
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} on {}: {}",
            self.ip,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn get(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.kubectl(args).stdout)
            .trim()
            .to_string()
    }

    /// A join that must fail: its error output.
    fn refused_join(&self, token: &str) -> String {
        let dir = tempfile::Builder::new()
            .prefix("rkube-ha-refused")
            .tempdir_in("/tmp")
            .unwrap();
        let mut child = self
            .rkube_server(dir.path(), &["--server", FIRST, "--token", token])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exited = wait_until(Duration::from_secs(60), || child.try_wait().unwrap());
        if exited.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "a bad join was not refused");
        assert!(
            !dir.path().join("db/etcd/member").exists(),
            "a refused join started an etcd member"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let stopped = wait_until(Duration::from_secs(20), || p.try_wait().ok().flatten());
            if stopped.is_none() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
        kill_leftovers(self.dir.path());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The switch namespace's holder, ended with the test.
struct Switch(Child);

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether any process still runs etcd from `dir`.
fn etcd_running(dir: &Path) -> bool {
    let needle = format!("--data-dir={}", dir.join("db/etcd").display());
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmd).contains(&needle)
    })
}

/// The lab: a switch namespace with bridge `lab0`, and three server namespaces on it.
fn lab() -> (Switch, Vec<Server>) {
    let switch = holder(
        "ip link add lab0 type bridge && ip link set lab0 up && echo ready && exec sleep 1000000",
    );
    let servers = IPS
        .iter()
        .enumerate()
        .map(|(n, ip)| {
            let holder = holder("ip link set lo up && echo ready && exec sleep 1000000");
            let script = format!(
                "ip link add port{n} type veth peer name port{n}-peer && \
                 ip link set port{n} master lab0 && ip link set port{n} up && \
                 ip link set port{n}-peer netns {}",
                holder.id()
            );
            let out = Command::new("nsenter")
                .arg(format!("--net=/proc/{}/ns/net", switch.id()))
                .args(["--", "sh", "-c", &script])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let out = Command::new("nsenter")
                .arg(format!("--net=/proc/{}/ns/net", holder.id()))
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "ip link set port{n}-peer name eth0 && ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
                ))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            Server {
                ip,
                dir: tempfile::Builder::new()
                    .prefix("rkube-ha")
                    .tempdir_in("/tmp")
                    .unwrap(),
                holder,
                process: None,
            }
        })
        .collect();
    (Switch(switch), servers)
}

/// Writes ConfigMaps `<prefix>-<n>` through `server` until `stop`: the names acknowledged,
/// and the longest time between two acknowledged writes.
fn writer(server: &Server, prefix: &str, stop: &AtomicBool) -> (Vec<String>, Duration) {
    let mut acked = Vec::new();
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{prefix}-{n}");
        n += 1;
        let out = server.kubectl(&["create", "configmap", &name, "--from-literal=n=1"]);
        if out.status.success() {
            acked.push(name);
            longest = longest.max(last.elapsed());
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    (acked, longest)
}

#[test]
fn three_servers_survive_losing_the_leader() {
    if !harness::root_with(&["/usr/bin/etcd", "/usr/bin/unshare", "/usr/bin/nsenter"])
        || Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_err()
    {
        common::ci::skip("needs root, etcd (Debian's etcd-server) and kubectl");
        return;
    }
    let (_switch, mut servers) = lab();

    // The first server makes the etcd cluster and the server token.
    let started = Instant::now();
    servers[0].start(&["--cluster-init"]);
    let first_up = started.elapsed();
    let token_file = servers[0].dir.path().join("token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("K10"), "{token}");
    // The member answers only TLS clients with the etcd CA's certificates, on loopback too:
    // plain HTTP gets no etcd answer, and HTTPS without a client certificate is refused.
    let plain = servers[0]
        .cmd("curl")
        .args(["-sS", "--max-time", "5", "http://127.0.0.1:2379/version"])
        .output()
        .unwrap();
    let ca = servers[0].dir.path().join("tls/etcd/server-ca.crt");
    let anonymous = servers[0]
        .cmd("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(&ca)
        .arg("https://127.0.0.1:2379/version")
        .output()
        .unwrap();
    for out in [&plain, &anonymous] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("etcdserver"), "etcd answered: {out:?}");
    }
    assert!(ca.exists(), "no etcd CA at {}", ca.display());

    // Refused joins, before anything joins: a wrong secret, another CA, an agent's token.
    let (hash_part, bootstrap) = token.split_once("::").unwrap();
    let id = bootstrap.split('.').next().unwrap();
    let err = servers[2].refused_join(&format!("{hash_part}::{id}.0000000000000000"));
    assert!(err.contains("refused the token"), "{err}");
    let other_ca = format!("K10{}::{bootstrap}", "ab".repeat(32));
    let err = servers[2].refused_join(&other_ca);
    assert!(err.contains("refusing to join"), "{err}");
    let out = servers[0]
        .cmd(&server_binary())
        .args(["token", "create", "--kubeconfig"])
        .arg(servers[0].dir.path().join("kubeconfig.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let agent_token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = servers[2].refused_join(&agent_token);
    assert!(err.contains("not a server token"), "{err}");

    // Two more servers join, one after the other (etcd takes one learner at a time).
    let mut join_times = Vec::new();
    for s in &mut servers[1..] {
        let t = Instant::now();
        s.start(&["--server", FIRST, "--token", &token]);
        join_times.push(t.elapsed());
    }

    // Every server serves, and sees what was written through the others.
    for (i, s) in servers.iter().enumerate() {
        s.ok(&[
            "create",
            "configmap",
            &format!("via-{i}"),
            "--from-literal=a=b",
        ]);
        s.ok(&["get", "nodes"]);
    }
    for s in &servers {
        let names = s.ok(&["get", "cm", "-o", "name"]);
        for i in 0..3 {
            assert!(
                names.contains(&format!("configmap/via-{i}")),
                "{}: {names}",
                s.ip
            );
        }
        assert!(s.ok(&["get", "ns"]).contains("kube-system"));
    }

    // The kubernetes Service lists every live server.
    let all = IPS.join(" ");
    let endpoints = wait_until(Duration::from_secs(40), || {
        let ep = servers[2].get(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ]);
        let slice = servers[1].get(&[
            "get",
            "endpointslice",
            "kubernetes",
            "-o",
            "jsonpath={.endpoints[*].addresses[0]}",
        ]);
        (ep == all && slice == all).then_some(ep)
    });
    assert!(
        endpoints.is_some(),
        "the kubernetes endpoints never listed {all}"
    );

    // The controllers work: a Deployment gets its ReplicaSet.
    servers[0].ok(&["create", "deployment", "before", "--image=rkube.local/x:1"]);
    let rs = wait_until(Duration::from_secs(60), || {
        let out = servers[0].get(&["get", "rs", "-l", "app=before", "-o", "name"]);
        (!out.is_empty()).then_some(())
    });
    assert!(rs.is_some(), "no ReplicaSet for the first Deployment");

    // Who leads the controllers: the lease's holder is `<host>_<pid>`.
    let holder_of = |s: &Server| {
        s.get(&[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let leader_identity = holder_of(&servers[0]);
    let leader = servers
        .iter()
        .position(|s| leader_identity.ends_with(&format!("_{}", s.pid())))
        .unwrap_or_else(|| panic!("no server holds the lease {leader_identity:?}"));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    println!(
        "controller-manager leader: server {} ({})",
        leader + 1,
        IPS[leader]
    );

    // Clients write through the two survivors, the leader dies, the writes go on.
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, longest, failover, new_leader) = std::thread::scope(|scope| {
        // The writers stop however this block ends (a failed step panics out of it).
        let _stop = StopOnDrop(&stop);
        let writers: Vec<_> = survivors
            .iter()
            .map(|&i| {
                let s = &servers[i];
                let stop = stop.clone();
                scope.spawn(move || writer(s, &format!("w{i}"), &stop))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        let killed = Instant::now();
        // The whole server at once, as a machine dies; its etcd member goes with it.
        let pid = servers[leader].pid();
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let dead_dir = servers[leader].dir.path().to_path_buf();
        let survivor = &servers[survivors[0]];
        // A client retries: the write may time out while etcd elects a new leader.
        let created = wait_until(Duration::from_secs(60), || {
            let out =
                survivor.kubectl(&["create", "deployment", "after", "--image=rkube.local/x:1"]);
            let exists = String::from_utf8_lossy(&out.stderr).contains("AlreadyExists");
            (out.status.success() || exists).then_some(())
        });
        assert!(
            created.is_some(),
            "no write through {} after the kill",
            survivor.ip
        );
        let reconciled = wait_until(Duration::from_secs(120), || {
            let out = survivor.get(&["get", "rs", "-l", "app=after", "-o", "name"]);
            (!out.is_empty()).then(|| killed.elapsed())
        });
        let etcd_gone = wait_until(Duration::from_secs(10), || {
            (!etcd_running(&dead_dir)).then_some(())
        });
        // A few seconds of writes after the takeover too.
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        let mut acked = BTreeSet::new();
        let mut longest = Duration::ZERO;
        for w in writers {
            let (names, gap) = w.join().unwrap();
            acked.extend(names);
            longest = longest.max(gap);
        }
        assert!(
            etcd_gone.is_some(),
            "the killed server's etcd member outlived it"
        );
        let failover = reconciled.expect("no ReplicaSet for the Deployment created after the kill");
        (acked, longest, failover, holder_of(survivor))
    });
    servers[leader].kill();

    // Every acknowledged write is there, read through each survivor.
    for &i in &survivors {
        let names: BTreeSet<String> = servers[i]
            .ok(&["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"])
            .split_whitespace()
            .map(String::from)
            .collect();
        let lost: Vec<&String> = acked.difference(&names).collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    }
    assert!(
        acked.len() > 10,
        "the writers wrote too little: {}",
        acked.len()
    );
    assert!(
        survivors
            .iter()
            .any(|&i| new_leader.ends_with(&format!("_{}", servers[i].pid()))),
        "the lease went to {new_leader:?}, not a survivor"
    );
    // The two remaining members keep a quorum: both survivors still write.
    for &i in &survivors {
        servers[i].ok(&[
            "create",
            "configmap",
            &format!("after-{i}"),
            "--from-literal=a=b",
        ]);
    }
    // The dead server's lease runs out and its address leaves the endpoints.
    let remaining = survivors
        .iter()
        .map(|&i| IPS[i])
        .collect::<Vec<_>>()
        .join(" ");
    let shrunk = wait_until(Duration::from_secs(40), || {
        let ep = servers[survivors[0]].get(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ]);
        (ep == remaining).then_some(())
    });
    assert!(
        shrunk.is_some(),
        "the dead server stayed in the kubernetes endpoints"
    );

    println!("first server (--cluster-init) serving after {first_up:.1?}");
    for (n, t) in join_times.iter().enumerate() {
        println!(
            "server {} joined (learner, promoted, API serving) in {t:.1?}",
            n + 2
        );
    }
    println!(
        "failover: SIGKILL of the leader to the new leader's first reconcile (a Deployment's ReplicaSet): {failover:.1?}"
    );
    println!(
        "writes through the survivors: {} acknowledged, none lost; longest gap between acknowledged writes: {longest:.1?}",
        acked.len()
    );
}
