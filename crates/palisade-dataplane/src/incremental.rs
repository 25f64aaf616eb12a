//! Incremental compile and render: a change recompiles and re-renders only
//! what it can affect, and the transaction is the difference of those parts.
//!
//! The table is made of parts with one owner each:
//! - the base (base chains, dispatch maps, anti-spoofing sets, the
//!   related chain), which depends on every local pod and is cheap to
//!   rebuild;
//! - the cluster's pod-address sets (`cluster/…`), which depend on every
//!   pod of the cluster and are only ever patched element by element;
//! - each local pod (`pod/<ns>/<pod>/…`: its chains and counters);
//! - each policy some local pod lists (`policy/<ns>/<name>/…`: its chains);
//! - the sets rules look up and the chains long isolation lists go
//!   through (`shared/<kind>/<id>`), shared by every rule whose set would
//!   hold the same elements and every pod with the same list, and counted:
//!   a shared object goes when the last pod or policy that refers to it
//!   does.
//!
//! The costly part is a policy's sets (peer pods, named ports). A policy is
//! touched only when it changed, when a changed pod went into its sets
//! before or may go into them now ([`ClusterIndex::pod_may_affect`]), or when a
//! namespace was relabelled and the policy selects namespaces. When only
//! pods changed, its sets follow them from per-rule members (which pod put
//! which addresses and named-port entries in) without recompiling; when its
//! rules keep their shape, the changed elements are patched into the table
//! (`patch.rs`); otherwise it is recompiled and its part re-rendered. The
//! result is always what a full [`compile`](crate::compile()) and [`render`](crate::render::render)
//! would give; tests check this on random change sequences.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::net::IpAddr;

use palisade_policy::{Changes, ClusterIndex, Direction, ObjectKey, PodId, PolicyId};

use crate::compile::{
    Compiled, NodeScope, PodDeps, cluster_addrs, cluster_member_addrs, compile_node, compile_policy, is_local,
    is_named_candidate, local_pod, member_addrs, named_entries, needed_policies,
};
use crate::members::{PodCounts, PodKeys, PodRef, PolicyMembers};
use crate::patch::{patch_policy, patch_set};
use crate::program::{LocalPod, NodeOptions, PodGate, PolicyProgram, Program};
use crate::render::{
    SHARED_PREFIX, base_chains, cluster_set, listed_all, pair_element, pod_prefix, policy_prefix, render_pod,
    render_policy, render_with_shared,
};
use crate::render_tiers::{render_tier, tier_prefix};
use crate::ruleset::Table;
use crate::transaction::{Transaction, diff};
use rustc_hash::FxBuildHasher;

mod tiers;

/// Above this many changed objects, rebuilding everything is cheaper than
/// testing each change against each policy.
const REBUILD_ABOVE: usize = 2_000;

/// What one update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Policies recompiled.
    pub policies_compiled: usize,
    /// Parts of the table re-rendered (base, pods, policies).
    pub parts_rendered: usize,
    /// Policies whose sets were patched element by element instead.
    pub policies_patched: usize,
    /// Policies whose pod-peer sets were updated from the changed pods alone
    /// (no recompile).
    pub policies_updated: usize,
    /// Whether everything was rebuilt (a very large change).
    pub rebuilt: bool,
}

/// One node's program and table, kept up to date change by change. `S`
/// hashes pod names into buckets of the pod identities (exact whatever it
/// returns; tests use a colliding one).
#[derive(Clone, Debug)]
pub struct Incremental<S = FxBuildHasher> {
    scope: NodeScope,
    /// The identities of the pods recorded in `deps` and `members`.
    keys: PodKeys<S>,
    program: Program,
    /// Per compiled policy: the pods that went into its sets.
    deps: BTreeMap<ObjectKey, PodDeps>,
    /// Per compiled policy: which pods put which addresses into each rule's
    /// pod-peer set.
    members: BTreeMap<ObjectKey, PolicyMembers>,
    /// Local pods.
    local: BTreeSet<ObjectKey>,
    /// The addresses each active pod of the cluster puts in the cluster's
    /// pod-address sets.
    cluster: PodCounts<IpAddr>,
    /// The interfaces the local pods were last compiled with.
    ifaces: BTreeMap<IpAddr, String>,
    /// The shared sets and chains each local pod and compiled policy
    /// refers to.
    shared_of: BTreeMap<ObjectKey, BTreeSet<String>>,
    /// How many pods and policies refer to each shared set or chain.
    shared_refs: BTreeMap<String, usize>,
    rendered: Table,
}

/// The owner of a part of the table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Base,
    Pod(ObjectKey),
    Policy(ObjectKey),
    /// A cluster policy (`tier/<Kind>/<name>/…`).
    Tier(ObjectKey),
}

impl Owner {
    /// First name the owner can own (names are ordered, so an owner's names
    /// form one run from here, except the base's). Namespace and object
    /// names hold no `/`, so no owner's prefix starts another's.
    fn prefix(&self) -> String {
        match self {
            Owner::Base => String::new(),
            Owner::Pod(p) => pod_prefix(p),
            Owner::Policy(p) => policy_prefix(p),
            Owner::Tier(p) => tier_prefix(p),
        }
    }
}

/// Whether `name` belongs to the owner whose [`Owner::prefix`] is `prefix`
/// (the base, whose prefix is empty, owns what no pod or policy does, and
/// not the cluster's sets, which are only patched, nor the shared sets,
/// which are counted).
fn owned(prefix: &str, name: &str) -> bool {
    if prefix.is_empty() {
        !["pod/", "policy/", "tier/", "cluster/", SHARED_PREFIX].iter().any(|p| name.starts_with(p))
    } else {
        name.starts_with(prefix)
    }
}

/// Moves the entries whose names `owned` by `prefix` from `from` into `into`.
fn take_owned<V>(from: &mut BTreeMap<String, V>, into: &mut BTreeMap<String, V>, prefix: &str) {
    let names: Vec<String> = if prefix.is_empty() {
        from.keys().filter(|n| owned(prefix, n)).cloned().collect()
    } else {
        from.range(prefix.to_string()..).take_while(|(n, _)| n.starts_with(prefix)).map(|(n, _)| n.clone()).collect()
    };
    for name in names {
        if let Some(v) = from.remove(&name) {
            into.insert(name, v);
        }
    }
}

fn take_part(r: &mut Table, owner: &Owner, into: &mut Table) {
    let prefix = owner.prefix();
    take_owned(&mut r.sets, &mut into.sets, &prefix);
    take_owned(&mut r.chains, &mut into.chains, &prefix);
    let counters: Vec<String> = r.counters.iter().filter(|c| owned(&prefix, c)).cloned().collect();
    for c in counters {
        r.counters.remove(&c);
        into.counters.insert(c);
    }
}

fn put_all(r: &mut Table, part: Table) {
    r.sets.extend(part.sets);
    r.chains.extend(part.chains);
    r.counters.extend(part.counters);
}

impl Incremental {
    /// Compiles and renders everything for `scope`.
    #[must_use]
    pub fn new(index: &ClusterIndex, scope: NodeScope, ifaces: &BTreeMap<IpAddr, String>) -> Self {
        Self::with_hasher(index, scope, ifaces)
    }

    /// [`Incremental::new`] with the new-pod gate `gate`, which every
    /// later update keeps.
    #[must_use]
    pub fn with_gate(index: &ClusterIndex, scope: NodeScope, ifaces: &BTreeMap<IpAddr, String>, gate: PodGate) -> Self {
        Self::with_hasher_and_gate(index, scope, ifaces, gate)
    }

    /// [`Incremental::new`] with the node's `options` (the new-pod gate and
    /// the flow log), which every later update keeps.
    #[must_use]
    pub fn with_options(
        index: &ClusterIndex,
        scope: NodeScope,
        ifaces: &BTreeMap<IpAddr, String>,
        options: NodeOptions,
    ) -> Self {
        Self::with_hasher_and_options(index, scope, ifaces, options)
    }
}

impl<S: BuildHasher + Default> Incremental<S> {
    /// [`Incremental::new`] with pod names hashed by `S`.
    #[must_use]
    pub fn with_hasher(index: &ClusterIndex, scope: NodeScope, ifaces: &BTreeMap<IpAddr, String>) -> Self {
        Self::with_hasher_and_gate(index, scope, ifaces, PodGate::default())
    }

    /// [`Incremental::with_gate`] with pod names hashed by `S`.
    #[must_use]
    pub fn with_hasher_and_gate(
        index: &ClusterIndex,
        scope: NodeScope,
        ifaces: &BTreeMap<IpAddr, String>,
        gate: PodGate,
    ) -> Self {
        Self::with_hasher_and_options(index, scope, ifaces, NodeOptions { gate, flow_log: None })
    }

    /// [`Incremental::with_options`] with pod names hashed by `S`.
    #[must_use]
    pub fn with_hasher_and_options(
        index: &ClusterIndex,
        scope: NodeScope,
        ifaces: &BTreeMap<IpAddr, String>,
        options: NodeOptions,
    ) -> Self {
        let mut keys = PodKeys::default();
        let Compiled { mut program, deps, members } = compile_node(index, &scope, ifaces, &mut keys);
        program.gate = options.gate;
        program.flow_log = options.flow_log;
        let (rendered, shared_of) = render_with_shared(&program);
        let mut shared_refs: BTreeMap<String, usize> = BTreeMap::new();
        for name in shared_of.values().flatten() {
            *shared_refs.entry(name.clone()).or_default() += 1;
        }
        let mut cluster = PodCounts::default();
        for (pod, addrs) in cluster_addrs(index) {
            cluster.add(keys.id(index.pod_name(pod)), addrs);
        }
        Incremental {
            local: program.pods.keys().cloned().collect(),
            cluster,
            keys,
            scope,
            program,
            deps,
            members,
            ifaces: ifaces.clone(),
            shared_of,
            shared_refs,
            rendered,
        }
    }

    /// The program as it stands.
    #[must_use]
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The table as it stands (what the last transaction left in the kernel).
    #[must_use]
    pub fn rendered(&self) -> &Table {
        &self.rendered
    }

    /// The node's scope.
    #[must_use]
    pub fn scope(&self) -> &NodeScope {
        &self.scope
    }

    /// How many pods the bookkeeping holds an identity for (at most the
    /// pods the index has held since the last update: deleted pods are
    /// forgotten).
    #[must_use]
    pub fn pod_identities(&self) -> usize {
        self.keys.len()
    }

    fn local_pods(&self, index: &ClusterIndex, ifaces: &BTreeMap<IpAddr, String>) -> BTreeMap<ObjectKey, LocalPod> {
        self.local
            .iter()
            .filter_map(|key| Some((key.clone(), local_pod(index, index.pod_id_of(key)?, ifaces))))
            .collect()
    }

    /// Brings the program and table up to `index` after `changes` (what
    /// changed in the index since the last update); returns the transaction
    /// from the previous table to the new one, `None` when the table is
    /// unchanged. `ifaces` may change at any time: local pods are always
    /// refreshed (they are few).
    pub fn update(
        &mut self,
        index: &ClusterIndex,
        changes: &Changes,
        ifaces: &BTreeMap<IpAddr, String>,
    ) -> (Option<Transaction>, UpdateStats) {
        let count = changes.pods.len()
            + changes.policies.len()
            + changes.namespaces.len()
            + changes.cluster_policies.len()
            + changes.nodes.len();
        if count > REBUILD_ABOVE {
            return self.rebuild(index, ifaces);
        }
        let mut stats = UpdateStats::default();
        let mut local_changed = false;
        for key in &changes.pods {
            let local = index.pod_id_of(key).is_some_and(|id| is_local(index, &self.scope, id));
            local_changed |= local || self.local.contains(key);
            if local {
                self.local.insert(key.clone());
            } else {
                self.local.remove(key);
            }
        }
        // Local pods (addresses, interfaces, isolating policies) change only
        // with a local pod, a policy or an interface.
        let ifaces_changed = *ifaces != self.ifaces;
        // With cluster policies, a namespace relabel can change which of
        // them select a local pod.
        let tiers_moved = !changes.cluster_policies.is_empty()
            || (!changes.namespaces.is_empty() && !index.cluster_policies().is_empty());
        let refresh = local_changed || !changes.policies.is_empty() || tiers_moved || ifaces_changed;
        let mut dirty: BTreeSet<Owner> = BTreeSet::new();
        let relisted = if refresh { self.refresh_local_pods(index, ifaces, &mut dirty) } else { BTreeSet::new() };
        if ifaces_changed {
            self.ifaces.clone_from(ifaces);
        }
        let needed = needed_policies(&self.program.pods);
        let changed_pods: Vec<(PodRef, Option<PodId>)> =
            changes.pods.iter().map(|k| (self.keys.id(&k.path()), index.pod_id_of(k))).collect();
        // Element-level patches: the cluster's pod addresses, and policies
        // whose rules kept their shape.
        let (mut patched_old, mut patched_new) = (Table::default(), Table::default());
        self.update_cluster(index, &changed_pods, &mut patched_old, &mut patched_new);
        for name in &needed {
            let Some(id) = index.policy_id_of(name) else { continue };
            if relisted.contains(name) {
                dirty.insert(Owner::Policy(name.clone()));
            }
            let stale = !self.program.policies.contains_key(name)
                || changes.policies.contains(name)
                || (!changes.namespaces.is_empty() && index.policy_selects_namespaces(id))
                || changed_pods.iter().any(|(key, pod)| {
                    self.deps.get(name).is_some_and(|d| d.contains(key))
                        || pod.is_some_and(|p| index.pod_may_affect(id, p))
                });
            if !stale {
                continue;
            }
            // Only pods changed for it: update its pod-peer sets from the
            // changed pods alone; otherwise recompile it.
            let pods_only = !changes.policies.contains(name) && changes.namespaces.is_empty();
            let program = match self.program.policies.get(name) {
                Some(old) if pods_only => {
                    stats.policies_updated += 1;
                    self.update_members(index, name, id, old.clone(), &changed_pods)
                }
                _ => {
                    stats.policies_compiled += 1;
                    let (program, deps, members) = compile_policy(index, id, &self.scope, &mut self.keys);
                    self.deps.insert(name.clone(), deps);
                    self.members.insert(name.clone(), members);
                    program
                }
            };
            match self.program.policies.get(name) {
                Some(old) if *old == program => {}
                Some(old)
                    if !dirty.contains(&Owner::Policy(name.clone()))
                        && patch_policy(&mut self.rendered, old, &program, &mut patched_old, &mut patched_new) =>
                {
                    stats.policies_patched += 1;
                }
                _ => {
                    dirty.insert(Owner::Policy(name.clone()));
                }
            }
            self.program.policies.insert(name.clone(), program);
        }
        let gone: Vec<ObjectKey> = self.program.policies.keys().filter(|n| !needed.contains(*n)).cloned().collect();
        for name in gone {
            self.program.policies.remove(&name);
            self.deps.remove(&name);
            self.members.remove(&name);
            dirty.insert(Owner::Policy(name));
        }
        self.update_tiers(index, changes, &changed_pods, &mut dirty, (&mut patched_old, &mut patched_new), &mut stats);
        // Every policy that recorded a deleted pod was updated or dropped
        // above: its identity can go.
        for (key, (_, pod)) in changes.pods.iter().zip(&changed_pods) {
            if pod.is_none() {
                self.keys.forget(&key.path());
            }
        }
        if dirty.is_empty() && patched_old.sets.is_empty() {
            return (None, stats);
        }
        stats.parts_rendered = dirty.len();
        let tx = self.render_parts(&dirty, patched_old, patched_new);
        (tx, stats)
    }

    /// Brings the cluster's pod addresses up to date for the changed pods,
    /// patching the sets' elements that came or went.
    fn update_cluster(
        &mut self,
        index: &ClusterIndex,
        changed: &[(PodRef, Option<PodId>)],
        before: &mut Table,
        after: &mut Table,
    ) {
        // Each touched address and whether it was in the set before.
        let mut touched: BTreeMap<IpAddr, bool> = BTreeMap::new();
        for (dep, pod) in changed {
            let new = pod.map_or(&[][..], |p| cluster_member_addrs(index, p));
            let old = self.cluster.of(*dep).to_vec();
            for addr in old.iter().chain(new) {
                touched.entry(*addr).or_insert_with(|| self.cluster.contains(addr));
            }
            self.cluster.remove(*dep);
            self.cluster.add(*dep, new);
        }
        for v6 in [false, true] {
            let (mut gone, mut fresh) = (Vec::new(), Vec::new());
            for (addr, was) in touched.iter().filter(|(a, _)| a.is_ipv6() == v6) {
                match (*was, self.cluster.contains(addr)) {
                    (true, false) => {
                        self.program.cluster_addrs.remove(addr);
                        gone.push(pair_element(*addr));
                    }
                    (false, true) => {
                        self.program.cluster_addrs.insert(*addr);
                        fresh.push(pair_element(*addr));
                    }
                    _ => {}
                }
            }
            if !gone.is_empty() || !fresh.is_empty() {
                patch_set(&mut self.rendered, cluster_set(v6), gone, fresh, before, after);
            }
        }
    }

    /// Recomputes the local pods, marking the pods (and the base) whose
    /// entries changed dirty; returns the policies for which the directions
    /// pods list them changed.
    fn refresh_local_pods(
        &mut self,
        index: &ClusterIndex,
        ifaces: &BTreeMap<IpAddr, String>,
        dirty: &mut BTreeSet<Owner>,
    ) -> BTreeSet<ObjectKey> {
        let pods = self.local_pods(index, ifaces);
        for name in pods.keys().chain(self.program.pods.keys()) {
            if pods.get(name) != self.program.pods.get(name) {
                dirty.insert(Owner::Pod(name.clone()));
                dirty.insert(Owner::Base);
            }
        }
        let (old, new) = (listed_all(&self.program.pods), listed_all(&pods));
        let relisted =
            old.keys().chain(new.keys()).filter(|n| old.get(*n) != new.get(*n)).map(|n| (*n).clone()).collect();
        self.program.pods = pods;
        relisted
    }

    /// Everything compiled afresh; the transaction from the current table.
    fn rebuild(
        &mut self,
        index: &ClusterIndex,
        ifaces: &BTreeMap<IpAddr, String>,
    ) -> (Option<Transaction>, UpdateStats) {
        let options = NodeOptions { gate: self.program.gate.clone(), flow_log: self.program.flow_log };
        let fresh = Self::with_hasher_and_options(index, self.scope.clone(), ifaces, options);
        let tx = diff(&self.rendered, &fresh.rendered);
        let policies = fresh.program.policies.len() + fresh.program.tiers.len();
        let stats = UpdateStats {
            policies_compiled: policies,
            parts_rendered: 1 + fresh.program.pods.len() + policies,
            policies_patched: 0,
            policies_updated: 0,
            rebuilt: true,
        };
        *self = fresh;
        (tx, stats)
    }

    /// `old` with its rules' pod-peer sets brought up to date for the
    /// changed pods, from the recorded members (no scan of the cluster).
    fn update_members(
        &mut self,
        index: &ClusterIndex,
        name: &ObjectKey,
        id: PolicyId,
        mut program: PolicyProgram,
        changed: &[(PodRef, Option<PodId>)],
    ) -> PolicyProgram {
        let members = self.members.entry(name.clone()).or_default();
        let deps = self.deps.entry(name.clone()).or_default();
        for dir in Direction::BOTH {
            for (r, rule) in program.rules_mut(dir).iter_mut().enumerate() {
                let spec = &index.policy(id).policy().rules(dir)[r];
                members.entry((dir.slot(), r)).or_default().update(
                    rule,
                    changed,
                    deps,
                    |p| index.rule_pod_peers_match(id, dir, r, p).then(|| member_addrs(index, p)),
                    |p| is_named_candidate(index, id, dir, r, &self.scope, p).then(|| named_entries(index, p, spec)),
                );
            }
        }
        program
    }

    /// Counts the shared objects `owner` refers to now (`None`: it is gone)
    /// instead of those it referred to; those no one refers to any more
    /// are added to `released`.
    fn recount(&mut self, owner: &ObjectKey, now: Option<BTreeSet<String>>, released: &mut BTreeSet<String>) {
        for name in now.iter().flatten() {
            *self.shared_refs.entry(name.clone()).or_default() += 1;
        }
        for name in self.shared_of.remove(owner).unwrap_or_default() {
            if let Some(n) = self.shared_refs.get_mut(&name) {
                *n -= 1;
                if *n == 0 {
                    self.shared_refs.remove(&name);
                    released.insert(name);
                }
            }
        }
        if let Some(now) = now {
            self.shared_of.insert(owner.clone(), now);
        }
    }

    /// Re-renders the `dirty` parts; returns the transaction for them and
    /// for the sets already patched in place. The shared sets re-rendered
    /// policies refer to are diffed against what the table holds (taking
    /// back the patches already made to them), and those no policy refers
    /// to any more are deleted.
    fn render_parts(
        &mut self,
        dirty: &BTreeSet<Owner>,
        mut patched_old: Table,
        mut patched_new: Table,
    ) -> Option<Transaction> {
        let mut old = Table::default();
        let mut new = Table::default();
        let listed = listed_all(&self.program.pods);
        let mut released: BTreeSet<String> = BTreeSet::new();
        let mut counts: Vec<(&ObjectKey, Option<BTreeSet<String>>)> = Vec::new();
        for owner in dirty {
            take_part(&mut self.rendered, owner, &mut old);
            match owner {
                Owner::Base => base_chains(&self.program, &mut new),
                Owner::Pod(name) => {
                    let shared = self.program.pods.get(name).map(|pod| render_pod(&mut new, name, pod, &self.program));
                    counts.push((name, shared));
                }
                Owner::Tier(name) => {
                    let shared = self
                        .program
                        .tiers
                        .get(name)
                        .map(|tier| render_tier(&mut new, name, tier, self.program.flow_log.as_ref()));
                    counts.push((name, shared));
                }
                Owner::Policy(name) => {
                    let shared = self.program.policies.get(name).map(|policy| {
                        render_policy(&mut new, name, policy, listed.get(name).copied().unwrap_or_default())
                    });
                    counts.push((name, shared));
                }
            }
        }
        drop(listed);
        for (owner, shared) in counts {
            self.recount(owner, shared, &mut released);
        }
        // Shared chains and sets: what the table holds before this update
        // goes to the old side (for sets, undoing this update's patches of
        // them, which the fresh render already has); unreferenced ones go.
        let fresh: Vec<String> = new.chains.keys().filter(|n| n.starts_with(SHARED_PREFIX)).cloned().collect();
        for name in fresh.iter().chain(released.iter().filter(|n| !new.chains.contains_key(*n))) {
            if let Some(chain) = self.rendered.chains.remove(name) {
                old.chains.insert(name.clone(), chain);
            }
        }
        let fresh: Vec<String> = new.sets.keys().filter(|n| n.starts_with(SHARED_PREFIX)).cloned().collect();
        for name in fresh.iter().chain(released.iter().filter(|n| !new.sets.contains_key(*n))) {
            if let Some(mut set) = self.rendered.sets.remove(name) {
                if let (Some(gone), Some(came)) = (patched_old.sets.remove(name), patched_new.sets.remove(name)) {
                    for e in &came.elements {
                        set.elements.remove(e);
                    }
                    set.elements.extend(gone.elements);
                }
                old.sets.insert(name.clone(), set);
            }
        }
        // The transaction covers the re-rendered parts and the patched sets
        // (already applied to the table); only the former go back in whole.
        let mut tx_new = patched_new;
        put_all(&mut tx_new, new.clone());
        put_all(&mut old, patched_old);
        let tx = diff(&old, &tx_new);
        put_all(&mut self.rendered, new);
        tx
    }
}
