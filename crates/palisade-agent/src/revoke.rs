//! Revocation: after the kernel enforces a change, the established
//! connections the new state denies are deleted from conntrack, so that
//! their next packet meets the policies (and is dropped) instead of riding
//! on `ct state established`.
//!
//! ```text
//! journal of the change --affected--> endpoint addresses
//!   --Kernel::connections--> conntrack entries involving them
//!   --decide (the engine's evaluate, as `palisade check`)--> denied entries
//!   --Kernel::delete_connections--> gone (by tuple, zone and id)
//! ```
//!
//! Which connections a change can deny: a policy only judges the traffic
//! of the pods it selects; a pod's or a namespace's labels only change the
//! verdicts of flows that pod (those pods) take part in. So the affected
//! endpoints are the changed pods, the pods of relabelled namespaces, and
//! the local pods a changed policy selects or could admit traffic of (see
//! [`affected`]); a Node change, a restart, or a failed apply affect every
//! local pod. Only the sides this node enforces are judged:
//! egress when the source is a local pod, ingress when the destination is.
//! Connections to or from the node's own addresses never cross the
//! forward hook, which is all Palisade filters, and are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use palisade_dataplane::Program;
use palisade_dataplane::conntrack::{Entry, SCTP, Sides, TCP, UDP};
use palisade_policy::{Action, Changes, ClusterIndex, Direction, Flow, ObjectKey, Protocol, SideVerdict, Tier};
use tracing::{error, info};

use crate::kernel::Kernel;
use crate::metrics::{Metrics, RevokeLabel};

/// Why a connection was revoked: what denies it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// NetworkPolicies isolate the pod and no rule admits the flow.
    NetworkPolicy,
    /// An Admin-tier rule (AdminNetworkPolicy, ClusterNetworkPolicy) denies it.
    AdminTier,
    /// A Baseline-tier rule denies it.
    BaselineTier,
}

impl Reason {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NetworkPolicy => "network_policy",
            Reason::AdminTier => "admin_tier",
            Reason::BaselineTier => "baseline_tier",
        }
    }
}

/// Which endpoints' connections to re-judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affected {
    /// Every local pod's (a restart, a failed apply, a Node change).
    AllLocal,
    /// The connections of these addresses, of these sides.
    Addresses(BTreeMap<IpAddr, Sides>),
}

/// The local pods: each address, the pod it belongs to.
pub type LocalAddrs = BTreeMap<IpAddr, ObjectKey>;

/// The side of a pod's connections a direction judges: egress the ones it
/// opens, ingress the ones it answers.
fn side(dir: Direction) -> Sides {
    match dir {
        Direction::Egress => Sides { opened: true, answered: false },
        Direction::Ingress => Sides { opened: false, answered: true },
    }
}

/// What the applied program says of the local pods, for [`affected`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalView {
    /// Each local pod address, its pod.
    pub addrs: LocalAddrs,
    /// Each local pod, per direction ([`Direction::slot`]), the
    /// NetworkPolicies and cluster policies whose rules its program lists
    /// (the only ones that can admit or deny its traffic).
    pub listed: BTreeMap<ObjectKey, [BTreeSet<ObjectKey>; 2]>,
}

impl LocalView {
    /// The view of `program`'s local pods.
    #[must_use]
    pub fn of(program: &Program) -> Self {
        let mut view = LocalView::default();
        for (key, pod) in &program.pods {
            for addr in &pod.addrs {
                view.addrs.insert(*addr, key.clone());
            }
            let listed = Direction::BOTH.map(|dir| {
                let slot = dir.slot();
                let np = pod.isolation(dir).into_iter().flatten();
                np.chain(&pod.admin[slot]).chain(&pod.baseline[slot]).cloned().collect()
            });
            view.listed.insert(key.clone(), listed);
        }
        view
    }

    /// The local pods that list `policy`, and for which sides.
    fn pods_listing<'a>(&'a self, policy: &'a ObjectKey) -> impl Iterator<Item = (&'a ObjectKey, Sides)> + 'a {
        self.listed.iter().filter_map(move |(pod, lists)| {
            let sides = Direction::BOTH
                .into_iter()
                .filter(|dir| lists[dir.slot()].contains(policy))
                .fold(Sides::default(), |acc, dir| acc.and(side(dir)));
            (sides != Sides::default()).then_some((pod, sides))
        })
    }
}

/// The endpoints whose connections a change may now deny, and which of
/// their connections, from the local pods `before` and `after` the change
/// (old addresses count too):
/// - a changed pod: all its connections (as a subject or a peer);
/// - a relabelled namespace: all its pods' connections;
/// - a changed NetworkPolicy: the local pods it selects now, for the
///   directions it isolates, and those whose program listed it before or
///   lists it now, for those directions (ingress judges the connections a
///   pod answers, egress those it opens);
/// - a changed cluster policy: the local pods that list it, before or now,
///   for those directions;
/// - a Node: every local pod (its addresses may be `nodes` peers).
#[must_use]
pub fn affected(index: &ClusterIndex, changes: &Changes, before: &LocalView, after: &LocalView) -> Affected {
    if !changes.nodes.is_empty() {
        return Affected::AllLocal;
    }
    let mut pods: BTreeMap<ObjectKey, Sides> = changes.pods.iter().map(|k| (k.clone(), Sides::BOTH)).collect();
    // Only local pods: a policy's other pods are other nodes' to judge.
    let add = |pod: &ObjectKey, sides: Sides, pods: &mut BTreeMap<ObjectKey, Sides>| {
        if after.listed.contains_key(pod) || before.listed.contains_key(pod) {
            let entry = pods.entry(pod.clone()).or_default();
            *entry = entry.and(sides);
        }
    };
    for policy in changes.policies.iter().chain(&changes.cluster_policies) {
        for (pod, sides) in before.pods_listing(policy).chain(after.pods_listing(policy)) {
            add(pod, sides, &mut pods);
        }
    }
    for policy in &changes.policies {
        let Some(id) = index.policy_id_of(policy) else { continue };
        let entry = index.policy(id);
        let sides = Direction::BOTH
            .into_iter()
            .filter(|dir| entry.policy().isolates(*dir))
            .fold(Sides::default(), |acc, dir| acc.and(side(dir)));
        for pod in entry.selected() {
            add(&index.pod_key(*pod), sides, &mut pods);
        }
    }
    let mut out: BTreeMap<IpAddr, Sides> = BTreeMap::new();
    let mut put = |addr: IpAddr, sides: Sides| {
        let entry = out.entry(addr).or_default();
        *entry = entry.and(sides);
    };
    for (key, sides) in &pods {
        if let Some(id) = index.pod_id_of(key) {
            index.pod(id).pod().ips.iter().for_each(|a| put(*a, *sides));
        }
    }
    for (addr, key) in before.addrs.iter().chain(&after.addrs) {
        if let Some(sides) = pods.get(key) {
            put(*addr, *sides);
        }
    }
    for ns in &changes.namespaces {
        if let Some(id) = index.namespace_id(&ns.name) {
            for pod in index.namespace(id).pods() {
                index.pod(*pod).pod().ips.iter().for_each(|a| put(*a, Sides::BOTH));
            }
        }
    }
    Affected::Addresses(out)
}

fn protocol(number: u8) -> Option<Protocol> {
    match number {
        TCP => Some(Protocol::Tcp),
        UDP => Some(Protocol::Udp),
        SCTP => Some(Protocol::Sctp),
        _ => None,
    }
}

/// Why `side` denies, if it does.
fn denial(side: SideVerdict) -> Option<Reason> {
    match side {
        SideVerdict::Denied => Some(Reason::NetworkPolicy),
        SideVerdict::Tier(rule) if rule.action == Action::Deny => Some(match rule.tier {
            Tier::Admin => Reason::AdminTier,
            Tier::Baseline => Reason::BaselineTier,
        }),
        _ => None,
    }
}

/// The entries the current state denies on a side this node enforces,
/// with the reason; the engine decides each, as `palisade check` would.
/// Entries of other protocols than TCP, UDP and SCTP, of flows without a
/// local pod, or with one of the node's own addresses are kept.
#[must_use]
pub fn denied(
    index: &ClusterIndex,
    local: &LocalAddrs,
    node_addrs: &BTreeSet<IpAddr>,
    entries: &[Entry],
) -> Vec<(Entry, Reason)> {
    let mut out = Vec::new();
    for entry in entries {
        let view = entry.flow();
        let Some(protocol) = protocol(view.protocol) else { continue };
        let (src_local, dst_local) = (local.contains_key(&view.src), local.contains_key(&view.dst));
        if !(src_local || dst_local) || node_addrs.contains(&view.src) || node_addrs.contains(&view.dst) {
            continue;
        }
        let flow =
            Flow { src: index.endpoint_at(view.src), dst: index.endpoint_at(view.dst), port: view.port, protocol };
        let verdict = index.evaluate_enforced(&flow);
        let reason = src_local
            .then(|| denial(verdict.egress))
            .flatten()
            .or_else(|| dst_local.then(|| denial(verdict.ingress)).flatten());
        if let Some(reason) = reason {
            out.push((*entry, reason));
        }
    }
    out
}

/// The revocation step's state between syncs.
#[derive(Debug)]
pub struct Revoker {
    /// The node's own addresses.
    pub node_addrs: BTreeSet<IpAddr>,
    /// The next step looks at every local pod's connections: at start (a
    /// restart reconciles conntrack once), and after a failed apply or
    /// revocation (what changed meanwhile is not known).
    pub all_next: bool,
    /// Whether a step has run (the first one's trigger is `restart`).
    started: bool,
    /// Revoked UDP flows whose echoes are looked for.
    echoes: echoes::Echoes,
}

impl Revoker {
    /// A revoker whose first step looks at every local pod.
    #[must_use]
    pub fn new(node_addrs: BTreeSet<IpAddr>) -> Self {
        Revoker { node_addrs, all_next: true, started: false, echoes: echoes::Echoes::default() }
    }

    /// When the next look for echoes of revoked flows is due, if any.
    #[must_use]
    pub fn next_look(&self) -> Option<Instant> {
        self.echoes.next()
    }

    /// Looks for echoes of revoked flows that are due (see [`echoes`]);
    /// returns how many were deleted.
    pub fn look(
        &mut self,
        index: &ClusterIndex,
        kernel: &mut dyn Kernel,
        metrics: &Metrics,
        local: &LocalAddrs,
    ) -> usize {
        self.echoes.look(Instant::now(), (index, local, &self.node_addrs), kernel, metrics)
    }

    /// Deletes the tracked connections of `affected` endpoints that the
    /// state just applied (`index`) denies; `local` are the local pods'
    /// addresses. Returns how many were deleted (`None`: the step failed,
    /// and the next one looks at every local pod).
    pub fn revoke(
        &mut self,
        index: &ClusterIndex,
        kernel: &mut dyn Kernel,
        metrics: &Metrics,
        affected: Affected,
        local: &LocalAddrs,
    ) -> Option<usize> {
        let start = Instant::now();
        let trigger = match (self.started, self.all_next) {
            (false, _) => "restart",
            (true, true) => "recovery",
            (true, false) => "change",
        };
        self.started = true;
        let addrs: BTreeMap<IpAddr, Sides> = match affected {
            Affected::AllLocal => local.keys().map(|a| (*a, Sides::BOTH)).collect(),
            Affected::Addresses(addrs) => addrs,
        };
        self.all_next = false;
        if addrs.is_empty() {
            return Some(0);
        }
        let result = kernel.connections(&addrs).and_then(|entries| {
            let denied = denied(index, local, &self.node_addrs, &entries);
            let doomed: Vec<Entry> = denied.iter().map(|(e, _)| *e).collect();
            let report = kernel.delete_connections(&doomed)?;
            self.echoes.revoked(&doomed, Instant::now());
            for (_, reason) in &denied {
                let label = RevokeLabel { reason: reason.as_str().into(), trigger: trigger.into() };
                metrics.revoked.get_or_create(&label).inc();
            }
            Ok((entries.len(), report))
        });
        metrics.revoke_seconds.observe(start.elapsed().as_secs_f64());
        match result {
            Ok((looked_at, report)) => {
                if report.deleted + report.gone > 0 {
                    info!(
                        trigger,
                        looked_at,
                        revoked = report.deleted,
                        already_gone = report.gone,
                        revoke_us = start.elapsed().as_micros(),
                        "revoked established connections the current state denies"
                    );
                }
                Some(report.deleted)
            }
            Err(e) => {
                self.all_next = true;
                metrics.revoke_errors.inc();
                error!(error = %e, "cannot revoke connections; the next step looks at every local pod");
                None
            }
        }
    }
}

pub mod echoes;
#[cfg(test)]
mod tests;
