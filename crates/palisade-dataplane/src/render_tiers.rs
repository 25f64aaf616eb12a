//! Rendering cluster policies (the Admin and Baseline tiers).
//!
//! ```text
//! chain pod/<ns>/<pod>/<dir>
//!   jump shared/admin-<dir>/<id>          the pod's Admin-tier list (if any)
//!   jump policy/<ns>/<policy>/<dir> ...   NetworkPolicies (if isolated), then
//!   log; counter; drop                    the pod's denial, as before
//!   -- or, when no NetworkPolicy isolates the pod in <dir> --
//!   jump shared/baseline-<dir>/<id>       the pod's Baseline-tier list (if any);
//!                                         the end of the chain lets the packet through
//!
//! chain shared/admin-<dir>/<id>           one per distinct list of policies, their rules
//!   <port match> <peer match> accept      Accept / Allow
//!   <...> counter tier/<Kind>/<name>/<dir>/denied drop    Deny (a drop, not a reject)
//!   <...> return                          Pass in the Admin tier: on to the NetworkPolicies
//!   <...> accept                          Pass in the Baseline tier: on to the default
//! ```
//!
//! The rules of the policies on a pod's list are inlined in its list
//! chain, in evaluation order: a Pass must skip the rest of its tier for
//! this pod, which a chain per policy cannot do (its `return` only leaves
//! that chain), and a connection then meets no jump per policy
//! (`palisade lab bench --tiers 1000`: 0.66 of the conntrack-only
//! connection rate with a jump per policy, 0.75 inlined). Port matches come
//! before peer matches: a comparison that fails before a set lookup. The
//! sets stay shared, named by what decides their elements, so a pod change
//! patches elements and leaves the list chains alone. A list chain is
//! named by a digest of its list; when a policy on it changes shape, the
//! pods that list it are re-rendered with it.

use std::collections::{BTreeMap, BTreeSet};

use palisade_policy::{Action, Direction, ObjectKey, Tier};

use crate::program::{FlowLog, LocalPod, TierProgram};
use crate::render::{DENY_PREFIX, RuleStyle, SHARED_PREFIX, log_prefix, log_rule, object_name, render_rule};
use crate::ruleset::{Chain, Rule, Statement, Table, Verdict};

/// The prefix of every table object a cluster policy owns:
/// `tier/<Kind>/<name>/`.
pub(crate) fn tier_prefix(key: &ObjectKey) -> String {
    format!("tier/{}/{}/", key.kind, object_name(key))
}

/// The counter of the packets a cluster policy's Deny rules dropped.
#[must_use]
pub fn tier_counter(key: &ObjectKey, dir: Direction) -> String {
    format!("{}{dir}/denied", tier_prefix(key))
}

/// The chain a cluster policy's Deny rules jump to when flows are logged:
/// a rate-limited log (per policy and direction), then its counter and
/// the drop.
#[must_use]
pub fn tier_deny_chain(key: &ObjectKey, dir: Direction) -> String {
    format!("{}{dir}/deny", tier_prefix(key))
}

/// What a rule's match leads to. `pass` is what a Pass does where the rule
/// is rendered; with a flow log, a Deny goes through the policy's
/// [`tier_deny_chain`].
fn verdict(key: &ObjectKey, dir: Direction, action: Action, pass: &Verdict, logged: bool) -> Vec<Statement> {
    match action {
        Action::Accept => vec![Statement::Verdict(Verdict::Accept)],
        Action::Deny if logged => vec![Statement::Verdict(Verdict::Jump(tier_deny_chain(key, dir)))],
        Action::Deny => vec![Statement::Counter(tier_counter(key, dir)), Statement::Verdict(Verdict::Drop)],
        Action::Pass => vec![Statement::Verdict(pass.clone())],
    }
}

/// The rules of `program` for `dir` (their sets recorded in `shared`, and
/// created when `sets`).
fn rules(
    r: &mut Table,
    shared: &mut BTreeSet<String>,
    (key, program): (&ObjectKey, &TierProgram),
    dir: Direction,
    (pass, sets, logged): (&Verdict, bool, bool),
) -> Vec<Rule> {
    let mut chain = Vec::new();
    for (rule, action) in program.rules.rules(dir).iter().zip(&program.actions[dir.slot()]) {
        let verdict = verdict(key, dir, *action, pass, logged);
        render_rule(r, &mut chain, shared, rule, dir, RuleStyle { verdict: &verdict, ports_first: true, sets });
    }
    chain
}

/// The counters and sets of one cluster policy (its rules live in the list
/// chains of the pods it selects); returns the shared sets its rules look
/// up.
pub(crate) fn render_tier(
    r: &mut Table,
    key: &ObjectKey,
    program: &TierProgram,
    flow_log: Option<&FlowLog>,
) -> BTreeSet<String> {
    let mut shared = BTreeSet::new();
    for dir in Direction::BOTH {
        let actions = &program.actions[dir.slot()];
        if actions.is_empty() {
            continue;
        }
        let _ = rules(r, &mut shared, (key, program), dir, (&Verdict::Return, true, flow_log.is_some()));
        if actions.contains(&Action::Deny) {
            let counter = tier_counter(key, dir);
            r.counters.insert(counter.clone());
            if flow_log.is_some() {
                let prefix = log_prefix(DENY_PREFIX, dir, key);
                let rules = vec![
                    log_rule(flow_log, prefix),
                    Rule(vec![Statement::Counter(counter), Statement::Verdict(Verdict::Drop)]),
                ];
                r.chains.insert(tier_deny_chain(key, dir), Chain { base: None, rules });
            }
        }
    }
    shared
}

/// The list chain for `policies` of `tier` and `dir` (creating it unless
/// this table has it already); returns its name, a digest of the list.
/// Its sets and counters are the policies' own; the chain itself is shared
/// by the pods with the same list, and re-rendered with them when a
/// policy on it changes shape.
fn list_chain(
    r: &mut Table,
    tier: Tier,
    dir: Direction,
    policies: &[ObjectKey],
    (tiers, logged): (&BTreeMap<ObjectKey, TierProgram>, bool),
) -> String {
    let name = format!("{SHARED_PREFIX}{}-{dir}/{}", tier.as_str(), crate::compile::set_id(&policies));
    if r.chains.contains_key(&name) {
        return name;
    }
    let pass = if tier == Tier::Admin { Verdict::Return } else { Verdict::Accept };
    let mut chain = Vec::new();
    // The pod-peer and named-port sets are the policies' own (rendered with
    // them, patched when pods change): not built again here. Port and
    // ipBlock sets are named by their elements, so rendering them again
    // changes nothing.
    let mut scratch = BTreeSet::new();
    for key in policies {
        if let Some(program) = tiers.get(key) {
            chain.extend(rules(r, &mut scratch, (key, program), dir, (&pass, false, logged)));
        }
    }
    r.chains.insert(name.clone(), Chain { base: None, rules: chain });
    name
}

/// The rules a pod's chain for `dir` starts with (its Admin-tier list) and
/// ends with when no NetworkPolicy isolates it (its Baseline-tier list),
/// creating the list chains, which are added to `shared`.
pub(crate) fn pod_tier_jumps(
    r: &mut Table,
    pod: &LocalPod,
    dir: Direction,
    (tiers, logged): (&BTreeMap<ObjectKey, TierProgram>, bool),
    shared: &mut BTreeSet<String>,
) -> (Vec<Rule>, Vec<Rule>) {
    let mut jump = |tier: Tier, list: &[ObjectKey]| -> Vec<Rule> {
        if list.is_empty() {
            return Vec::new();
        }
        let chain = list_chain(r, tier, dir, list, (tiers, logged));
        shared.insert(chain.clone());
        vec![Rule(vec![Statement::Verdict(Verdict::Jump(chain))])]
    };
    let admin = jump(Tier::Admin, &pod.admin[dir.slot()]);
    let baseline =
        if pod.isolation(dir).is_some() { Vec::new() } else { jump(Tier::Baseline, &pod.baseline[dir.slot()]) };
    (admin, baseline)
}
