//! Running a network tool in the node's network namespace: `nsenter --net=<ns> -- program`
//! (not `ip netns exec`, which remounts /sys), or the program itself when the node's network
//! is the process's own. kube-proxy, the Service CIDR route and host-gw all program it so.

use std::path::Path;
use std::process::Command;

pub fn command(netns: Option<&Path>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display()))
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}
