//! The names the local-path provisioner shares with its StorageClass, the node agents and
//! tools that know k3s, and the default class as k3s ships it (for the packaged manifests).

/// The provisioner name (k3s' and rancher/local-path-provisioner's), in classes and on the
/// volumes it makes (`pv.kubernetes.io/provisioned-by`).
pub const PROVISIONER: &str = "rancher.io/local-path";

/// The default class's name.
pub const CLASS_NAME: &str = "local-path";

/// On a volume: the node it was provisioned on (local-path's own annotation).
pub const SELECTED_NODE: &str = "local.path.provisioner/selected-node";

/// On a Node: the directory its agent keeps local-path volumes in (`<dir>/<pv>_<ns>_<claim>`).
/// Nodes without it use [`super::Options::default_storage_dir`].
pub const NODE_STORAGE_DIR: &str = "rkube.io/local-storage-path";

/// On a class (`defaultVolumeType`) or a claim (`volumeType`): `local` (rkube's default) or
/// `hostPath` (local-path's default, created by the kubelet as DirectoryOrCreate).
pub const CLASS_VOLUME_TYPE: &str = "defaultVolumeType";
pub const CLAIM_VOLUME_TYPE: &str = "volumeType";

/// The default StorageClass as k3s ships it: claims without a class get it; volumes are made
/// once a pod using the claim is scheduled, on that pod's node, and deleted with their claim.
pub const STORAGE_CLASS_YAML: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
"#;
