//! What each compiled rule's pod-dependent sets are made of, per pod, so
//! that a pod change updates them from that pod alone.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::net::IpAddr;

use palisade_policy::{PodId, Protocol};
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use crate::program::RuleProgram;

/// A pod as the dataplane's bookkeeping knows it: an id that stands for
/// exactly one `namespace/name` (see [`PodKeys`]). Never a hash of the name:
/// pod names are chosen by tenants, and two pods sharing an identity would
/// move each other's addresses in and out of peer sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PodRef(u64);

/// Exact pod identities: each distinct `namespace/name` gets its own
/// [`PodRef`], compared by the whole key (the hasher only places keys in
/// buckets), and an id is never handed out twice. A deleted pod's key is
/// forgotten once the update that saw the deletion is done, so the table
/// holds only the pods the index holds; a pod created again under the same
/// name gets a fresh id, which no stale record can match.
#[derive(Clone, Debug)]
pub(crate) struct PodKeys<S = FxBuildHasher> {
    ids: HashMap<Box<str>, PodRef, S>,
    next: u64,
}

impl<S: BuildHasher + Default> Default for PodKeys<S> {
    fn default() -> Self {
        PodKeys { ids: HashMap::default(), next: 0 }
    }
}

impl<S: BuildHasher> PodKeys<S> {
    /// The id of the pod `key` (`namespace/name`), given out on first use.
    pub(crate) fn id(&mut self, key: &str) -> PodRef {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = PodRef(self.next);
        self.next += 1;
        self.ids.insert(key.into(), id);
        id
    }

    /// Forgets `key` (its pod was deleted).
    pub(crate) fn forget(&mut self, key: &str) {
        self.ids.remove(key);
    }

    /// Pods with an id.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A resolved named port: destination address, protocol, port.
pub(crate) type NamedEntry = (IpAddr, Protocol, u16);

/// A set built from what each pod contributes, with a count per element so
/// that two pods sharing an element (an address reused while the old pod
/// terminates) do not remove it from each other.
#[derive(Clone, Debug)]
pub(crate) struct PodCounts<T> {
    counts: BTreeMap<T, u32>,
    by_pod: FxHashMap<PodRef, Vec<T>>,
}

impl<T> Default for PodCounts<T> {
    fn default() -> Self {
        PodCounts { counts: BTreeMap::new(), by_pod: FxHashMap::default() }
    }
}

impl<T: Ord + Copy> PodCounts<T> {
    /// Records what `pod` contributes (once per pod).
    pub(crate) fn add(&mut self, pod: PodRef, items: &[T]) {
        if self.by_pod.contains_key(&pod) {
            return;
        }
        for item in items {
            *self.counts.entry(*item).or_default() += 1;
        }
        self.by_pod.insert(pod, items.to_vec());
    }

    /// Forgets what `pod` contributed.
    pub(crate) fn remove(&mut self, pod: PodRef) {
        for item in self.by_pod.remove(&pod).unwrap_or_default() {
            if let Some(n) = self.counts.get_mut(&item) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&item);
                }
            }
        }
    }

    /// What `pod` contributes, if it is recorded.
    pub(crate) fn contribution(&self, pod: PodRef) -> Option<&[T]> {
        self.by_pod.get(&pod).map(Vec::as_slice)
    }

    /// Records what `pod` contributes now (`None`: nothing, it is no
    /// member); returns whether that changed anything.
    pub(crate) fn replace(&mut self, pod: PodRef, now: Option<&[T]>) -> bool {
        if self.contribution(pod) == now {
            return false;
        }
        self.remove(pod);
        if let Some(items) = now {
            self.add(pod, items);
        }
        true
    }

    /// What `pod` contributes now.
    pub(crate) fn of(&self, pod: PodRef) -> &[T] {
        self.by_pod.get(&pod).map_or(&[], Vec::as_slice)
    }

    /// Whether some pod contributes `item`.
    pub(crate) fn contains(&self, item: &T) -> bool {
        self.counts.contains_key(item)
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

impl RuleMembers {
    /// Brings `rule`'s pod-peer and named-port sets up to date for the
    /// `changed` pods alone, from what each contributes now: `addrs(pod)`,
    /// the addresses it puts in the peer set (`None`: no pod peer matches
    /// it), and `named(pod)`, its named-port entries (`None`: not a
    /// destination the rule's named ports resolve on). Pods that contribute
    /// are recorded in `deps`. A set is rebuilt only when a contribution
    /// moved (a relabel that keeps a pod in, or out, costs a lookup).
    pub(crate) fn update<'a>(
        &mut self,
        rule: &mut RuleProgram,
        changed: &[(PodRef, Option<PodId>)],
        deps: &mut FxHashSet<PodRef>,
        addrs: impl Fn(PodId) -> Option<&'a [IpAddr]>,
        named: impl Fn(PodId) -> Option<Vec<NamedEntry>>,
    ) {
        if let Some(pods) = rule.peers.as_mut().and_then(|p| p.pods.as_mut()) {
            let mut moved = false;
            for (dep, pod) in changed {
                let now = pod.and_then(&addrs);
                if now.is_some() {
                    deps.insert(*dep);
                }
                moved |= self.addrs.replace(*dep, now);
            }
            if moved {
                *pods = self.addrs.set();
            }
        }
        if let Some(ports) = rule.ports.as_mut().filter(|p| p.has_named) {
            let mut moved = false;
            for (dep, pod) in changed {
                let now = pod.and_then(&named);
                if now.is_some() {
                    deps.insert(*dep);
                }
                moved |= self.named.replace(*dep, now.as_deref());
            }
            if moved {
                ports.named = self.named.set();
            }
        }
    }
}

/// Members of each rule, by (direction slot, rule index).
pub(crate) type PolicyMembers = BTreeMap<(usize, usize), RuleMembers>;
