//! ImageLocality: nodes that already have the pod's images score higher, by image size
//! scaled by how many nodes have the image (so one image does not pull every pod to one node).

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Snapshot};
use crate::nodeinfo::NodeInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

/// An image name as nodes report it: a bare name means `:latest`, Docker Hub names gain
/// `docker.io/library/`.
pub fn normalized_image(image: &str) -> String {
    let has_tag = image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'));
    let image = if has_tag {
        image.to_string()
    } else {
        format!("{image}:latest")
    };
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, image.contains('/')) {
        (true, _) => image,
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    }
}

struct Spread {
    /// The pod's images, normalized once per pod.
    images: Vec<String>,
    total_nodes: usize,
    /// image -> nodes having it
    counts: std::collections::HashMap<String, usize>,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }
    fn pre_score(&self, state: &mut CycleState, snapshot: &Snapshot<'_>, _feasible: &[usize]) {
        let mut counts = std::collections::HashMap::new();
        let imgs = images(state);
        for img in imgs.iter().cloned() {
            let n = snapshot
                .nodes
                .iter()
                .filter(|n| n.images.contains(&img))
                .count();
            counts.insert(img, n);
        }
        state.write(
            "ImageLocality",
            Spread {
                images: imgs,
                total_nodes: snapshot.nodes.len(),
                counts,
            },
        );
    }
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(spread) = state.read::<Spread>("ImageLocality") else {
            return 0;
        };
        let imgs = &spread.images;
        let mut sum = 0i64;
        for img in imgs {
            if let Some(size) = node.image_sizes.get(img) {
                let ratio = spread.counts.get(img).copied().unwrap_or(0) as f64
                    / spread.total_nodes.max(1) as f64;
                sum += (*size as f64 * ratio) as i64;
            }
        }
        let max = MAX_CONTAINER_THRESHOLD * imgs.len().max(1) as i64;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

fn images(state: &CycleState) -> Vec<String> {
    state
        .pod
        .pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.as_deref())
                .map(normalized_image)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalized_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalized_image("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            normalized_image("bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
        assert_eq!(
            normalized_image("localhost:5000/pause:3.10"),
            "localhost:5000/pause:3.10"
        );
    }
}
