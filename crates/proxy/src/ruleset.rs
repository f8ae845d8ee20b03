//! The desired nftables state: Service ports + endpoints → chains, sets and maps of our one
//! table, laid out as upstream's nftables proxier does (dispatch through verdict maps, one
//! chain per service port and per endpoint), so a change touches only a few chains. Pure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{Endpoint, ServiceState};

/// Bit of the packet mark asking the postrouting chain to masquerade (upstream's default).
pub const MASQUERADE_MARK: u32 = 0x4000;

// Chains.
pub const FILTER_PREROUTING: &str = "filter-prerouting";
pub const FILTER_PREROUTING_POST_DNAT: &str = "filter-prerouting-post-dnat";
pub const FILTER_INPUT: &str = "filter-input";
pub const FILTER_OUTPUT: &str = "filter-output";
pub const FILTER_OUTPUT_POST_DNAT: &str = "filter-output-post-dnat";
pub const NAT_PREROUTING: &str = "nat-prerouting";
pub const NAT_OUTPUT: &str = "nat-output";
pub const NAT_POSTROUTING: &str = "nat-postrouting";
pub const SERVICES: &str = "services";
pub const MASQUERADING: &str = "masquerading";
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
pub const FIREWALL_CHECK: &str = "firewall-check";
pub const REJECT_CHAIN: &str = "reject-chain";

// Sets and maps.
pub const CLUSTER_IPS: &str = "cluster-ips";
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const FIREWALL_IPS: &str = "firewall-ips";

/// What the rules depend on besides the Services.
#[derive(Clone, Debug)]
pub struct RulesConfig {
    /// Pod network: traffic from elsewhere to a ClusterIP is masqueraded.
    pub cluster_cidr: String,
    /// Service network: traffic to an unallocated ClusterIP is dropped.
    pub service_cidr: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// `type … hook … priority …` for a base chain.
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    Set,
    Map,
}

impl SetKind {
    pub fn keyword(self) -> &'static str {
        match self {
            SetKind::Set => "set",
            SetKind::Map => "map",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub kind: SetKind,
    /// The body of the declaration (`type …; flags …;`).
    pub decl: String,
    /// Key → value ("" for a plain set).
    pub elements: BTreeMap<String, String>,
    /// Filled by the packet path (affinity): we never flush or diff its elements.
    pub dynamic: bool,
}

impl Set {
    fn map(decl: &str) -> Self {
        Set {
            kind: SetKind::Map,
            decl: decl.to_string(),
            elements: BTreeMap::new(),
            dynamic: false,
        }
    }
}

/// The chains, affinity sets and map elements of one service port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRules {
    pub chains: BTreeMap<String, Chain>,
    /// Its affinity sets.
    pub sets: BTreeMap<String, Set>,
    /// (map or set, key, value) in the shared dispatch maps.
    pub elements: Vec<(&'static str, String, String)>,
}

/// Everything our table should contain: the fixed chains and maps (with every service's
/// elements merged in), and each service port's own chains and sets, shared (`Arc`) with
/// the previous sync when the service did not change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub base: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, Set>,
    /// Keyed by `ServicePort::id()`.
    pub services: BTreeMap<String, Arc<ServiceRules>>,
}

impl Ruleset {
    /// Every chain: the fixed ones, then each service's.
    pub fn chains(&self) -> impl Iterator<Item = (&String, &Chain)> {
        self.base
            .iter()
            .chain(self.services.values().flat_map(|s| s.chains.iter()))
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.base
            .get(name)
            .or_else(|| self.services.values().find_map(|s| s.chains.get(name)))
    }

    /// Every set and map: the fixed ones, then the services' affinity sets.
    pub fn all_sets(&self) -> impl Iterator<Item = (&String, &Set)> {
        self.sets
            .iter()
            .chain(self.services.values().flat_map(|s| s.sets.iter()))
    }
}

/// FNV-1a, base32-encoded to 8 characters: a short tag making names distinguishable at a
/// glance (as upstream's hash prefix), without pulling in a hash crate.
fn tag(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..8)
        .map(|i| char::from(ALPHABET[((h >> (i * 5)) & 31) as usize]))
        .collect()
}

/// `TAG-name`; namespace, Service and port names only hold `[a-z0-9-]`, all valid in nft
/// identifiers, so the name stays readable.
fn tagged(name: &str) -> String {
    format!("{}-{name}", tag(name))
}

/// The names of one service port's chains and of its endpoints' chains and sets.
pub struct Names {
    pub cluster: String,
    pub local: String,
    pub external: String,
    pub firewall: String,
    id: String,
}

impl Names {
    pub fn new(st: &ServiceState) -> Self {
        let id = st.port.id();
        let base = tagged(&id);
        Names {
            cluster: format!("service-{base}"),
            local: format!("local-{base}"),
            external: format!("external-{base}"),
            firewall: format!("firewall-{base}"),
            id,
        }
    }

    pub fn endpoint(&self, ep: &Endpoint) -> String {
        format!(
            "endpoint-{}",
            tagged(&format!("{}__{}/{}", self.id, ep.ip, ep.port))
        )
    }

    /// The timeout is in the tag so a changed timeout makes a new set (nft cannot change
    /// an existing set's timeout).
    pub fn affinity(&self, ep: &Endpoint, timeout: u32) -> String {
        let name = format!("{}__{}/{}", self.id, ep.ip, ep.port);
        format!("affinity-{}-{name}", tag(&format!("{name}/{timeout}")))
    }
}

fn base(ruleset: &mut Ruleset, cfg: &RulesConfig) {
    let mut chain = |name: &str, hook: Option<&'static str>, rules: &[&str]| {
        ruleset.base.insert(
            name.to_string(),
            Chain {
                hook,
                rules: rules.iter().map(|r| r.to_string()).collect(),
            },
        );
    };
    let new = "ct state new jump";
    // Upstream checks for missing endpoints and bad ClusterIP ports in forward/input; we
    // do it in prerouting after DNAT, because a node's blackhole route for the Service CIDR
    // would otherwise swallow the packet before forward, turning a reject into a hang.
    chain(
        FILTER_PREROUTING,
        Some("type filter hook prerouting priority -110"),
        &[&format!("{new} {FIREWALL_CHECK}")],
    );
    chain(
        FILTER_PREROUTING_POST_DNAT,
        Some("type filter hook prerouting priority -90"),
        &[
            &format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
            &format!("{new} {CLUSTER_IPS_CHECK}"),
        ],
    );
    chain(
        FILTER_INPUT,
        Some("type filter hook input priority -110"),
        &[&format!("{new} {NODEPORT_ENDPOINTS_CHECK}")],
    );
    chain(
        FILTER_OUTPUT,
        Some("type filter hook output priority -110"),
        &[
            &format!("{new} {SERVICE_ENDPOINTS_CHECK}"),
            &format!("{new} {FIREWALL_CHECK}"),
        ],
    );
    chain(
        FILTER_OUTPUT_POST_DNAT,
        Some("type filter hook output priority -90"),
        &[&format!("{new} {CLUSTER_IPS_CHECK}")],
    );
    chain(
        NAT_PREROUTING,
        Some("type nat hook prerouting priority -100"),
        &[&format!("jump {SERVICES}")],
    );
    chain(
        NAT_OUTPUT,
        Some("type nat hook output priority -100"),
        &[&format!("jump {SERVICES}")],
    );
    chain(
        NAT_POSTROUTING,
        Some("type nat hook postrouting priority 100"),
        &[&format!("jump {MASQUERADING}")],
    );
    let mark = format!("{MASQUERADE_MARK:#x}");
    chain(
        MARK_FOR_MASQUERADE,
        None,
        &[&format!("meta mark set meta mark | {mark}")],
    );
    chain(
        MASQUERADING,
        None,
        &[
            &format!("meta mark & {mark} == 0 return"),
            // Clear the bit so a packet re-entering the stack (e.g. bridged) is not SNATed twice.
            &format!("meta mark set meta mark ^ {mark}"),
            "masquerade fully-random",
        ],
    );
    chain(
        SERVICES,
        None,
        &[
            &format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            &format!(
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"
            ),
        ],
    );
    chain(
        SERVICE_ENDPOINTS_CHECK,
        None,
        &[&format!(
            "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
        )],
    );
    chain(
        NODEPORT_ENDPOINTS_CHECK,
        None,
        &[&format!(
            "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
        )],
    );
    chain(
        CLUSTER_IPS_CHECK,
        None,
        &[
            // A ClusterIP on a port the Service does not have.
            &format!("ip daddr @{CLUSTER_IPS} reject"),
            // An unallocated ClusterIP must not leave the node.
            &format!("ip daddr {} drop", cfg.service_cidr),
        ],
    );
    chain(
        FIREWALL_CHECK,
        None,
        &[&format!(
            "ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"
        )],
    );
    chain(REJECT_CHAIN, None, &["reject"]);

    let vip_map = "type ipv4_addr . inet_proto . inet_service : verdict";
    let port_map = "type inet_proto . inet_service : verdict";
    ruleset.sets.insert(
        CLUSTER_IPS.into(),
        Set {
            kind: SetKind::Set,
            decl: "type ipv4_addr".into(),
            elements: BTreeMap::new(),
            dynamic: false,
        },
    );
    for (name, decl) in [
        (SERVICE_IPS, vip_map),
        (NO_ENDPOINT_SERVICES, vip_map),
        (FIREWALL_IPS, vip_map),
        (SERVICE_NODEPORTS, port_map),
        (NO_ENDPOINT_NODEPORTS, port_map),
    ] {
        ruleset.sets.insert(name.into(), Set::map(decl));
    }
}

fn element(rules: &mut ServiceRules, set: &'static str, key: String, value: String) {
    rules.elements.push((set, key, value));
}

fn push(ruleset: &mut ServiceRules, chain: &str, rule: String) {
    ruleset
        .chains
        .entry(chain.to_string())
        .or_insert_with(|| Chain {
            hook: None,
            rules: Vec::new(),
        })
        .rules
        .push(rule);
}

/// Affinity lookups, then the random pick (upstream's writeServiceToEndpointRules).
fn dispatch(
    ruleset: &mut ServiceRules,
    st: &ServiceState,
    names: &Names,
    chain: &str,
    eps: &[&Endpoint],
) {
    if let Some(timeout) = st.port.affinity_timeout {
        for ep in eps {
            push(
                ruleset,
                chain,
                format!(
                    "ip saddr @{} goto {}",
                    names.affinity(ep, timeout),
                    names.endpoint(ep)
                ),
            );
        }
    }
    let arms: Vec<String> = eps
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", names.endpoint(ep)))
        .collect();
    push(
        ruleset,
        chain,
        format!(
            "numgen random mod {} vmap {{ {} }}",
            eps.len(),
            arms.join(", ")
        ),
    );
}

fn service(ruleset: &mut ServiceRules, st: &ServiceState, cfg: &RulesConfig) {
    let p = &st.port;
    let names = Names::new(st);
    let c = st.categorize();
    let proto = p.protocol.as_str();
    let vip_key = |ip: &std::net::Ipv4Addr| format!("{ip} . {proto} . {}", p.port);

    let uses_cluster_chain = !c.cluster.is_empty() && p.uses_cluster_endpoints();
    let uses_local_chain = !c.local.is_empty() && p.uses_local_endpoints();
    let (internal_chain, has_internal) = if p.internal_policy_local {
        (&names.local, c.has_any && !c.local.is_empty())
    } else {
        (&names.cluster, c.has_any)
    };
    let (external_policy_chain, has_external) = if p.external_policy_local {
        (&names.local, c.has_any && !c.local.is_empty())
    } else {
        (&names.cluster, c.has_any)
    };
    let uses_external_chain = c.has_any && p.externally_accessible();
    let reject = format!("goto {REJECT_CHAIN}");
    // No endpoints at all: reject. Endpoints, but none for this traffic's Local policy: drop.
    let internal_verdict = if c.has_any {
        "drop".into()
    } else {
        reject.clone()
    };
    let external_verdict = internal_verdict.clone();

    element(
        ruleset,
        CLUSTER_IPS,
        p.cluster_ip.to_string(),
        String::new(),
    );
    if has_internal {
        element(
            ruleset,
            SERVICE_IPS,
            vip_key(&p.cluster_ip),
            format!("goto {internal_chain}"),
        );
    } else {
        element(
            ruleset,
            NO_ENDPOINT_SERVICES,
            vip_key(&p.cluster_ip),
            internal_verdict,
        );
    }
    let external_goto = format!("goto {}", names.external);
    for ip in p.external_ips.iter().chain(&p.load_balancer_ips) {
        if c.has_any {
            element(ruleset, SERVICE_IPS, vip_key(ip), external_goto.clone());
        }
        if !has_external {
            element(
                ruleset,
                NO_ENDPOINT_SERVICES,
                vip_key(ip),
                external_verdict.clone(),
            );
        }
    }
    let uses_firewall =
        !p.load_balancer_ips.is_empty() && !p.load_balancer_source_ranges.is_empty();
    if uses_firewall {
        for ip in &p.load_balancer_ips {
            element(
                ruleset,
                FIREWALL_IPS,
                vip_key(ip),
                format!("goto {}", names.firewall),
            );
        }
        push(
            ruleset,
            &names.firewall,
            format!(
                "ip saddr != {{ {} }} drop",
                p.load_balancer_source_ranges.join(", ")
            ),
        );
    }
    if p.node_port != 0 {
        let key = format!("{proto} . {}", p.node_port);
        if c.has_any {
            element(
                ruleset,
                SERVICE_NODEPORTS,
                key.clone(),
                external_goto.clone(),
            );
        }
        if !has_external {
            element(ruleset, NO_ENDPOINT_NODEPORTS, key, external_verdict);
        }
    }

    if has_internal {
        // Off-cluster clients reaching a ClusterIP (a route to the Service CIDR via this
        // node): their replies must come back through us.
        push(
            ruleset,
            internal_chain,
            format!(
                "ip daddr {} {proto} dport {} ip saddr != {} jump {MARK_FOR_MASQUERADE}",
                p.cluster_ip, p.port, cfg.cluster_cidr
            ),
        );
    }
    if uses_external_chain {
        let ext = &names.external;
        if !p.external_policy_local {
            // The endpoint may be on another node: its reply must come back through us.
            push(ruleset, ext, format!("jump {MARK_FOR_MASQUERADE}"));
        } else {
            // Pods reaching an external address are not subject to the Local policy (as
            // if they went out to the load balancer and came back).
            push(
                ruleset,
                ext,
                format!("ip saddr {} goto {}", cfg.cluster_cidr, names.cluster),
            );
            // The node itself: its source would be a local address the endpoint can't answer.
            push(
                ruleset,
                ext,
                format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"),
            );
            push(
                ruleset,
                ext,
                format!("fib saddr type local goto {}", names.cluster),
            );
        }
        if has_external {
            push(ruleset, ext, format!("goto {external_policy_chain}"));
        }
    }

    if let Some(timeout) = p.affinity_timeout {
        for ep in &c.reachable {
            ruleset.sets.insert(
                names.affinity(ep, timeout),
                Set {
                    kind: SetKind::Set,
                    decl: format!("type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s"),
                    elements: BTreeMap::new(),
                    dynamic: true,
                },
            );
        }
    }
    if uses_cluster_chain {
        dispatch(ruleset, st, &names, &names.cluster, &c.cluster);
    }
    if uses_local_chain {
        dispatch(ruleset, st, &names, &names.local, &c.local);
    }
    for ep in &c.reachable {
        let chain = names.endpoint(ep);
        // Hairpin: a pod reaching its own Service must see the reply come from the VIP.
        push(
            ruleset,
            &chain,
            format!("ip saddr {} jump {MARK_FOR_MASQUERADE}", ep.ip),
        );
        if let Some(timeout) = p.affinity_timeout {
            push(
                ruleset,
                &chain,
                format!("update @{} {{ ip saddr }}", names.affinity(ep, timeout)),
            );
        }
        push(
            ruleset,
            &chain,
            format!("meta l4proto {proto} dnat to {}", ep.addr()),
        );
    }
}

/// The rules of one service port.
pub fn service_rules(st: &ServiceState, cfg: &RulesConfig) -> ServiceRules {
    let mut r = ServiceRules::default();
    service(&mut r, st, cfg);
    r
}

/// The fixed chains and maps, with the services' elements merged in (the first service
/// claiming a key keeps it, as two Services cannot own one address and port).
pub fn assemble(cfg: &RulesConfig, services: BTreeMap<String, Arc<ServiceRules>>) -> Ruleset {
    let mut ruleset = Ruleset::default();
    base(&mut ruleset, cfg);
    for rules in services.values() {
        for (set, key, value) in &rules.elements {
            if let Some(s) = ruleset.sets.get_mut(*set) {
                s.elements
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    ruleset.services = services;
    ruleset
}

/// The complete desired content of the table.
pub fn generate(states: &[ServiceState], cfg: &RulesConfig) -> Ruleset {
    let services = states
        .iter()
        .map(|st| (st.port.id(), Arc::new(service_rules(st, cfg))))
        .collect();
    assemble(cfg, services)
}

/// [`generate`] remembering each service's rules, so a sync regenerates only the services
/// that changed (and the script can skip the others by pointer).
pub struct Generator {
    cfg: RulesConfig,
    cache: HashMap<String, (ServiceState, Arc<ServiceRules>)>,
}

impl Generator {
    pub fn new(cfg: RulesConfig) -> Self {
        Generator {
            cfg,
            cache: HashMap::new(),
        }
    }

    pub fn generate(&mut self, states: &[ServiceState]) -> Ruleset {
        let mut cache = HashMap::with_capacity(states.len());
        let mut services = BTreeMap::new();
        for st in states {
            let id = st.port.id();
            let rules = match self.cache.remove(&id) {
                Some((old, rules)) if old == *st => rules,
                _ => Arc::new(service_rules(st, &self.cfg)),
            };
            services.insert(id.clone(), rules.clone());
            cache.insert(id, (st.clone(), rules));
        }
        self.cache = cache;
        assemble(&self.cfg, services)
    }
}

#[cfg(test)]
#[path = "ruleset_tests.rs"]
mod tests;
