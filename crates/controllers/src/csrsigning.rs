//! The CSR signing controller (Kubernetes' `pkg/controller/certificates/signer`): approved
//! CertificateSigningRequests for the client signers and `kubelet-serving` get a
//! certificate from the cluster CA in `status.certificate`. Needs the CA's key (`--cluster-signing-*`), so it runs only where
//! that is given.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Client;
use kube::api::{Api, PostParams};
use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair};

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Kubelets' serving certificates (what the API server checks when it dials a kubelet).
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// How long certificates last unless the request asks for less (upstream's default).
const DEFAULT_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

pub struct CsrSigningController {
    client: Client,
    csrs: Informer<CertificateSigningRequest>,
    ca_cert_pem: String,
    ca_key_pem: String,
    queue: Arc<WorkQueue>,
}

/// Whether a CSR has a condition of `kind` ("Approved", "Denied", "Failed").
pub fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind))
}

impl CsrSigningController {
    pub fn new(
        client: Client,
        csrs: Informer<CertificateSigningRequest>,
        ca_cert_pem: String,
        ca_key_pem: String,
    ) -> Arc<Self> {
        let c = Arc::new(CsrSigningController {
            client,
            csrs,
            ca_cert_pem,
            ca_key_pem,
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

impl Reconciler for CsrSigningController {
    const NAME: &'static str = "csrsigning";

    async fn reconcile(self: &Arc<Self>, name: &str) -> anyhow::Result<Action> {
        let Some(csr) = self.csrs.get(None, name) else {
            return Ok(Action::Done);
        };
        let signer = csr.spec.signer_name.as_str();
        let issued = csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty());
        if issued
            || !has_condition(&csr, "Approved")
            || has_condition(&csr, "Denied")
            || has_condition(&csr, "Failed")
            || !matches!(signer, KUBELET_CLIENT | CLIENT | KUBELET_SERVING)
        {
            return Ok(Action::Done);
        }
        let pem =
            String::from_utf8(csr.spec.request.0.clone()).context("the request is not PEM")?;
        let cert = sign(
            &self.ca_cert_pem,
            &self.ca_key_pem,
            &pem,
            signer,
            csr.spec.expiration_seconds,
        )?;
        let mut updated = (*csr).clone();
        updated
            .status
            .get_or_insert_with(Default::default)
            .certificate = Some(ByteString(cert.into_bytes()));
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        api.replace_status(name, &PostParams::default(), &updated)
            .await
            .context("writing the certificate")?;
        tracing::info!(csr = name, signer, "signed a certificate");
        Ok(Action::Done)
    }
}

/// Signs the PEM request `pem` for `signer` with the CA, as that signer's rules allow.
fn sign(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    pem: &str,
    signer: &str,
    seconds: Option<i32>,
) -> anyhow::Result<String> {
    let mut request = CertificateSigningRequestParams::from_pem(pem)
        .map_err(|e| anyhow!("the certificate request does not parse: {e}"))?;
    if signer == KUBELET_CLIENT || signer == KUBELET_SERVING {
        // Upstream's rule for these signers: a node's identity and nothing else.
        let dn = &request.params.distinguished_name;
        let cn = match dn.get(&rcgen::DnType::CommonName) {
            Some(rcgen::DnValue::Utf8String(s)) => s.clone(),
            Some(rcgen::DnValue::PrintableString(s)) => s.as_str().to_string(),
            _ => String::new(),
        };
        if !cn.starts_with("system:node:") {
            return Err(anyhow!(
                "{signer} only signs system:node:<name> certificates, not {cn:?}"
            ));
        }
    }
    let sans = &request.params.subject_alt_names;
    if signer == KUBELET_SERVING {
        // A serving certificate names where the kubelet is reached: DNS names and IPs.
        let dns_or_ip = |s: &rcgen::SanType| {
            matches!(s, rcgen::SanType::DnsName(_) | rcgen::SanType::IpAddress(_))
        };
        if sans.is_empty() || !sans.iter().all(dns_or_ip) {
            return Err(anyhow!(
                "{signer} needs DNS or IP subject alternative names, and only those"
            ));
        }
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).context("the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).context("the CA certificate")?;
    let life = seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_DURATION)
        .min(DEFAULT_DURATION);
    let now = time::OffsetDateTime::now_utc();
    request.params.not_before = now - time::Duration::minutes(5);
    request.params.not_after = now + life;
    request.params.extended_key_usages = vec![if signer == KUBELET_SERVING {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    request.params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = request
        .signed_by(&issuer)
        .map_err(|e| anyhow!("signing: {e}"))?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA: its certificate and key, PEM.
    fn ca() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn request(cn: &str, sans: Vec<rcgen::SanType>) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        params.subject_alt_names = sans;
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn kubelet_serving_certificates_name_the_node_and_serve() {
        let (cert, key) = ca();
        let sign = |req: String| sign(&cert, &key, &req, KUBELET_SERVING, None);
        let ip = rcgen::SanType::IpAddress("10.0.0.7".parse().unwrap());
        let pem = sign(request("system:node:n1", vec![ip.clone()])).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let e = sign(request("system:node:n1", vec![])).unwrap_err();
        assert!(e.to_string().contains("subject alternative names"), "{e}");
        let e = sign(request("alice", vec![ip])).unwrap_err();
        assert!(e.to_string().contains("system:node:"), "{e}");
    }
}
