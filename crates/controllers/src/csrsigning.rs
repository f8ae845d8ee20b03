//! The CSR signing controller (Kubernetes' `pkg/controller/certificates/signer`): approved
//! CertificateSigningRequests for the client signers get a certificate from the cluster CA
//! in `status.certificate`. Needs the CA's key (`--cluster-signing-*`), so it runs only where
//! that is given.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Client;
use kube::api::{Api, PostParams};
use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair};

use crate::informer::{Change, Informer, key_of};
use crate::queue::{WorkQueue, run_workers};

pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const CLIENT: &str = "kubernetes.io/kube-apiserver-client";
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
        self.csrs.wait_synced().await;
        let me = self.clone();
        run_workers("csrsigning", self.queue.clone(), workers, move |key| {
            let me = me.clone();
            async move { me.sync(&key).await }
        })
        .await;
    }

    async fn sync(&self, name: &str) -> anyhow::Result<Option<Duration>> {
        let Some(csr) = self.csrs.get(None, name) else {
            return Ok(None);
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
            || !matches!(signer, KUBELET_CLIENT | CLIENT)
        {
            return Ok(None);
        }
        let pem =
            String::from_utf8(csr.spec.request.0.clone()).context("the request is not PEM")?;
        let cert = self.sign(&pem, signer, csr.spec.expiration_seconds)?;
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
        Ok(None)
    }

    fn sign(&self, pem: &str, signer: &str, seconds: Option<i32>) -> anyhow::Result<String> {
        let mut request = CertificateSigningRequestParams::from_pem(pem)
            .map_err(|e| anyhow!("the certificate request does not parse: {e}"))?;
        if signer == KUBELET_CLIENT {
            // Upstream's rule for this signer: a node's identity and nothing else.
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
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).context("the CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, ca_key).context("the CA certificate")?;
        let life = seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_DURATION)
            .min(DEFAULT_DURATION);
        let now = time::OffsetDateTime::now_utc();
        request.params.not_before = now - time::Duration::minutes(5);
        request.params.not_after = now + life;
        request.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        request.params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let cert = request
            .signed_by(&issuer)
            .map_err(|e| anyhow!("signing: {e}"))?;
        Ok(cert.pem())
    }
}
