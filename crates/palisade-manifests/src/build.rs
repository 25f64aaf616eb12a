//! Building the cluster index while objects are taken ([`Build::Index`]).
//!
//! A command that needs only the index (every analyzer command) would
//! otherwise take every object into `Loaded`'s vectors and then build the
//! index on one thread with the other cores idle: at L (100,000 pods,
//! 75,000 policies) that is 0.3 s after the load. Built here, the index
//! grows on the taking thread while the other threads still convert.
//!
//! The index holds pods' labels interned and hands their maps back; those
//! maps were allocated by the converting threads, and freeing them here
//! while those threads still allocate contends for their allocator's lock
//! (it made the load slower than building afterwards). So they are freed
//! at the end, on a thread of their own.

use palisade_policy::{ClusterIndex, ClusterPolicy, Enforcement, Labels, Namespace, NetworkPolicy, Node, Pod};

use crate::Loaded;

/// What a load builds from the objects it reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Build {
    /// The objects, in [`Loaded`]'s vectors (for tools that use them).
    #[default]
    Objects,
    /// The cluster index, built while the objects are taken and returned
    /// by [`Loaded::take_index`]; the object vectors stay empty. Audit
    /// (staged) NetworkPolicies are left out of it when `leave_out_audit`
    /// (they are counted in [`Loaded::staged`] either way).
    Index {
        /// Leave out policies with `palisade.dev/enforcement: audit`.
        leave_out_audit: bool,
    },
}

/// The index being built, and the label maps to free at the end.
#[derive(Debug)]
pub(crate) struct Building {
    index: ClusterIndex,
    leave_out_audit: bool,
    maps: Vec<Labels>,
}

impl Loaded {
    /// An empty load that builds `build`.
    pub(crate) fn for_build(build: Build) -> Loaded {
        let building = match build {
            Build::Objects => None,
            Build::Index { leave_out_audit } => {
                Some(Building { index: ClusterIndex::new(), leave_out_audit, maps: Vec::new() })
            }
        };
        Loaded { building, ..Loaded::default() }
    }

    /// Moves the objects taken so far into the index being built, if one
    /// is. Namespaces, Nodes and cluster policies go before pods, and pods
    /// before policies, of what was taken since the last call.
    pub(crate) fn feed_index(&mut self) {
        let Some(Building { index, leave_out_audit, maps }) = &mut self.building else { return };
        let leave_out_audit = *leave_out_audit;
        let policies = self.policies.drain(..);
        apply_in_order(
            index,
            self.namespaces.drain(..),
            self.nodes.drain(..),
            self.cluster_policies.drain(..),
            self.pods.drain(..),
            policies.filter(|p| !(leave_out_audit && p.enforcement == Enforcement::Audit)),
            |map| {
                if !map.is_empty() {
                    maps.push(map);
                }
            },
        );
    }

    /// The index built while loading, with whatever was taken last (the
    /// workload pods merged in at the end); `None` when none is built.
    pub(crate) fn finish_building(&mut self) -> Option<ClusterIndex> {
        self.feed_index();
        let Building { index, maps, .. } = self.building.take()?;
        // Freed where it costs the caller nothing; if no thread can be
        // started, here.
        if let Err(e) = std::thread::Builder::new().name("free-labels".into()).spawn(move || drop(maps)) {
            drop(e);
        }
        Some(index)
    }
}

/// Applies objects to `index` in the order its links need: namespaces,
/// Nodes and cluster policies before pods, pods before policies. Each
/// pod's label map, once interned, goes to `labels`.
pub(crate) fn apply_in_order(
    index: &mut ClusterIndex,
    namespaces: impl IntoIterator<Item = Namespace>,
    nodes: impl IntoIterator<Item = Node>,
    cluster_policies: impl IntoIterator<Item = ClusterPolicy>,
    pods: impl IntoIterator<Item = Pod>,
    policies: impl IntoIterator<Item = NetworkPolicy>,
    mut labels: impl FnMut(Labels),
) {
    for ns in namespaces {
        index.apply_namespace(ns);
    }
    for node in nodes {
        index.apply_node(node);
    }
    for policy in cluster_policies {
        index.apply_cluster_policy(policy);
    }
    for pod in pods {
        labels(index.apply_pod_returning_labels(pod).1);
    }
    for policy in policies {
        index.apply_policy(policy);
    }
}
