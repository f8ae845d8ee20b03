//! Query resolution: one question against the [`Index`], answered as the Kubernetes DNS
//! specification (schema 1.1.0) and CoreDNS's `kubernetes` plugin (`pods insecure`) do.
//! Pure: no I/O, so every record kind is unit-tested here.

use std::net::IpAddr;

use anyhow::Context;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use crate::index::{Endpoint, Index, Kind, Port, ServiceEntry, undashed};

/// The schema version of the specification this server follows (`dns-version.<zone>` TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// SOA timers as CoreDNS's kubernetes plugin sets them (refresh, retry, expire).
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// How many in-zone CNAMEs (ExternalName → another Service) are followed.
const MAX_CHASE: usize = 8;

/// A response for a name this server is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// What to do with a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Ours: answer authoritatively.
    Answer(Answer),
    /// Not ours (outside the cluster zone, or a reverse name we hold no record for): forward
    /// it when an upstream is configured, else refuse.
    NotOurs,
}

/// The cluster zone and how it answers.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lowercase, fully qualified (`cluster.local.`).
    origin: Name,
    /// Lowercase, without the trailing dot, to build names by formatting.
    domain: String,
    ttl: u32,
}

impl Zone {
    pub fn new(domain: &str, ttl: u32) -> anyhow::Result<Zone> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let origin = Name::from_ascii(format!("{domain}."))
            .with_context(|| format!("invalid cluster domain {domain:?}"))?;
        Ok(Zone {
            origin,
            domain,
            ttl,
        })
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Answers `qname`/`qtype`. `qname` is the name as asked: answers carry it with the
    /// client's case (some resolvers check it), while matching ignores case.
    pub fn resolve(&self, index: &Index, qname: &Name, qtype: RecordType) -> Outcome {
        let mut qname = qname.clone();
        qname.set_fqdn(true);
        if self.origin.zone_of(&qname) {
            let mut answer = self.resolve_in_zone(index, &qname, qtype);
            self.chase(index, qtype, &mut answer, 0);
            return Outcome::Answer(answer);
        }
        if qtype == RecordType::PTR
            && let Some(ip) = arpa_ip(&qname)
            && let Some(names) = index.reverse.get(&ip)
        {
            let answers = names
                .iter()
                .filter_map(|n| self.name(n))
                .map(|n| Record::from_rdata(qname.clone(), self.ttl, RData::PTR(PTR(n))))
                .collect();
            return Outcome::Answer(Answer {
                rcode: ResponseCode::NoError,
                answers,
                authorities: Vec::new(),
                additionals: Vec::new(),
            });
        }
        Outcome::NotOurs
    }

    /// Follows a CNAME whose target is in the zone (an ExternalName pointing at another
    /// Service), so the client gets the addresses in one answer.
    fn chase(&self, index: &Index, qtype: RecordType, answer: &mut Answer, depth: usize) {
        if depth >= MAX_CHASE || qtype == RecordType::CNAME {
            return;
        }
        let Some(RData::CNAME(CNAME(target))) = answer.answers.last().map(|r| &r.data) else {
            return;
        };
        if !self.origin.zone_of(&target.to_lowercase()) {
            return;
        }
        let next = self.resolve_in_zone(index, target, qtype);
        answer.rcode = next.rcode;
        answer.answers.extend(next.answers);
        answer.authorities = next.authorities;
        answer.additionals.extend(next.additionals);
        self.chase(index, qtype, answer, depth + 1);
    }

    fn resolve_in_zone(&self, index: &Index, qname: &Name, qtype: RecordType) -> Answer {
        let lower = qname.to_lowercase();
        let extra = usize::from(lower.num_labels()) - usize::from(self.origin.num_labels());
        let labels: Option<Vec<&str>> = lower
            .iter()
            .take(extra)
            .map(|l| std::str::from_utf8(l).ok())
            .collect();
        let Some(labels) = labels else {
            return self.nxdomain(index);
        };
        let q = Question {
            zone: self,
            index,
            owner: qname,
            qtype,
        };
        match labels.as_slice() {
            [] => q.apex(),
            ["dns-version"] => q.at(|t| {
                (t == RecordType::TXT)
                    .then(|| vec![RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()]))])
            }),
            ["dns"] => q.nodata(),
            ["ns", "dns"] => q.at(|t| {
                let ips = q.dns_ips();
                Some(addresses(t, ips.iter().copied()))
            }),
            ["svc"] | ["pod"] => q.nodata(),
            [ns, "svc"] => {
                if index.has_namespace(ns) {
                    q.nodata()
                } else {
                    q.nxdomain()
                }
            }
            [svc, ns, "svc"] => q.service(ns, svc),
            [proto, svc, ns, "svc"] if proto.starts_with('_') => q.srv_parent(ns, svc, proto),
            [host, svc, ns, "svc"] => q.endpoint(ns, svc, host),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                q.srv(ns, svc, &port[1..], &proto[1..])
            }
            // Pod names exist in every namespace (CoreDNS `pods insecure` does not check).
            [_ns, "pod"] => q.nodata(),
            [ip, _ns, "pod"] => match undashed(ip) {
                Some(ip) => q.at(|t| Some(addresses(t, [ip]))),
                None => q.nxdomain(),
            },
            _ => q.nxdomain(),
        }
    }

    /// The target of an answer that ends in a CNAME out of the zone (an ExternalName), which
    /// only an upstream can complete; `None` when the question was for the CNAME itself.
    pub fn external_target(&self, answer: &Answer, qtype: RecordType) -> Option<Name> {
        if qtype == RecordType::CNAME {
            return None;
        }
        match answer.answers.last().map(|r| &r.data) {
            Some(RData::CNAME(CNAME(target))) if !self.origin.zone_of(&target.to_lowercase()) => {
                Some(target.clone())
            }
            _ => None,
        }
    }

    /// `rel` (a name relative to the zone, e.g. `web.default.svc`) as a fully qualified name.
    fn name(&self, rel: &str) -> Option<Name> {
        Name::from_ascii(format!("{rel}.{}.", self.domain)).ok()
    }

    fn soa(&self, index: &Index) -> Record {
        let mname = self.name("ns.dns").unwrap_or_else(|| self.origin.clone());
        let rname = self
            .name("hostmaster")
            .unwrap_or_else(|| self.origin.clone());
        let soa = SOA::new(
            mname,
            rname,
            index.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.ttl,
        );
        Record::from_rdata(self.origin.clone(), self.ttl, RData::SOA(soa))
    }

    fn nxdomain(&self, index: &Index) -> Answer {
        Answer {
            rcode: ResponseCode::NXDomain,
            answers: Vec::new(),
            authorities: vec![self.soa(index)],
            additionals: Vec::new(),
        }
    }
}

/// One question being answered; the helpers return the full [`Answer`].
struct Question<'a> {
    zone: &'a Zone,
    index: &'a Index,
    owner: &'a Name,
    qtype: RecordType,
}

impl Question<'_> {
    fn record(&self, data: RData) -> Record {
        Record::from_rdata(self.owner.clone(), self.zone.ttl, data)
    }

    fn nxdomain(&self) -> Answer {
        self.zone.nxdomain(self.index)
    }

    /// The name exists but has no record of the asked type: NOERROR, SOA in authority.
    fn nodata(&self) -> Answer {
        Answer {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: vec![self.zone.soa(self.index)],
            additionals: Vec::new(),
        }
    }

    fn answer(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        if answers.is_empty() {
            return self.nodata();
        }
        Answer {
            rcode: ResponseCode::NoError,
            answers,
            authorities: Vec::new(),
            additionals,
        }
    }

    /// A name that exists; `data` gives its records of a type (`None`/empty: NODATA).
    fn at(&self, data: impl Fn(RecordType) -> Option<Vec<RData>>) -> Answer {
        let types: &[RecordType] = if self.qtype == RecordType::ANY {
            &[RecordType::A, RecordType::AAAA, RecordType::TXT]
        } else {
            std::slice::from_ref(&self.qtype)
        };
        let answers = types
            .iter()
            .filter_map(|t| data(*t))
            .flatten()
            .map(|d| self.record(d))
            .collect();
        self.answer(answers, Vec::new())
    }

    fn apex(&self) -> Answer {
        match self.qtype {
            RecordType::SOA => self.answer(vec![self.zone.soa(self.index)], Vec::new()),
            RecordType::NS => {
                let Some(ns) = self.zone.name("ns.dns") else {
                    return self.nodata();
                };
                let glue = addresses(RecordType::ANY, self.dns_ips())
                    .into_iter()
                    .map(|d| Record::from_rdata(ns.clone(), self.zone.ttl, d))
                    .collect();
                self.answer(vec![self.record(RData::NS(NS(ns)))], glue)
            }
            _ => self.nodata(),
        }
    }

    /// The cluster DNS Service's own addresses (`kube-system/kube-dns`), for `ns.dns.<zone>`.
    fn dns_ips(&self) -> Vec<IpAddr> {
        match self
            .index
            .service("kube-system", "kube-dns")
            .map(|s| &s.kind)
        {
            Some(Kind::ClusterIp(ips)) => ips.clone(),
            _ => Vec::new(),
        }
    }

    /// `<svc>.<ns>.svc.<zone>`.
    fn service(&self, ns: &str, name: &str) -> Answer {
        let Some(svc) = self.index.service(ns, name) else {
            return self.nxdomain();
        };
        let fqdn = format!("{name}.{ns}.svc");
        match &svc.kind {
            Kind::ExternalName(target) => {
                let Ok(target) = Name::from_ascii(format!("{target}.")) else {
                    return self.nodata();
                };
                self.answer(vec![self.record(RData::CNAME(CNAME(target)))], Vec::new())
            }
            Kind::ClusterIp(ips) => {
                if self.qtype == RecordType::SRV {
                    // An extension CoreDNS has too: SRV at the Service's own name lists
                    // every port.
                    return self.srv_answer(svc, &fqdn, |_| true);
                }
                self.at(|t| Some(addresses(t, ips.iter().copied())))
            }
            Kind::Headless(eps) => {
                if eps.is_empty() {
                    // The spec: no ready endpoints → NXDOMAIN.
                    return self.nxdomain();
                }
                if self.qtype == RecordType::SRV {
                    return self.srv_answer(svc, &fqdn, |_| true);
                }
                self.at(|t| Some(addresses(t, eps.iter().map(|e| e.ip))))
            }
        }
    }

    /// `<hostname>.<svc>.<ns>.svc.<zone>`: a headless Service's endpoint.
    fn endpoint(&self, ns: &str, svc: &str, host: &str) -> Answer {
        let Some(Kind::Headless(eps)) = self.index.service(ns, svc).map(|s| &s.kind) else {
            return self.nxdomain();
        };
        let ips: Vec<IpAddr> = eps
            .iter()
            .filter(|e| e.name == host)
            .map(|e| e.ip)
            .collect();
        if ips.is_empty() {
            return self.nxdomain();
        }
        self.at(|t| Some(addresses(t, ips.iter().copied())))
    }

    /// `_<proto>.<svc>.<ns>.svc.<zone>`: an empty non-terminal above SRV names.
    fn srv_parent(&self, ns: &str, svc: &str, proto: &str) -> Answer {
        let proto = &proto[1..];
        match self.index.service(ns, svc) {
            Some(s)
                if s.ports
                    .iter()
                    .any(|p| p.protocol == proto && !p.name.is_empty()) =>
            {
                self.nodata()
            }
            _ => self.nxdomain(),
        }
    }

    /// `_<port>._<proto>.<svc>.<ns>.svc.<zone>`.
    fn srv(&self, ns: &str, svc_name: &str, port: &str, proto: &str) -> Answer {
        let Some(svc) = self.index.service(ns, svc_name) else {
            return self.nxdomain();
        };
        let wanted = |p: &Port| !p.name.is_empty() && p.name == port && p.protocol == proto;
        if !svc.ports.iter().any(wanted) {
            return self.nxdomain();
        }
        if let Kind::Headless(eps) = &svc.kind
            && eps.is_empty()
        {
            return self.nxdomain();
        }
        if self.qtype != RecordType::SRV && self.qtype != RecordType::ANY {
            return self.nodata();
        }
        self.srv_answer(svc, &format!("{svc_name}.{ns}.svc"), wanted)
    }

    /// SRV records of the ports `wanted` selects: one per port targeting the Service for a
    /// ClusterIP, one per endpoint and port (the endpoint's target port) for headless, with
    /// the targets' addresses in the additional section.
    fn srv_answer(&self, svc: &ServiceEntry, fqdn: &str, wanted: impl Fn(&Port) -> bool) -> Answer {
        // (port, target, target's addresses); a target repeats when it serves several ports.
        let mut targets: Vec<(u16, Name, &[IpAddr])> = Vec::new();
        match &svc.kind {
            Kind::ClusterIp(ips) => {
                let Some(name) = self.zone.name(fqdn) else {
                    return self.nodata();
                };
                for p in svc.ports.iter().filter(|p| wanted(p)) {
                    targets.push((p.port, name.clone(), ips));
                }
            }
            Kind::Headless(eps) => {
                let Some(base) = self.zone.name(fqdn) else {
                    return self.nodata();
                };
                for p in svc.ports.iter().filter(|p| wanted(p)) {
                    for ep in eps {
                        // Prepending a label is far cheaper than parsing the whole name.
                        if let Some(port) = endpoint_port(ep, p)
                            && let Ok(name) = base.prepend_label(ep.name.as_bytes())
                        {
                            targets.push((port, name, std::slice::from_ref(&ep.ip)));
                        }
                    }
                }
            }
            Kind::ExternalName(target) => {
                let Ok(name) = Name::from_ascii(format!("{target}.")) else {
                    return self.nodata();
                };
                for p in svc.ports.iter().filter(|p| wanted(p)) {
                    targets.push((p.port, name.clone(), &[]));
                }
            }
        }
        // Equal priority, weights summing to ~100 (as CoreDNS spreads them).
        let weight = u16::try_from(100 / targets.len().max(1))
            .unwrap_or(1)
            .max(1);
        let mut answers = Vec::with_capacity(targets.len());
        let mut additionals = Vec::new();
        for (port, name, _) in &targets {
            answers.push(self.record(RData::SRV(SRV::new(0, weight, *port, name.clone()))));
        }
        // Targets repeat only when several ports are asked for; only then compare names.
        let repeats = svc.ports.iter().filter(|p| wanted(p)).count() > 1;
        let mut glued: Vec<&Name> = Vec::new();
        for (_, name, ips) in &targets {
            if repeats {
                if glued.contains(&name) {
                    continue;
                }
                glued.push(name);
            }
            for d in addresses(RecordType::ANY, ips.iter().copied()) {
                additionals.push(Record::from_rdata(name.clone(), self.zone.ttl, d));
            }
        }
        self.answer(answers, additionals)
    }
}

/// The port an endpoint serves a Service port on: the slice port of the same name and
/// protocol (slices name their ports after the Service's).
fn endpoint_port(ep: &Endpoint, p: &Port) -> Option<u16> {
    ep.ports
        .iter()
        .find(|e| e.name == p.name && e.protocol == p.protocol)
        .map(|e| e.port)
}

/// A/AAAA data of the addresses matching `t` (both families for ANY).
fn addresses(t: RecordType, ips: impl IntoIterator<Item = IpAddr>) -> Vec<RData> {
    ips.into_iter()
        .filter_map(|ip| match (t, ip) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .collect()
}

/// The address of a full `in-addr.arpa.`/`ip6.arpa.` name (not of a shorter network name).
fn arpa_ip(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    let full = match net.addr() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    (net.prefix_len() == full).then(|| net.addr())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::index::tests::{cluster_ip, headless, port, service, slice};
    use k8s_openapi::api::core::v1::ServiceSpec;

    fn zone() -> Zone {
        Zone::new("cluster.local", 5).unwrap()
    }

    fn index() -> Index {
        let svcs = [
            service(
                "default",
                "web",
                cluster_ip(
                    &["10.43.0.20", "fd00:43::20"],
                    vec![port("http", "TCP", 80), port("", "TCP", 8080)],
                ),
            ),
            service(
                "kube-system",
                "kube-dns",
                cluster_ip(&["10.43.0.10"], vec![port("dns", "UDP", 53)]),
            ),
            service(
                "default",
                "nginx",
                headless(vec![port("web", "TCP", 80)], false),
            ),
            service(
                "default",
                "unready",
                headless(vec![port("web", "TCP", 80)], true),
            ),
            service("default", "empty", headless(vec![], false)),
            service(
                "default",
                "ext",
                ServiceSpec {
                    type_: Some("ExternalName".into()),
                    external_name: Some("Example.COM.".into()),
                    ..Default::default()
                },
            ),
            service(
                "default",
                "alias",
                ServiceSpec {
                    type_: Some("ExternalName".into()),
                    external_name: Some("web.default.svc.cluster.local".into()),
                    ..Default::default()
                },
            ),
        ];
        let slices = [
            slice(
                "default",
                "nginx",
                "nginx-abc",
                &[
                    ("10.42.0.5", Some("web-0"), Some(true)),
                    ("10.42.0.6", Some("web-1"), None),
                    ("10.42.0.7", Some("web-2"), Some(false)),
                    ("10.42.0.8", None, Some(true)),
                ],
                &[("web", "TCP", 8080)],
            ),
            slice(
                "default",
                "unready",
                "unready-abc",
                &[("10.42.0.9", None, Some(false))],
                &[("web", "TCP", 8080)],
            ),
            slice(
                "default",
                "empty",
                "empty-abc",
                &[("10.42.0.10", None, Some(false))],
                &[],
            ),
        ];
        Index::build(&svcs, &slices, 42)
    }

    fn ask(name: &str, t: RecordType) -> Answer {
        match zone().resolve(&index(), &Name::from_ascii(name).unwrap(), t) {
            Outcome::Answer(a) => a,
            Outcome::NotOurs => panic!("{name} is not ours"),
        }
    }

    fn data(a: &Answer) -> Vec<String> {
        a.answers.iter().map(|r| r.data.to_string()).collect()
    }

    fn assert_nodata(a: &Answer) {
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.answers.is_empty(), "{a:?}");
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
    }

    fn assert_nxdomain(a: &Answer) {
        assert_eq!(a.rcode, ResponseCode::NXDomain, "{a:?}");
        assert!(a.answers.is_empty());
        assert_eq!(a.authorities.len(), 1);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(a.authorities[0].name.to_string(), "cluster.local.");
    }

    #[test]
    fn cluster_ip_a_and_aaaa() {
        let a = ask("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(data(&a), ["10.43.0.20"]);
        assert_eq!(a.answers[0].ttl, 5);
        assert_eq!(
            data(&ask("web.default.svc.cluster.local.", RecordType::AAAA)),
            ["fd00:43::20"]
        );
        assert_nodata(&ask("web.default.svc.cluster.local.", RecordType::TXT));
    }

    #[test]
    fn case_and_trailing_dot_do_not_matter() {
        let a = ask("WEB.Default.SVC.cluster.LOCAL", RecordType::A);
        assert_eq!(data(&a), ["10.43.0.20"]);
        // The answer keeps the question's spelling.
        assert_eq!(
            a.answers[0].name.to_string(),
            "WEB.Default.SVC.cluster.LOCAL."
        );
    }

    #[test]
    fn nxdomain_vs_nodata() {
        assert_nxdomain(&ask("nope.default.svc.cluster.local.", RecordType::A));
        assert_nxdomain(&ask("web.nope.svc.cluster.local.", RecordType::A));
        assert_nxdomain(&ask("nope.cluster.local.", RecordType::A));
        assert_nxdomain(&ask("a.b.c.d.e.f.cluster.local.", RecordType::A));
        assert_nxdomain(&ask("nope.svc.cluster.local.", RecordType::A));
        // Names that exist without A records.
        assert_nodata(&ask("cluster.local.", RecordType::A));
        assert_nodata(&ask("svc.cluster.local.", RecordType::A));
        assert_nodata(&ask("default.svc.cluster.local.", RecordType::A));
        assert_nodata(&ask("_tcp.web.default.svc.cluster.local.", RecordType::A));
        assert_nodata(&ask(
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::A,
        ));
    }

    #[test]
    fn apex_soa_ns_and_version() {
        let soa = ask("cluster.local.", RecordType::SOA);
        assert_eq!(
            data(&soa),
            ["ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"]
        );
        let ns = ask("cluster.local.", RecordType::NS);
        assert_eq!(data(&ns), ["ns.dns.cluster.local."]);
        assert_eq!(ns.additionals[0].data.to_string(), "10.43.0.10");
        assert_eq!(
            data(&ask("ns.dns.cluster.local.", RecordType::A)),
            ["10.43.0.10"]
        );
        assert_eq!(
            data(&ask("dns-version.cluster.local.", RecordType::TXT)),
            ["1.1.0"]
        );
        assert_nodata(&ask("dns-version.cluster.local.", RecordType::A));
    }

    #[test]
    fn headless_answers_ready_endpoints() {
        let a = ask("nginx.default.svc.cluster.local.", RecordType::A);
        let mut ips = data(&a);
        ips.sort();
        assert_eq!(ips, ["10.42.0.5", "10.42.0.6", "10.42.0.8"]);
        assert_nodata(&ask("nginx.default.svc.cluster.local.", RecordType::AAAA));
    }

    #[test]
    fn headless_publish_not_ready_and_no_endpoints() {
        assert_eq!(
            data(&ask("unready.default.svc.cluster.local.", RecordType::A)),
            ["10.42.0.9"]
        );
        // No ready endpoints: the spec says NXDOMAIN.
        assert_nxdomain(&ask("empty.default.svc.cluster.local.", RecordType::A));
    }

    #[test]
    fn endpoint_hostnames_and_generated_names() {
        assert_eq!(
            data(&ask(
                "web-0.nginx.default.svc.cluster.local.",
                RecordType::A
            )),
            ["10.42.0.5"]
        );
        assert_eq!(
            data(&ask(
                "10-42-0-8.nginx.default.svc.cluster.local.",
                RecordType::A
            )),
            ["10.42.0.8"]
        );
        // Not ready → not published.
        assert_nxdomain(&ask(
            "web-2.nginx.default.svc.cluster.local.",
            RecordType::A,
        ));
        // ClusterIP Services have no endpoint names.
        assert_nxdomain(&ask("x.web.default.svc.cluster.local.", RecordType::A));
        assert_nodata(&ask(
            "web-0.nginx.default.svc.cluster.local.",
            RecordType::AAAA,
        ));
    }

    #[test]
    fn srv_cluster_ip() {
        let a = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(data(&a), ["0 100 80 web.default.svc.cluster.local."]);
        let mut extra: Vec<_> = a.additionals.iter().map(|r| r.data.to_string()).collect();
        extra.sort();
        assert_eq!(extra, ["10.43.0.20", "fd00:43::20"]);
        assert_nxdomain(&ask(
            "_http._udp.web.default.svc.cluster.local.",
            RecordType::SRV,
        ));
        assert_nxdomain(&ask(
            "_nope._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        ));
        // The bare Service name lists every port.
        let all = ask("web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(all.answers.len(), 2);
        assert_eq!(
            all.additionals.len(),
            2,
            "one glue set for the shared target"
        );
    }

    #[test]
    fn srv_headless_one_per_endpoint_with_glue() {
        let a = ask(
            "_web._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV,
        );
        let mut srv = data(&a);
        srv.sort();
        assert_eq!(
            srv,
            [
                "0 33 8080 10-42-0-8.nginx.default.svc.cluster.local.",
                "0 33 8080 web-0.nginx.default.svc.cluster.local.",
                "0 33 8080 web-1.nginx.default.svc.cluster.local.",
            ]
        );
        let mut glue: Vec<_> = a
            .additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        glue.sort();
        assert_eq!(
            glue,
            [
                "10-42-0-8.nginx.default.svc.cluster.local. 10.42.0.8",
                "web-0.nginx.default.svc.cluster.local. 10.42.0.5",
                "web-1.nginx.default.svc.cluster.local. 10.42.0.6",
            ]
        );
    }

    #[test]
    fn external_name_is_a_cname() {
        let a = ask("ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(data(&a), ["example.com."]);
        // An in-zone target is followed.
        let b = ask("alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(data(&b), ["web.default.svc.cluster.local.", "10.43.0.20"]);
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            data(&ask("10-42-0-99.default.pod.cluster.local.", RecordType::A)),
            ["10.42.0.99"]
        );
        assert_eq!(
            data(&ask("fd00--1.default.pod.cluster.local.", RecordType::AAAA)),
            ["fd00::1"]
        );
        assert_nodata(&ask(
            "10-42-0-99.default.pod.cluster.local.",
            RecordType::AAAA,
        ));
        assert_nxdomain(&ask("not-an-ip.default.pod.cluster.local.", RecordType::A));
    }

    #[test]
    fn ptr_for_cluster_ips_and_endpoints() {
        let z = zone();
        let idx = index();
        let ptr = |n: &str| match z.resolve(&idx, &Name::from_ascii(n).unwrap(), RecordType::PTR) {
            Outcome::Answer(a) => data(&a),
            Outcome::NotOurs => vec![],
        };
        assert_eq!(
            ptr("20.0.43.10.in-addr.arpa."),
            ["web.default.svc.cluster.local."]
        );
        assert_eq!(
            ptr("5.0.42.10.in-addr.arpa."),
            ["web-0.nginx.default.svc.cluster.local."]
        );
        assert!(ptr("1.1.1.10.in-addr.arpa.").is_empty());
    }

    #[test]
    fn other_names_are_not_ours() {
        let z = zone();
        let out = z.resolve(
            &index(),
            &Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        );
        assert_eq!(out, Outcome::NotOurs);
    }
}
