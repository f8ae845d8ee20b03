//! A highly available control plane, as a user builds it with three commands: `rkube server
//! --cluster-init` on one machine, `rkube server --server https://FIRST:6443 --token
//! K10...` on two more. Each server runs in a network namespace of the test's own, all
//! linked to one bridge (10.99.0.1-3), with `--disable-agent` (control plane only). Checked
//! with kubectl: every server serves and sees the others' writes; the `kubernetes` Service
//! lists all three; the second server joins as soon as the first's banner names its token
//! (waiting out the first's RBAC still applying); joins with a wrong token, another CA's
//! hash or an agent's token are refused, at once; the server holding the controller-manager
//! lease is SIGKILLed (its etcd member dies with it) while a client writes ConfigMaps
//! through the other two: no acknowledged write is lost, another server takes the lease and
//! reconciles a new Deployment, and etcd keeps serving. The failover time and the writers'
//! longest gap are printed, never asserted. Where a node can run (containerd, runc, nft,
//! the CNI bridge plugin), an `rkube agent --server https://LEADER:6443 --token ...` joins
//! from a fourth namespace (10.99.0.4) before the kill: its load balancer (127.0.0.1:6444)
//! learns all three servers from the `kubernetes` EndpointSlice and keeps them in its data
//! dir; after the kill, kubectl through that port still works and the node's Lease is still
//! renewed; restarted while its `--server` is still dead, the agent reaches the survivors
//! through the servers it kept. Needs root, etcd (Debian's etcd-server) and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use harness::ha_lab::{FIRST, IPS, Server, attach, etcd_running, kubeconfig_for, lab};
use harness::{server_binary, wait_until};
use k8s_openapi::jiff::Timestamp;

/// The agent's node: name and address (bridge port 3).
const AGENT: &str = "ha-agent";
const AGENT_IP: &str = "10.99.0.4";
/// Where the agent's load balancer listens in its namespace (k3s' default port).
const LB_URL: &str = "https://127.0.0.1:6444";

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `rkube agent --server https://SERVER_IP:6443 --token TOKEN` as node [`AGENT`] in the
/// namespace of `holder`; its log goes to `agent.err` in its data dir.
fn spawn_agent(holder: &Child, dir: &Path, server_ip: &str, token: &str) -> Child {
    let server = format!("https://{server_ip}:6443");
    harness::spawn_rkube_in(
        holder,
        dir,
        &[
            "agent",
            "--server",
            &server,
            "--token",
            token,
            "--node-name",
            AGENT,
            "--node-ip",
            AGENT_IP,
        ],
        "warn,rkube::loadbalancer=info",
        "agent.err",
    )
}

/// The agent's log, its last lines.
fn agent_log(agent: &harness::Agent) -> String {
    let err = std::fs::read_to_string(agent.dir.path().join("agent.err")).unwrap_or_default();
    let lines: Vec<&str> = err.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// kubectl in the agent's namespace through its load balancer (`kubeconfig`: the admin's,
/// pointed at [`LB_URL`]).
fn kubectl_via_lb(agent: &harness::Agent, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", agent.holder.id()))
        .args(["--", "kubectl", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--request-timeout", "10s"])
        .args(args)
        .output()
        .unwrap()
}

/// The servers the agent's load balancer keeps in its data dir.
fn balanced_servers(agent: &harness::Agent) -> BTreeSet<String> {
    let path = agent
        .dir
        .path()
        .join("agent/etc/rkube-agent-load-balancer.json");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["ServerAddresses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// Waits until the agent's node Lease, read through `server`, was renewed after `after`:
/// when it was.
fn lease_renewed_after(server: &Server, after: SystemTime, secs: u64) -> Option<Timestamp> {
    let after = Timestamp::try_from(after).unwrap();
    wait_until(Duration::from_secs(secs), || {
        let renewed: Timestamp = server
            .get(&[
                "get",
                "lease",
                "-n",
                "kube-node-lease",
                AGENT,
                "-o",
                "jsonpath={.spec.renewTime}",
            ])
            .parse()
            .ok()?;
        (renewed > after).then_some(renewed)
    })
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
    let with_agent = harness::can_run_node(&[]);
    if !with_agent {
        common::ci::skip("the agent's part needs containerd, runc, nft and the CNI bridge plugin");
    }
    let (switch, mut servers) = lab();

    // The first server makes the etcd cluster and the server token.
    let started = Instant::now();
    servers[0].start(&["--cluster-init"]);
    let first_up = started.elapsed();
    // Its banner names the token file once the join bundle is published.
    let banner = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(servers[0].dir.path().join("server.out"))
            .ok()
            .filter(|out| out.contains("server token (joins servers"))
    });
    assert!(banner.is_some(), "no server token banner");
    let token_file = servers[0].dir.path().join("token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("K10"), "{token}");

    // The second server joins right away, as a script does: while the first's RBAC for the
    // server token is still applying, the join waits for it (a 403) instead of failing.
    let mut join_times = Vec::new();
    let t = Instant::now();
    servers[1].start(&["--server", FIRST, "--token", &token]);
    join_times.push(t.elapsed());
    let second_waited = std::fs::read_to_string(servers[1].dir.path().join("server.err"))
        .unwrap_or_default()
        .contains("waiting for the first server to publish its join bundle");
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

    // Refused joins: a wrong secret, another CA, an agent's token. At once: only a first
    // server still starting is waited for (up to a minute), not a token that cannot work.
    let refused_within = Duration::from_secs(20);
    let refused = |token: &str| {
        let t = Instant::now();
        let err = servers[2].refused_join(token);
        assert!(
            t.elapsed() < refused_within,
            "refused after {:.1?}: {err}",
            t.elapsed()
        );
        err
    };
    let (hash_part, bootstrap) = token.split_once("::").unwrap();
    let id = bootstrap.split('.').next().unwrap();
    let err = refused(&format!("{hash_part}::{id}.0000000000000000"));
    assert!(err.contains("refused the token"), "{err}");
    let other_ca = format!("K10{}::{bootstrap}", "ab".repeat(32));
    let err = refused(&other_ca);
    assert!(err.contains("refusing to join"), "{err}");
    let out = servers[0]
        .cmd(&server_binary())
        .args(["token", "create", "--kubeconfig"])
        .arg(servers[0].dir.path().join("kubeconfig.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let agent_token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = refused(&agent_token);
    assert!(err.contains("not a server token"), "{err}");

    // The third server joins (etcd takes one learner at a time).
    let t = Instant::now();
    servers[2].start(&["--server", FIRST, "--token", &token]);
    join_times.push(t.elapsed());

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

    // An agent joins through the server about to die, as a user points it at one server.
    // (Declared after the servers: it stops first.)
    let via_lb = servers[0].dir.path().join("kubeconfig-via-lb.yaml");
    kubeconfig_for(
        &servers[0].dir.path().join("kubeconfig.yaml"),
        &via_lb,
        LB_URL,
    );
    let mut agent = with_agent.then(|| {
        let dir = tempfile::Builder::new()
            .prefix("rkube-ha-agent")
            .tempdir_in("/tmp")
            .unwrap();
        let holder = attach(&switch.0, 3, AGENT_IP);
        let process = spawn_agent(&holder, dir.path(), IPS[leader], &agent_token);
        harness::Agent {
            dir,
            holder,
            process,
        }
    });
    if let Some(a) = &agent {
        let ready = wait_until(Duration::from_secs(120), || {
            let status = servers[0].get(&[
                "get",
                "node",
                AGENT,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ]);
            (status == "True").then_some(())
        });
        assert!(
            ready.is_some(),
            "the agent's node never got Ready:\n{}",
            agent_log(a)
        );
        // Its load balancer learned every server from the EndpointSlice, and kept them.
        let all: BTreeSet<String> = IPS.iter().map(|ip| format!("{ip}:6443")).collect();
        let learned = wait_until(Duration::from_secs(60), || {
            (balanced_servers(a) == all).then_some(())
        });
        assert!(
            learned.is_some(),
            "the load balancer knows {:?}, not the three servers:\n{}",
            balanced_servers(a),
            agent_log(a)
        );
        let out = kubectl_via_lb(a, &via_lb, &["get", "node", AGENT, "-o", "name"]);
        assert!(
            out.status.success(),
            "kubectl through the load balancer: {out:?}"
        );
    }

    // Clients write through the two survivors, the leader dies, the writes go on.
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, longest, failover, new_leader, killed_at) = std::thread::scope(|scope| {
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
        let killed_at = SystemTime::now();
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
        (acked, longest, failover, holder_of(survivor), killed_at)
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

    // The agent's components failed over: kubectl through its load balancer works, and its
    // kubelet renews the node's Lease through a survivor.
    let survivor = &servers[survivors[0]];
    let mut agent_failover = None;
    if let Some(a) = &mut agent {
        let through = wait_until(Duration::from_secs(60), || {
            let out = kubectl_via_lb(a, &via_lb, &["get", "node", AGENT, "-o", "name"]);
            out.status.success().then_some(())
        });
        assert!(
            through.is_some(),
            "kubectl through the load balancer failed after the kill:\n{}",
            agent_log(a)
        );
        // Strictly after the kill, and not one renewal in flight at that moment.
        let renewed = lease_renewed_after(survivor, killed_at + Duration::from_secs(1), 60);
        let renewed = renewed.unwrap_or_else(|| {
            panic!(
                "the agent's Lease was not renewed after the kill:\n{}",
                agent_log(a)
            )
        });
        agent_failover = Some(renewed.duration_since(Timestamp::try_from(killed_at).unwrap()));
        // Restarted while its --server is still dead, it reaches the survivors through the
        // servers it kept (no dial to --server is needed: the node has its certificate).
        let _ = Command::new("kill")
            .args(["-INT", &a.process.id().to_string()])
            .status();
        if wait_until(Duration::from_secs(20), || a.process.try_wait().unwrap()).is_none() {
            let _ = a.process.kill();
            let _ = a.process.wait();
        }
        let restarted = SystemTime::now();
        a.process = spawn_agent(&a.holder, a.dir.path(), IPS[leader], &agent_token);
        assert!(
            lease_renewed_after(survivor, restarted, 90).is_some(),
            "the restarted agent did not renew its Lease:\n{}",
            agent_log(a)
        );
        let out = kubectl_via_lb(a, &via_lb, &["get", "node", AGENT, "-o", "name"]);
        assert!(
            out.status.success(),
            "kubectl through the restarted load balancer: {out:?}"
        );
    }

    println!("first server (--cluster-init) serving after {first_up:.1?}");
    for (n, t) in join_times.iter().enumerate() {
        println!(
            "server {} joined (learner, promoted, API serving) in {t:.1?}",
            n + 2
        );
    }
    println!(
        "server 2, started right after the first's banner, waited for its join bundle: {}",
        if second_waited {
            "yes"
        } else {
            "no (already readable)"
        }
    );
    println!(
        "failover: SIGKILL of the leader to the new leader's first reconcile (a Deployment's ReplicaSet): {failover:.1?}"
    );
    println!(
        "writes through the survivors: {} acknowledged, none lost; longest gap between acknowledged writes: {longest:.1?}",
        acked.len()
    );
    if let Some(d) = agent_failover {
        println!(
            "agent through its load balancer: its Lease renewed via a survivor after the kill (latest renewal seen: +{:.1} s)",
            d.as_secs_f64()
        );
    }
}
