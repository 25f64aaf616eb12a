//! What each compiled rule's pod-dependent sets are made of, per pod, so
//! that a pod change updates them from that pod alone.

use std::collections::BTreeMap;
use std::net::IpAddr;

use palisade_policy::Protocol;
use rustc_hash::FxHashMap;

/// A resolved named port: destination address, protocol, port.
pub(crate) type NamedEntry = (IpAddr, Protocol, u16);

/// A set built from what each pod contributes, with a count per element so
/// that two pods sharing an element (an address reused while the old pod
/// terminates) do not remove it from each other.
#[derive(Clone, Debug)]
pub(crate) struct PodCounts<T> {
    counts: BTreeMap<T, u32>,
    by_pod: FxHashMap<u64, Vec<T>>,
}

impl<T> Default for PodCounts<T> {
    fn default() -> Self {
        PodCounts { counts: BTreeMap::new(), by_pod: FxHashMap::default() }
    }
}

impl<T: Ord + Copy> PodCounts<T> {
    /// Records what `pod` contributes (once per pod).
    pub(crate) fn add(&mut self, pod: u64, items: &[T]) {
        if self.by_pod.contains_key(&pod) {
            return;
        }
        for item in items {
            *self.counts.entry(*item).or_default() += 1;
        }
        self.by_pod.insert(pod, items.to_vec());
    }

    /// Forgets what `pod` contributed.
    pub(crate) fn remove(&mut self, pod: u64) {
        for item in self.by_pod.remove(&pod).unwrap_or_default() {
            if let Some(n) = self.counts.get_mut(&item) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&item);
                }
            }
        }
    }

    /// The set: distinct elements, sorted.
    pub(crate) fn set(&self) -> Vec<T> {
        self.counts.keys().copied().collect()
    }
}

/// One rule's pod-peer addresses and named-port entries, per pod.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleMembers {
    /// Addresses of the pods its pod peers match.
    pub(crate) addrs: PodCounts<IpAddr>,
    /// Named-port entries of its candidate destination pods.
    pub(crate) named: PodCounts<NamedEntry>,
}

/// Members of each rule, by (direction slot, rule index).
pub(crate) type PolicyMembers = BTreeMap<(usize, usize), RuleMembers>;
