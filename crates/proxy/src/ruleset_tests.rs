#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Parse-level checks of generated rulesets, and (as root) nft's own check of the script.

use std::net::Ipv4Addr;

use super::*;
use crate::model::{Endpoint, Protocol, ServicePort, ServiceState};
use crate::script::{Previous, render};

pub fn cfg() -> RulesConfig {
    RulesConfig {
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
    }
}

pub fn port(name: &str) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::new(10, 43, 0, 5),
        port: 80,
        node_port: 0,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        affinity_timeout: None,
        external_policy_local: false,
        internal_policy_local: false,
    }
}

pub fn ep(last: u8, local: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 42, 0, last),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn elem<'a>(r: &'a Ruleset, set: &str, key: &str) -> Option<&'a str> {
    r.sets[set].elements.get(key).map(|s| s.as_str())
}

fn chain<'a>(r: &'a Ruleset, prefix: &str) -> (&'a String, &'a Chain) {
    let found: Vec<_> = r
        .chains()
        .filter(|(n, _)| n.starts_with(prefix) && n.contains('/'))
        .collect();
    assert_eq!(found.len(), 1, "chains starting with {prefix}: {found:?}");
    found[0]
}

#[test]
fn cluster_ip_dnats_evenly_to_ready_endpoints() {
    let mut e3 = ep(4, false);
    e3.ready = false;
    e3.serving = false;
    let st = ServiceState {
        port: port("web"),
        endpoints: vec![ep(2, true), ep(3, false), e3],
    };
    let r = generate(&[st], &cfg());
    let (svc, c) = chain(&r, "service-");
    assert!(svc.ends_with("-default/web/tcp/http"), "{svc}");
    assert_eq!(
        elem(&r, SERVICE_IPS, "10.43.0.5 . tcp . 80"),
        Some(format!("goto {svc}").as_str())
    );
    assert!(r.sets[CLUSTER_IPS].elements.contains_key("10.43.0.5"));
    assert_eq!(
        c.rules[0],
        "ip daddr 10.43.0.5 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
    );
    assert!(c.rules[1].starts_with("numgen random mod 2 vmap { 0 : goto endpoint-"));
    let eps: Vec<_> = r
        .chains()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("endpoint-"))
        .collect();
    assert_eq!(eps.len(), 2, "only ready endpoints get chains");
    let e = r
        .chain(
            eps.iter()
                .find(|n| n.ends_with("__10.42.0.2/8080"))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        e.rules,
        [
            "ip saddr 10.42.0.2 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.42.0.2:8080"
        ]
    );
    assert!(r.sets[NO_ENDPOINT_SERVICES].elements.is_empty());
}

#[test]
fn no_endpoints_rejects_and_has_no_service_chain() {
    let mut p = port("empty");
    p.node_port = 30080;
    let r = generate(
        &[ServiceState {
            port: p,
            endpoints: vec![],
        }],
        &cfg(),
    );
    assert_eq!(
        elem(&r, NO_ENDPOINT_SERVICES, "10.43.0.5 . tcp . 80"),
        Some("goto reject-chain")
    );
    assert_eq!(
        elem(&r, NO_ENDPOINT_NODEPORTS, "tcp . 30080"),
        Some("goto reject-chain")
    );
    assert!(r.sets[SERVICE_IPS].elements.is_empty());
    assert!(
        r.chains().map(|(n, _)| n).all(|n| !n.contains('/')),
        "{:?}",
        r.chains().map(|(n, _)| n).collect::<Vec<_>>()
    );
}

#[test]
fn client_ip_affinity_uses_per_endpoint_sets() {
    let mut p = port("sticky");
    p.affinity_timeout = Some(60);
    let r = generate(
        &[ServiceState {
            port: p,
            endpoints: vec![ep(2, true), ep(3, true)],
        }],
        &cfg(),
    );
    let aff: Vec<_> = r
        .all_sets()
        .filter(|(n, _)| n.starts_with("affinity-"))
        .collect();
    assert_eq!(aff.len(), 2);
    assert!(
        aff.iter()
            .all(|(_, s)| s.dynamic && s.decl.contains("timeout 60s"))
    );
    let (_, c) = chain(&r, "service-");
    assert!(
        c.rules[1].starts_with("ip saddr @affinity-") && c.rules[1].contains(" goto endpoint-")
    );
    assert!(c.rules[3].starts_with("numgen random mod 2"));
    let (_, e) = r
        .chains()
        .find(|(n, _)| n.starts_with("endpoint-"))
        .unwrap();
    assert!(e.rules[1].starts_with("update @affinity-") && e.rules[1].ends_with("{ ip saddr }"));
}

#[test]
fn nodeport_external_ip_and_lb_with_cluster_policy_masquerade() {
    let mut p = port("np");
    p.node_port = 30080;
    p.external_ips = vec![Ipv4Addr::new(192, 0, 2, 10)];
    p.load_balancer_ips = vec![Ipv4Addr::new(192, 0, 2, 20)];
    p.load_balancer_source_ranges = vec!["192.0.2.0/24".into()];
    let r = generate(
        &[ServiceState {
            port: p,
            endpoints: vec![ep(2, false)],
        }],
        &cfg(),
    );
    let (ext, c) = chain(&r, "external-");
    let (svc, _) = chain(&r, "service-");
    let goto_ext = format!("goto {ext}");
    assert_eq!(
        elem(&r, SERVICE_NODEPORTS, "tcp . 30080"),
        Some(goto_ext.as_str())
    );
    assert_eq!(
        elem(&r, SERVICE_IPS, "192.0.2.10 . tcp . 80"),
        Some(goto_ext.as_str())
    );
    assert_eq!(
        elem(&r, SERVICE_IPS, "192.0.2.20 . tcp . 80"),
        Some(goto_ext.as_str())
    );
    assert_eq!(
        c.rules,
        [
            "jump mark-for-masquerade".to_string(),
            format!("goto {svc}")
        ]
    );
    let (fw, f) = chain(&r, "firewall-");
    assert_eq!(
        elem(&r, FIREWALL_IPS, "192.0.2.20 . tcp . 80"),
        Some(format!("goto {fw}").as_str())
    );
    assert_eq!(f.rules, ["ip saddr != { 192.0.2.0/24 } drop"]);
}

#[test]
fn external_local_policy_keeps_source_and_drops_without_local_endpoints() {
    let mut p = port("local");
    p.node_port = 30081;
    p.external_policy_local = true;
    // Only a remote endpoint: external traffic is dropped, pods and the node still get through.
    let r = generate(
        &[ServiceState {
            port: p.clone(),
            endpoints: vec![ep(9, false)],
        }],
        &cfg(),
    );
    assert_eq!(elem(&r, NO_ENDPOINT_NODEPORTS, "tcp . 30081"), Some("drop"));
    let (_, c) = chain(&r, "external-");
    let (svc, _) = chain(&r, "service-");
    assert_eq!(
        c.rules,
        [
            format!("ip saddr 10.42.0.0/16 goto {svc}"),
            "fib saddr type local jump mark-for-masquerade".to_string(),
            format!("fib saddr type local goto {svc}"),
        ]
    );
    // A local endpoint: external traffic goes to the local chain, not masqueraded.
    let r = generate(
        &[ServiceState {
            port: p,
            endpoints: vec![ep(2, true), ep(9, false)],
        }],
        &cfg(),
    );
    let (local, l) = chain(&r, "local-");
    assert!(l.rules[0].starts_with("numgen random mod 1 vmap"));
    let (_, c) = chain(&r, "external-");
    assert_eq!(c.rules.last().unwrap(), &format!("goto {local}"));
    assert!(r.sets[NO_ENDPOINT_NODEPORTS].elements.is_empty());
}

#[test]
fn internal_local_policy_drops_without_local_endpoints() {
    let mut p = port("itp");
    p.internal_policy_local = true;
    let r = generate(
        &[ServiceState {
            port: p,
            endpoints: vec![ep(9, false)],
        }],
        &cfg(),
    );
    assert_eq!(
        elem(&r, NO_ENDPOINT_SERVICES, "10.43.0.5 . tcp . 80"),
        Some("drop")
    );
    assert!(r.chains().map(|(n, _)| n).all(|n| !n.contains('/')));
}

fn two_services(eps: Vec<Endpoint>) -> Vec<ServiceState> {
    let mut other = port("other");
    other.cluster_ip = Ipv4Addr::new(10, 43, 0, 6);
    vec![
        ServiceState {
            port: other,
            endpoints: vec![ep(7, true)],
        },
        ServiceState {
            port: port("web"),
            endpoints: eps,
        },
    ]
}

#[test]
fn fresh_script_replaces_the_table_and_declares_before_use() {
    let r = generate(&two_services(vec![ep(2, true)]), &cfg());
    let s = render("rkp", &Previous::Fresh, &r);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "add table ip rkp");
    assert_eq!(lines[1], "delete table ip rkp");
    let first = |p: &str| lines.iter().position(|l| l.starts_with(p)).unwrap();
    let last = |p: &str| lines.iter().rposition(|l| l.starts_with(p)).unwrap();
    assert!(last("add chain") < first("add rule"));
    assert!(last("add map") < first("add rule"));
    assert!(last("add rule") < first("add element"));
    assert!(
        s.contains("add chain ip rkp nat-prerouting { type nat hook prerouting priority -100 ; }")
    );
}

#[test]
fn an_endpoint_change_rewrites_only_its_service() {
    let before = generate(&two_services(vec![ep(2, true), ep(3, true)]), &cfg());
    let after = generate(&two_services(vec![ep(2, true)]), &cfg());
    assert_eq!(render("rkp", &Previous::Known(&before), &before), "");
    let s = render("rkp", &Previous::Known(&before), &after);
    let flushed: Vec<&str> = s.lines().filter(|l| l.starts_with("flush chain")).collect();
    assert_eq!(flushed.len(), 2, "{s}"); // the service chain and the gone endpoint chain
    assert!(flushed.iter().all(|l| l.contains("default/web/")), "{s}");
    let deleted: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("delete chain"))
        .collect();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].ends_with("__10.42.0.3/8080"));
    assert!(!s.contains("default/other/"), "{s}");
    assert!(!s.contains("add element"), "maps unchanged: {s}");
    // The last endpoint goes: the VIP moves from service-ips to no-endpoint-services.
    let empty = generate(&two_services(vec![]), &cfg());
    let s = render("rkp", &Previous::Known(&after), &empty);
    assert!(
        s.contains("delete element ip rkp service-ips { 10.43.0.5 . tcp . 80 }"),
        "{s}"
    );
    assert!(
        s.contains(
            "add element ip rkp no-endpoint-services { 10.43.0.5 . tcp . 80 : goto reject-chain }"
        ),
        "{s}"
    );
    let del_elem = s.find("delete element").unwrap();
    let del_chain = s.find("delete chain").unwrap();
    assert!(del_elem < del_chain, "references go before the chains: {s}");
}

#[test]
fn in_place_rebuild_flushes_known_names_and_deletes_strangers() {
    let r = generate(&two_services(vec![ep(2, true)]), &cfg());
    let mut chains: std::collections::BTreeSet<String> =
        r.chains().map(|(n, _)| n).cloned().collect();
    chains.insert("endpoint-STALE".into());
    let sets = r
        .all_sets()
        .map(|(n, s)| (n.clone(), s.kind))
        .chain([("affinity-STALE".to_string(), SetKind::Set)])
        .collect();
    let s = render("rkp", &Previous::Names { chains, sets }, &r);
    assert!(!s.contains("delete table"));
    assert!(s.contains("flush map ip rkp service-ips"));
    assert!(s.contains("flush chain ip rkp services"));
    assert!(
        s.trim_end().ends_with("delete set ip rkp affinity-STALE"),
        "{s}"
    );
    assert!(s.contains("delete chain ip rkp endpoint-STALE"));
}

/// A network namespace of our own for nft's check mode, removed on drop.
struct Netns(std::process::Child);

impl Netns {
    fn new() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0
            || std::process::Command::new("nft")
                .arg("-v")
                .output()
                .is_err()
        {
            common::ci::skip("needs root and nft");
            return None;
        }
        let child = std::process::Command::new("unshare")
            .args(["--net", "--", "sleep", "600"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        Some(Netns(child))
    }
    fn path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.0.id()).into()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn nft_accepts_every_kind_of_rule() {
    let Some(ns) = Netns::new() else { return };
    let nft = crate::nft::Nft::new(Some(ns.path()), "rkp-check");
    let mut all = two_services(vec![ep(2, true), ep(3, false)]);
    let mut p = port("everything");
    p.cluster_ip = Ipv4Addr::new(10, 43, 0, 9);
    p.protocol = Protocol::Udp;
    p.port_name = String::new();
    p.node_port = 30053;
    p.affinity_timeout = Some(10800);
    p.external_ips = vec![Ipv4Addr::new(192, 0, 2, 10)];
    p.load_balancer_ips = vec![Ipv4Addr::new(192, 0, 2, 20)];
    p.load_balancer_source_ranges = vec!["192.0.2.0/24".into(), "198.51.100.0/24".into()];
    p.external_policy_local = true;
    all.push(ServiceState {
        port: p,
        endpoints: vec![ep(4, true), ep(5, false)],
    });
    let mut s = port("sctp");
    s.protocol = Protocol::Sctp;
    s.cluster_ip = Ipv4Addr::new(10, 43, 0, 11);
    s.internal_policy_local = true;
    all.push(ServiceState {
        port: s,
        endpoints: vec![ep(6, true)],
    });
    let r = generate(&all, &cfg());
    let fresh = render(&nft.table, &Previous::Fresh, &r);
    nft.check(&fresh).await.unwrap();
    // Applied for real, then a diff on top of it, then an in-place rebuild.
    nft.apply(&fresh).await.unwrap();
    let fewer = generate(&all[1..], &cfg());
    nft.apply(&render(&nft.table, &Previous::Known(&r), &fewer))
        .await
        .unwrap();
    let o = nft.objects().await.unwrap();
    assert_eq!(o.chains, fewer.chains().map(|(n, _)| n).cloned().collect());
    let names = Previous::Names {
        chains: o.chains,
        sets: o.sets,
    };
    nft.apply(&render(&nft.table, &names, &r)).await.unwrap();
    let o = nft.objects().await.unwrap();
    assert_eq!(o.chains, r.chains().map(|(n, _)| n).cloned().collect());
    let mut want: Vec<_> = r.all_sets().map(|(n, _)| n).collect();
    want.sort();
    assert_eq!(o.sets.keys().collect::<Vec<_>>(), want);
}

#[test]
fn the_generator_reuses_the_rules_of_unchanged_services() {
    let mut g = Generator::new(cfg());
    let a = g.generate(&two_services(vec![ep(2, true), ep(3, true)]));
    let b = g.generate(&two_services(vec![ep(2, true)]));
    let other = "default/other/tcp/http";
    let web = "default/web/tcp/http";
    assert!(Arc::ptr_eq(&a.services[other], &b.services[other]));
    assert!(!Arc::ptr_eq(&a.services[web], &b.services[web]));
    assert_eq!(b, generate(&two_services(vec![ep(2, true)]), &cfg()));
}
