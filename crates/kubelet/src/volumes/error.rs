//! A volume's failed set-up as the pod's `FailedMount` event says it, in upstream's words for
//! each stage (processing the claim, the plugin's mounter, node affinity, the set-up).

/// A volume's failed set-up, shown as upstream's `FailedMount` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeError {
    /// The pod's volume, or the PersistentVolume for failures of a claim's volume.
    pub volume: String,
    pub message: String,
    pub stage: MountStage,
}

/// Where a volume's set-up failed; each has upstream's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountStage {
    /// The volume manager could not work out what to mount (a claim not bound yet).
    Process,
    /// The volume's plugin refused it before mounting (a `local` path missing).
    NewMounter,
    /// A persistent volume's node affinity excludes this node.
    NodeAffinity,
    SetUp,
}

impl VolumeError {
    pub fn set_up(volume: &str, message: String) -> Self {
        VolumeError {
            volume: volume.to_owned(),
            message,
            stage: MountStage::SetUp,
        }
    }
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (v, m) = (&self.volume, &self.message);
        match self.stage {
            // Upstream lists every unmounted volume; each failing one is its own event here.
            MountStage::Process => write!(
                f,
                "Unable to attach or mount volumes: unmounted volumes=[{v}], unattached volumes=[{v}], failed to process volumes=[{v}]: {m}"
            ),
            MountStage::NewMounter => write!(
                f,
                "MountVolume.NewMounter initialization failed for volume {v:?} : {m}"
            ),
            MountStage::NodeAffinity => write!(
                f,
                "MountVolume.NodeAffinity check failed for volume {v:?} : {m}"
            ),
            MountStage::SetUp => write!(f, "MountVolume.SetUp failed for volume {v:?} : {m}"),
        }
    }
}

impl std::error::Error for VolumeError {}
