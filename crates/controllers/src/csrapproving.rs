//! The CSR approving controller (Kubernetes' `pkg/controller/certificates/approver`): a
//! joining node's request for its client certificate is approved automatically when its
//! requester may create `certificatesigningrequests/nodeclient` (a bootstrap token's user)
//! or, for a renewal by the node itself, `selfnodeclient` — as a SubjectAccessReview says.
//!
//! rkube also approves a kubelet's own request for its serving certificate
//! (`kubernetes.io/kubelet-serving`; or one by a requester who may approve that signer's
//! requests anyway) when every name in it is one the Node reports for itself (its name,
//! hostname and addresses): upstream leaves these to an administrator or an
//! external approver, and k3s issues them without a CSR; approving the provable ones keeps
//! `--kubelet-certificate-authority` checking on by default.
//!
//! And a node's request for the ingress controller's identity (`system:rkube-ingress`, no
//! groups, `kubernetes.io/kube-apiserver-client`): rkube's agent runs the ingress controller on
//! every node, as k3s runs its packaged kube-proxy with a certificate of its own. Only that
//! exact subject is approved; what the identity may do is its ClusterRole's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::csrsigning::{CLIENT, KUBELET_CLIENT, KUBELET_SERVING, has_condition};
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// How long, and how often, a serving request that names addresses its Node does not (yet)
/// report is looked at again.
const RECHECK_FOR: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_mins(10);
const RECHECK_EVERY: Duration = Duration::from_secs(2);

/// The user rkube's ingress controller runs as; nodes may ask for its client certificate.
pub const INGRESS_USER: &str = "system:rkube-ingress";

pub struct CsrApprovingController {
    client: Client,
    csrs: Informer<CertificateSigningRequest>,
    queue: Arc<WorkQueue>,
}

/// The CN and O of a PEM certificate request.
fn subject(pem: &[u8]) -> Option<(String, Vec<String>)> {
    let req = parse(pem)?;
    let dn = &req.params.distinguished_name;
    let value = |v: &rcgen::DnValue| match v {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        _ => None,
    };
    let cn = dn.get(&rcgen::DnType::CommonName).and_then(value)?;
    let orgs = dn
        .iter()
        .filter(|(t, _)| **t == rcgen::DnType::OrganizationName)
        .filter_map(|(_, v)| value(v))
        .collect();
    Some((cn, orgs))
}

fn parse(pem: &[u8]) -> Option<rcgen::CertificateSigningRequestParams> {
    let text = std::str::from_utf8(pem).ok()?;
    rcgen::CertificateSigningRequestParams::from_pem(text).ok()
}

/// The DNS names and IPs a serving certificate request asks for, or `None` if it asks for
/// anything else.
fn serving_names(pem: &[u8]) -> Option<Vec<String>> {
    let req = parse(pem)?;
    req.params
        .subject_alt_names
        .iter()
        .map(|san| match san {
            rcgen::SanType::DnsName(d) => Some(d.as_str().to_owned()),
            rcgen::SanType::IpAddress(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect()
}

/// The requesting node's name when `csr` is a node asking for the ingress controller's
/// client certificate: requester `system:node:<name>` in `system:nodes`, subject exactly
/// `CN=system:rkube-ingress` (no organization or other attribute), no subject alternative
/// names, and usages among digital signature and client auth (client auth included).
pub fn node_ingress_request(csr: &CertificateSigningRequest) -> Option<String> {
    if csr.spec.signer_name != CLIENT {
        return None;
    }
    let requester = csr.spec.username.as_deref()?;
    let node = requester
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())?;
    let in_nodes = csr
        .spec
        .groups
        .iter()
        .flatten()
        .any(|g| g == "system:nodes");
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    let usages_ok = usages.iter().any(|u| u == "client auth")
        && usages
            .iter()
            .all(|u| matches!(u.as_str(), "digital signature" | "client auth"));
    let req = parse(&csr.spec.request.0)?;
    let dn = &req.params.distinguished_name;
    let only_cn = dn.iter().count() == 1;
    let (cn, orgs) = subject(&csr.spec.request.0)?;
    let subject_ok = only_cn && cn == INGRESS_USER && orgs.is_empty();
    (in_nodes && usages_ok && subject_ok && req.params.subject_alt_names.is_empty())
        .then(|| node.to_owned())
}

impl CsrApprovingController {
    pub fn new(client: Client, csrs: Informer<CertificateSigningRequest>) -> Arc<Self> {
        let c = Arc::new(CsrApprovingController {
            client,
            csrs,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.csrs
            .on_change(move |ch: &Change<CertificateSigningRequest>| {
                if let Some(csr) = &ch.new {
                    me.queue.add(key_of(csr.as_ref()));
                }
            });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.csrs], workers).await;
    }
}

impl Reconciler for CsrApprovingController {
    const NAME: &'static str = "csrapproving";

    async fn reconcile(self: &Arc<Self>, name: &str) -> anyhow::Result<Action> {
        let Some(csr) = self.csrs.get(None, name) else {
            return Ok(Action::Done);
        };
        if has_condition(&csr, "Approved") || has_condition(&csr, "Denied") {
            return Ok(Action::Done);
        }
        if let Some(node) = node_ingress_request(&csr) {
            return self
                .approve(
                    &csr,
                    &node,
                    "Auto approving the ingress controller's client certificate for a node.",
                )
                .await;
        }
        let serving = csr.spec.signer_name == KUBELET_SERVING;
        if !(serving || csr.spec.signer_name == KUBELET_CLIENT)
            || has_condition(&csr, "Approved")
            || has_condition(&csr, "Denied")
        {
            return Ok(Action::Done);
        }
        let Some((cn, orgs)) = subject(&csr.spec.request.0) else {
            return Ok(Action::Done);
        };
        let Some(node) = cn.strip_prefix("system:node:") else {
            return Ok(Action::Done);
        };
        let usage = if serving {
            "server auth"
        } else {
            "client auth"
        };
        let usages_ok =
            csr.spec.usages.iter().flatten().all(|u| {
                matches!(u.as_str(), "digital signature" | "key encipherment") || u == usage
            });
        if orgs != ["system:nodes"] || !usages_ok {
            return Ok(Action::Done);
        }
        let requester = csr.spec.username.clone().unwrap_or_default();
        if serving {
            // The node itself, or someone who could approve it anyway (an admin running an
            // agent with its own credentials).
            if requester != cn && !self.may_approve(&csr).await? {
                return Ok(Action::Done);
            }
            if !self.names_its_own(node, &csr.spec.request.0).await? {
                // A kubelet asks as soon as it serves, maybe before its status lists its
                // addresses: look again for a while.
                let young = csr.metadata.creation_timestamp.as_ref().is_some_and(|t| {
                    k8s_openapi::jiff::Timestamp::now().duration_since(t.0) < RECHECK_FOR
                });
                return Ok(young.then_some(RECHECK_EVERY).into());
            }
            return self
                .approve(&csr, node, "Auto approving kubelet serving certificate: every name in it is the node's own.")
                .await;
        }
        // A node renewing its own certificate, or anyone allowed to request one.
        let sub = if requester == cn {
            "selfnodeclient"
        } else {
            "nodeclient"
        };
        if !self.allowed(&csr, sub).await? {
            return Ok(Action::Done);
        }
        self.approve(
            &csr,
            node,
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        )
        .await
    }
}

impl CsrApprovingController {
    /// Whether every name a serving request asks for is one Node `node` reports: its name,
    /// or an address in its status (IPs and hostnames).
    async fn names_its_own(&self, node: &str, pem: &[u8]) -> anyhow::Result<bool> {
        let Some(names) = serving_names(pem) else {
            return Ok(false);
        };
        let nodes: Api<Node> = Api::all(self.client.clone());
        let Some(n) = nodes.get_opt(node).await.context("reading the node")? else {
            return Ok(false);
        };
        // DNS names are compared without case, as DNS does.
        let own: Vec<String> = std::iter::once(node.to_owned())
            .chain(
                n.status
                    .and_then(|s| s.addresses)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| a.address),
            )
            .map(|a| a.to_ascii_lowercase())
            .collect();
        Ok(!names.is_empty()
            && names
                .iter()
                .all(|name| own.contains(&name.to_ascii_lowercase())))
    }

    async fn approve(
        &self,
        csr: &CertificateSigningRequest,
        node: &str,
        message: &str,
    ) -> anyhow::Result<Action> {
        let name = csr.metadata.name.clone().unwrap_or_default();
        let mut approved = csr.clone();
        approved
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(message.into()),
                last_update_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                )),
                ..Default::default()
            });
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        api.replace_subresource("approval", &name, &PostParams::default(), &approved)
            .await
            .context("approving")?;
        tracing::info!(csr = name, node, signer = %csr.spec.signer_name, "approved a node certificate");
        Ok(Action::Done)
    }

    /// Whether the requester may `create` `certificatesigningrequests/<sub>`.
    async fn allowed(&self, csr: &CertificateSigningRequest, sub: &str) -> anyhow::Result<bool> {
        self.requester_may(
            csr,
            ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(sub.into()),
                verb: Some("create".into()),
                ..Default::default()
            },
        )
        .await
    }

    /// Whether the requester could approve requests for the CSR's signer itself (then
    /// approving it here gives nothing they do not have).
    async fn may_approve(&self, csr: &CertificateSigningRequest) -> anyhow::Result<bool> {
        self.requester_may(
            csr,
            ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("signers".into()),
                name: Some(csr.spec.signer_name.clone()),
                verb: Some("approve".into()),
                ..Default::default()
            },
        )
        .await
    }

    /// A SubjectAccessReview for the CSR's requester.
    async fn requester_may(
        &self,
        csr: &CertificateSigningRequest,
        attributes: ResourceAttributes,
    ) -> anyhow::Result<bool> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: csr.spec.username.clone(),
                groups: csr.spec.groups.clone(),
                uid: csr.spec.uid.clone(),
                resource_attributes: Some(attributes),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .context("asking what the requester may do")?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn request(cn: &str, org: Option<&str>, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if let Some(o) = org {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, o);
        }
        params.subject_alt_names = sans;
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    fn csr(
        user: &str,
        groups: &[&str],
        request: Vec<u8>,
        usages: &[&str],
    ) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(request),
                signer_name: CLIENT.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const NODE: &str = "system:node:n1";
    const NODES: &[&str] = &["system:nodes", "system:authenticated"];
    const USAGES: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn a_node_gets_the_ingress_identity() {
        let ok = csr(NODE, NODES, request(INGRESS_USER, None, vec![]), USAGES);
        assert_eq!(node_ingress_request(&ok).as_deref(), Some("n1"));
        let client_auth_only = csr(
            NODE,
            NODES,
            request(INGRESS_USER, None, vec![]),
            &["client auth"],
        );
        assert!(node_ingress_request(&client_auth_only).is_some());
    }

    #[test]
    fn anything_else_is_left_alone() {
        let req = || request(INGRESS_USER, None, vec![]);
        let refused = [
            // Other subjects.
            csr(
                NODE,
                NODES,
                request("system:kube-proxy", None, vec![]),
                USAGES,
            ),
            csr(NODE, NODES, request("system:node:n1", None, vec![]), USAGES),
            csr(
                NODE,
                NODES,
                request(INGRESS_USER, Some("system:masters"), vec![]),
                USAGES,
            ),
            csr(
                NODE,
                NODES,
                request(INGRESS_USER, Some("system:nodes"), vec![]),
                USAGES,
            ),
            csr(
                NODE,
                NODES,
                request(
                    INGRESS_USER,
                    None,
                    vec![rcgen::SanType::DnsName("x".try_into().unwrap())],
                ),
                USAGES,
            ),
            // Other requesters: not a node, or a node name outside system:nodes.
            csr("alice", &["system:authenticated"], req(), USAGES),
            csr(NODE, &["system:authenticated"], req(), USAGES),
            csr("system:node:", NODES, req(), USAGES),
            csr(
                "system:bootstrap:abcdef",
                &["system:bootstrappers"],
                req(),
                USAGES,
            ),
            // Other usages.
            csr(
                NODE,
                NODES,
                req(),
                &["digital signature", "client auth", "server auth"],
            ),
            csr(NODE, NODES, req(), &["digital signature"]),
        ];
        for (i, c) in refused.iter().enumerate() {
            assert_eq!(node_ingress_request(c), None, "case {i}");
        }
        // Another signer.
        let mut kubelet = csr(NODE, NODES, req(), USAGES);
        kubelet.spec.signer_name = KUBELET_CLIENT.into();
        assert_eq!(node_ingress_request(&kubelet), None);
    }
}
