//! The NoSchedule pass over one node (upstream's doNoScheduleTaintingPass): its managed
//! NoSchedule taints are made to match its conditions and `spec.unschedulable`, at once and
//! on every change, so the scheduler never places a pod on a node known to be unfit.

use super::{NodeLifecycleController, labels, node_taints, taints};

impl NodeLifecycleController {
    pub(super) async fn sync_node(&self, name: &str) -> anyhow::Result<()> {
        let Some(node) = self.nodes.get(None, name) else {
            return Ok(());
        };
        let wanted = taints::wanted_no_schedule(&node);
        let current = taints::managed_no_schedule(&node);
        let (add, remove) = taints::diff(&wanted, &current);
        let tainted = if add.is_empty() && remove.is_empty() {
            Ok(())
        } else {
            node_taints::swap(&self.client, &node, add, &remove).await
        };
        // The labels are reconciled even when the taints could not be.
        let labelled = labels::reconcile(&self.client, &node).await;
        tainted.and(labelled)
    }
}
