//! The parts rkube ships, as k3s packages its components: each is a manifest the server
//! writes into the manifests directory when it starts (over an older copy, unless the user
//! left a `.skip` file for it), and `--disable NAME` removes instead, so the deploy
//! controller deletes what it had applied. k3s' names, so k3s configs carry over.

use std::path::Path;

use anyhow::Context;

/// `coredns`: the `kube-dns` Service at the cluster DNS address. Its endpoints are every
/// node's own DNS server, which each agent publishes while the Service is this manifest's
/// (`cluster_dns.rs`).
/// `servicelb`: the service load balancer, a controller of the controller manager; its
/// manifest holds no objects and records that it is on.
/// `metrics-server`: the resource metrics API, served by the server process; its manifest
/// lets the `view`, `edit` and `admin` roles read it (metrics-server's own ClusterRole).
/// `local-storage`: the default StorageClass `local-path`; its provisioner is a controller
/// of the controller manager, off with it.
/// `ingress` (k3s: `traefik`): the IngressClass `rkube` of the agents' ingress controller,
/// the default class; off with it, the server's own agent runs no ingress controller.
pub const PARTS: &[&str] = &[
    "coredns",
    "servicelb",
    "metrics-server",
    "local-storage",
    "ingress",
];

/// A `--disable` value: one of PARTS.
pub fn parse_part(s: &str) -> Result<String, String> {
    if PARTS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown packaged component {s:?}: one of {}",
            PARTS.join(", ")
        ))
    }
}

fn manifest(part: &str) -> String {
    match part {
        "coredns" => format!(
            "# Cluster DNS (rkube packaged component; `--disable coredns` removes it).\n\
             # Every node's agent serves DNS on its pod bridge and publishes itself as an\n\
             # endpoint of this Service; `internalTrafficPolicy: Local` keeps a pod's queries\n\
             # on its own node.\n\
             apiVersion: v1\n\
             kind: Service\n\
             metadata:\n  name: kube-dns\n  namespace: kube-system\n  labels:\n    \
             k8s-app: kube-dns\n    kubernetes.io/name: CoreDNS\n    \
             kubernetes.io/cluster-service: \"true\"\n\
             spec:\n  clusterIP: {}\n  internalTrafficPolicy: Local\n  ports:\n  \
             - {{name: dns, port: 53, protocol: UDP, targetPort: 53}}\n  \
             - {{name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}}\n",
            apiserver::DNS_SERVICE_IP
        ),
        "metrics-server" => {
            "# The resource metrics API (rkube packaged component, built into the server;\n\
             # `--disable metrics-server` turns it off): who may read it.\n\
             apiVersion: rbac.authorization.k8s.io/v1\n\
             kind: ClusterRole\n\
             metadata:\n  name: system:aggregated-metrics-reader\n  labels:\n    \
             k8s-app: metrics-server\n    \
             rbac.authorization.k8s.io/aggregate-to-admin: \"true\"\n    \
             rbac.authorization.k8s.io/aggregate-to-edit: \"true\"\n    \
             rbac.authorization.k8s.io/aggregate-to-view: \"true\"\n\
             rules:\n\
             - apiGroups: [metrics.k8s.io]\n  resources: [pods, nodes]\n  \
             verbs: [get, list, watch]\n"
                .to_string()
        }
        "local-storage" => format!(
            "# The default StorageClass (rkube packaged component; the local-path provisioner\n\
             # is built into the controller manager; `--disable local-storage` turns both off).\n\
             # Claims without a class get it; each volume is a directory on the node of the\n\
             # claim's first pod, deleted with its claim.\n{}",
            controllers::volume::localpath::storageclass::STORAGE_CLASS_YAML
        ),
        // The class comes from here rather than from each agent's controller: the agents'
        // identity then needs no right to create IngressClasses, and `--disable ingress`
        // deletes it, as k3s' `--disable traefik` removes Traefik's class.
        "ingress" => format!(
            "# The ingress controller's IngressClass (rkube packaged component; every agent runs\n\
             # the controller on its ports 80 and 443 unless started with --disable-ingress;\n\
             # `--disable ingress` removes the class and the server's own agent's controller).\n\
             # Ingresses without a class get it (the default class).\n\
             apiVersion: networking.k8s.io/v1\n\
             kind: IngressClass\n\
             metadata:\n  name: {}\n  annotations:\n    \
             ingressclass.kubernetes.io/is-default-class: \"true\"\n\
             spec:\n  controller: {}\n",
            ingress::DEFAULT_CLASS,
            ingress::CONTROLLER
        ),
        _ => format!(
            "# The service load balancer (rkube packaged component, built into the controller\n\
             # manager; `--disable {part}` turns it off). This manifest has no objects: it\n\
             # records that the component is on.\n"
        ),
    }
}

/// Writes each enabled part's manifest and removes each disabled one's.
pub fn write(dir: &Path, disabled: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for part in PARTS {
        let path = dir.join(format!("{part}.yaml"));
        if disabled.iter().any(|d| d == part) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
        } else if !dir.join(format!("{part}.yaml.skip")).exists() {
            std::fs::write(&path, manifest(part))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_parts_are_removed_and_skipped_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[]).unwrap();
        let coredns = std::fs::read_to_string(dir.path().join("coredns.yaml")).unwrap();
        let docs = super::super::apply::documents(&coredns).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["spec"]["clusterIP"], "10.43.0.10");
        assert!(
            super::super::apply::documents(&manifest("servicelb"))
                .unwrap()
                .is_empty()
        );

        std::fs::write(dir.path().join("servicelb.yaml"), "# mine\n").unwrap();
        std::fs::write(dir.path().join("servicelb.yaml.skip"), "").unwrap();
        write(dir.path(), &["coredns".to_string()]).unwrap();
        assert!(!dir.path().join("coredns.yaml").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("servicelb.yaml")).unwrap(),
            "# mine\n"
        );
        assert!(
            parse_part("traefik")
                .unwrap_err()
                .contains("coredns, servicelb, metrics-server, local-storage")
        );
        let class = super::super::apply::documents(&manifest("local-storage")).unwrap();
        assert_eq!(class.len(), 1);
        assert_eq!(class[0]["kind"], "StorageClass");
        assert_eq!(class[0]["metadata"]["name"], "local-path");
        assert_eq!(class[0]["provisioner"], "rancher.io/local-path");
        assert_eq!(class[0]["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(class[0]["reclaimPolicy"], "Delete");
        assert_eq!(
            class[0]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
        let ingress_class = super::super::apply::documents(&manifest("ingress")).unwrap();
        assert_eq!(ingress_class.len(), 1);
        assert_eq!(ingress_class[0]["kind"], "IngressClass");
        assert_eq!(ingress_class[0]["metadata"]["name"], "rkube");
        assert_eq!(ingress_class[0]["spec"]["controller"], "rkube.io/ingress");
        assert_eq!(
            ingress_class[0]["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
            "true"
        );
    }
}
