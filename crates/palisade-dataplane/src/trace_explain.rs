//! A traced packet's path mapped back to pods, policies and rules, beside
//! the engine's verdict for the same flow.
//!
//! The kernel names chains and rule handles; the program compiled from the
//! same index names the chains' owners (a pod's chain, a policy's chain,
//! a cluster policy's deny chain), and a rule's position in a policy chain
//! tells which policy rule it is ([`crate::render::rule_spans`]).

use std::collections::BTreeMap;

use palisade_policy::attribution::side_attribution;
use palisade_policy::{AuditPolicies, ClusterIndex, Direction, Flow, ObjectKey};
use serde::Serialize;

use crate::program::Program;
use crate::render::{RELATED_CHAIN, SPOOF_CHAIN, pod_chain, policy_chain, rule_spans};
use crate::render_gate::UNPROGRAMMED_CHAIN;
use crate::render_tiers::tier_deny_chain;
use crate::trace::{TraceEvent, TraceKind, TraceVerdict};

/// One step of the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The chain.
    pub chain: String,
    /// What the chain is (`pod x/a ingress`, `policy x/p egress rule 0`, …).
    pub what: String,
    /// The verdict there, if any.
    pub verdict: Option<String>,
}

/// The path and what it means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceReport {
    /// Every rule matched and chain left, in order.
    pub steps: Vec<Step>,
    /// Per side, in words: `egress x/client: policy x/allow-dns rule 0 -> accept`.
    pub sides: Vec<String>,
    /// Whether the traced packet got through (`None`: no packet was traced).
    pub allowed: Option<bool>,
    /// The engine's verdict for the flow (enforced policies).
    pub engine_allowed: bool,
    /// Whether the two agree (`None`: nothing traced).
    pub agrees: Option<bool>,
}

/// What a chain of Palisade's table belongs to.
#[derive(Clone, Debug)]
enum Owner {
    Pod(ObjectKey, Direction),
    Policy(ObjectKey, Direction),
    TierDeny(ObjectKey, Direction),
}

fn owners(program: &Program) -> BTreeMap<String, Owner> {
    let mut out = BTreeMap::new();
    for dir in Direction::BOTH {
        for key in program.pods.keys() {
            out.insert(pod_chain(key, dir), Owner::Pod(key.clone(), dir));
        }
        for key in program.policies.keys() {
            out.insert(policy_chain(key, dir), Owner::Policy(key.clone(), dir));
        }
        for key in program.tiers.keys() {
            out.insert(tier_deny_chain(key, dir), Owner::TierDeny(key.clone(), dir));
        }
    }
    out
}

/// The policy rule at `position` of a policy chain.
fn rule_at(program: &Program, policy: &ObjectKey, dir: Direction, position: usize) -> Option<usize> {
    let spans = rule_spans(program.policies.get(policy)?, dir);
    let mut start = 0;
    for (i, span) in spans.iter().enumerate() {
        if position < start + span {
            return Some(i);
        }
        start += span;
    }
    None
}

/// Explains `events` (one packet's) with the table's rule `positions`,
/// the `program` compiled from `index`, and the engine's verdict for `flow`.
#[must_use]
pub fn explain(
    events: &[TraceEvent],
    positions: &BTreeMap<u64, (String, usize)>,
    program: &Program,
    index: &ClusterIndex,
    flow: &Flow,
) -> TraceReport {
    let owners = owners(program);
    let verdict = index.evaluate_enforced(flow);
    let mut steps = Vec::new();
    let mut sides: BTreeMap<Direction, String> = BTreeMap::new();
    let mut dropped = false;
    for e in events.iter().filter(|e| e.table == crate::ruleset::TABLE) {
        let position = e.handle.and_then(|h| positions.get(&h)).map(|(_, p)| *p);
        let v = if end_of(e) { Some(TraceVerdict::Return) } else { e.verdict.clone() };
        dropped |= v == Some(TraceVerdict::Drop);
        let word = v.as_ref().map(ToString::to_string);
        let what = match owners.get(&e.chain) {
            Some(Owner::Pod(pod, dir)) => {
                if v == Some(TraceVerdict::Drop) {
                    let side = side_attribution(index, flow, *dir, &verdict, AuditPolicies::Exclude);
                    sides.insert(
                        *dir,
                        format!(
                            "{dir} {}: isolated by {}, no rule admits -> drop",
                            pod.path(),
                            side.isolated_by.join(", ")
                        ),
                    );
                } else if end_of(e) {
                    sides.entry(*dir).or_insert_with(|| format!("{dir} {}: no policy decided -> on", pod.path()));
                }
                format!("pod {} {dir}{}", pod.path(), end_of_chain(e))
            }
            Some(Owner::Policy(policy, dir)) => {
                let rule = position.and_then(|p| rule_at(program, policy, *dir, p));
                let rule_text =
                    rule.map_or_else(|| "end of chain, no rule matched".to_string(), |r| format!("rule {r}"));
                if v == Some(TraceVerdict::Accept) {
                    let pod = pod_of(flow, *dir, index);
                    sides.insert(*dir, format!("{dir} {pod}: policy {} {rule_text} -> accept", policy.path()));
                }
                format!("policy {} {dir}: {rule_text}", policy.path())
            }
            Some(Owner::TierDeny(policy, dir)) => {
                if v == Some(TraceVerdict::Drop) {
                    let pod = pod_of(flow, *dir, index);
                    sides.insert(*dir, format!("{dir} {pod}: {} {}: Deny -> drop", policy.kind, policy.name));
                }
                format!("{} {} deny {dir}", policy.kind, policy.name)
            }
            None => base_chain(e, position, v.as_ref(), &mut Walk { sides: &mut sides, flow, index }),
        };
        steps.push(Step { chain: e.chain.clone(), what, verdict: word });
    }
    // A side whose pod has no chain was not isolated.
    let reached_ingress_end = events.iter().any(|e| e.table == crate::ruleset::TABLE && e.chain == "ingress");
    for dir in Direction::BOTH {
        if !sides.contains_key(&dir) && !dropped && reached_ingress_end {
            let pod = pod_of(flow, dir, index);
            if pod != "-" {
                sides.insert(dir, format!("{dir} {pod}: not isolated -> accept"));
            }
        }
    }
    let allowed = if events.is_empty() { None } else { Some(!dropped) };
    TraceReport {
        steps,
        sides: [Direction::Egress, Direction::Ingress].iter().filter_map(|d| sides.get(d).cloned()).collect(),
        allowed,
        engine_allowed: verdict.allowed,
        agrees: allowed.map(|a| a == verdict.allowed),
    }
}

/// What the walk over one packet's events has found so far.
struct Walk<'a, 'b> {
    sides: &'a mut BTreeMap<Direction, String>,
    flow: &'b Flow,
    index: &'b ClusterIndex,
}

/// A base chain's or helper chain's event in words.
fn base_chain(e: &TraceEvent, position: Option<usize>, v: Option<&TraceVerdict>, walk: &mut Walk<'_, '_>) -> String {
    let at = position.map(|p| format!(" rule #{p}")).unwrap_or_default();
    let chain = e.chain.as_str();
    match chain {
        "egress" | "ingress" => {
            // A base chain's rules accept nothing but established
            // connections (policies accept in the chains the verdict maps
            // jump to; falling off the end is the chain's policy).
            if v == Some(&TraceVerdict::Accept) && e.kind == TraceKind::Rule && position.is_some() {
                let dir = if chain == "egress" { Direction::Egress } else { Direction::Ingress };
                let pod = pod_of(walk.flow, dir, walk.index);
                walk.sides.entry(dir).or_insert_with(|| format!("{dir} {pod}: an established connection -> accept"));
            }
            if e.kind == TraceKind::Policy {
                format!("{chain} (base chain policy)")
            } else {
                format!("{chain} (base){at}")
            }
        }
        SPOOF_CHAIN => {
            if v == Some(&TraceVerdict::Drop) {
                walk.sides.insert(
                    Direction::Egress,
                    "egress: the source address is not the sender's (spoofed) -> drop".into(),
                );
            }
            format!("anti-spoofing{at}")
        }
        UNPROGRAMMED_CHAIN => {
            if v == Some(&TraceVerdict::Drop) {
                walk.sides.insert(Direction::Ingress, "a pod not programmed yet (--new-pods=deny) -> drop".into());
            }
            format!("new-pod gate{at}")
        }
        RELATED_CHAIN => format!("related to a connection{at}"),
        other if other.starts_with("shared/admin-") => format!("admin tier list{at}"),
        other if other.starts_with("shared/baseline-") => format!("baseline tier list{at}"),
        other if other.starts_with("shared/isolation-") => format!("isolating policies{at}"),
        other => format!("{other}{at}"),
    }
}

/// Whether `e` reports a chain's end (the kernel says `return`, or, as
/// 6.x kernels do, a rule event without a rule).
fn end_of(e: &TraceEvent) -> bool {
    e.kind == TraceKind::Return || (e.kind == TraceKind::Rule && e.handle.is_none())
}

/// `, end of chain` for an event of a chain's end.
fn end_of_chain(e: &TraceEvent) -> &'static str {
    if end_of(e) { ", end of chain" } else { "" }
}

/// `namespace/pod` of the flow's end on `dir`'s side, or its address, or
/// `-` when it has neither.
fn pod_of(flow: &Flow, dir: Direction, index: &ClusterIndex) -> String {
    let end = if dir == Direction::Egress { flow.src } else { flow.dst };
    match end {
        palisade_policy::Endpoint::Pod { id, .. } => index.pod_name(id).to_string(),
        palisade_policy::Endpoint::External(addr) => addr.to_string(),
    }
}

impl TraceReport {
    /// The report in words.
    #[must_use]
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.steps.is_empty() {
            out.push_str("no packet of this flow crossed Palisade's chains (nothing traced)\n");
        }
        for s in &self.steps {
            let verdict = s.verdict.as_deref().map(|v| format!(" -> {v}")).unwrap_or_default();
            let _ = writeln!(out, "  {}: {}{verdict}", s.chain, s.what);
        }
        if !self.sides.is_empty() {
            let _ = writeln!(out, "path: {}", self.sides.join("; "));
        }
        let word = |allowed: bool| if allowed { "ALLOW" } else { "DENY" };
        match (self.allowed, self.agrees) {
            (Some(a), Some(true)) => {
                let _ = writeln!(out, "traced: {}; engine: {} (they agree)", word(a), word(self.engine_allowed));
            }
            (Some(a), _) => {
                let _ = writeln!(
                    out,
                    "DISAGREEMENT: the packet was {}ed by the kernel, the engine says {}",
                    if a { "accept" } else { "dropp" },
                    word(self.engine_allowed)
                );
            }
            (None, _) => {
                let _ = writeln!(out, "engine: {}", word(self.engine_allowed));
            }
        }
        out
    }
}
