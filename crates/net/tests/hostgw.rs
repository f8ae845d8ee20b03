//! host-gw routes applied in a throwaway network namespace (root only): added, changed,
//! removed when their node goes, and nobody else's route touched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use net::hostgw::{HostGw, Routes};

#[test]
fn routes_follow_the_nodes_and_leave_others_alone() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        common::ci::skip("needs root");
        return;
    }
    // Killed on drop, also when an assertion fails (it would hold the test's pipes open).
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut holder = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && ip link add eth0 type veth peer name eth1 && \
             ip addr add 10.99.0.1/24 dev eth0 && ip link set eth0 up && ip link set eth1 up && \
             ip route add 10.42.9.0/24 via 10.99.0.9 && echo ready && exec sleep 1000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = holder.stdout.take().unwrap();
    let holder = Holder(holder);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let gw = HostGw {
        node_name: "a".into(),
        netns: Some(PathBuf::from(format!("/proc/{}/ns/net", holder.0.id()))),
    };
    let routes = |pairs: &[(&str, [u8; 4])]| -> Routes {
        pairs
            .iter()
            .map(|(c, ip)| (c.to_string(), Ipv4Addr::from(*ip)))
            .collect()
    };
    let table = || {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", holder.0.id()))
            .args(["--", "ip", "route"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let two = routes(&[
        ("10.42.1.0/24", [10, 99, 0, 2]),
        ("10.42.2.0/24", [10, 99, 0, 3]),
    ]);
    gw.apply(&two).unwrap();
    assert_eq!(gw.installed().unwrap(), two);
    // A node's address changes; another node goes.
    let one = routes(&[("10.42.1.0/24", [10, 99, 0, 4])]);
    gw.apply(&one).unwrap();
    assert_eq!(gw.installed().unwrap(), one);
    let t = table();
    assert!(t.contains("10.42.1.0/24 via 10.99.0.4"), "{t}");
    assert!(!t.contains("10.42.2.0/24"), "{t}");
    // The route someone else made is still there.
    assert!(t.contains("10.42.9.0/24 via 10.99.0.9"), "{t}");
    gw.apply(&Routes::new()).unwrap();
    assert!(gw.installed().unwrap().is_empty());
}
