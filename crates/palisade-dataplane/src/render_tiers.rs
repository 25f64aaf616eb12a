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
//! chain shared/admin-<dir>/<id>           one per distinct list, in evaluation order:
//!   jump tier/<Kind>/<name>/<dir>         a policy without Pass rules
//!   <its rules inline>                    a policy with Pass rules: Pass is `return`
//!                                         (admin: on to the NetworkPolicies) or
//!                                         `accept` (baseline: on to the default)
//!
//! chain tier/<Kind>/<name>/<dir>          the policy's rules in order:
//!   <match> accept                        Accept / Allow
//!   <match> counter tier/…/denied drop    Deny (a drop, not a reject)
//!   <match> return                        Pass (only reached inline, see above)
//! ```
//!
//! A Pass must skip the rest of its tier for this pod, which a chain shared
//! by every pod the policy selects cannot do by itself (a `return` only
//! leaves that chain), so a policy with Pass rules has its rules inlined in
//! the list chains; its sets stay shared. List chains are named by a
//! digest of their rules, so a change to one gives it a new name and the
//! pods that use it are re-rendered.

use std::collections::{BTreeMap, BTreeSet};

use palisade_policy::{Action, Direction, ObjectKey, Tier};

use crate::program::{LocalPod, TierProgram};
use crate::render::{SHARED_PREFIX, object_name, render_rule};
use crate::ruleset::{Chain, Rule, Statement, Table, Verdict};

/// The prefix of every table object a cluster policy owns:
/// `tier/<Kind>/<name>/`.
pub(crate) fn tier_prefix(key: &ObjectKey) -> String {
    format!("tier/{}/{}/", key.kind, object_name(key))
}

/// The chain of a cluster policy for a direction.
#[must_use]
pub fn tier_chain(key: &ObjectKey, dir: Direction) -> String {
    format!("{}{dir}", tier_prefix(key))
}

/// The counter of the packets a cluster policy's Deny rules dropped.
#[must_use]
pub fn tier_counter(key: &ObjectKey, dir: Direction) -> String {
    format!("{}{dir}/denied", tier_prefix(key))
}

/// What a rule's match leads to. `pass` is what a Pass does where the rule
/// is rendered.
fn verdict(key: &ObjectKey, dir: Direction, action: Action, pass: &Verdict) -> Vec<Statement> {
    match action {
        Action::Accept => vec![Statement::Verdict(Verdict::Accept)],
        Action::Deny => vec![Statement::Counter(tier_counter(key, dir)), Statement::Verdict(Verdict::Drop)],
        Action::Pass => vec![Statement::Verdict(pass.clone())],
    }
}

/// The rules of `program` for `dir`, creating their sets (recorded in
/// `shared`).
fn rules(
    r: &mut Table,
    shared: &mut BTreeSet<String>,
    key: &ObjectKey,
    program: &TierProgram,
    dir: Direction,
    pass: &Verdict,
) -> Vec<Rule> {
    let mut chain = Vec::new();
    for (rule, action) in program.rules.rules(dir).iter().zip(&program.actions[dir.slot()]) {
        render_rule(r, &mut chain, shared, rule, dir, &verdict(key, dir, *action, pass));
    }
    chain
}

/// The chains, counters and sets of one cluster policy; returns the shared
/// sets its rules look up.
pub(crate) fn render_tier(r: &mut Table, key: &ObjectKey, program: &TierProgram) -> BTreeSet<String> {
    let mut shared = BTreeSet::new();
    for dir in Direction::BOTH {
        let actions = &program.actions[dir.slot()];
        if actions.is_empty() {
            continue;
        }
        let chain = rules(r, &mut shared, key, program, dir, &Verdict::Return);
        if actions.contains(&Action::Deny) {
            r.counters.insert(tier_counter(key, dir));
        }
        r.chains.insert(tier_chain(key, dir), Chain { base: None, rules: chain });
    }
    shared
}

/// The list chain for `policies` of `tier` and `dir` (creating it);
/// returns its name. Its sets and the policies' chains are the policies'
/// own; the chain itself is shared by the pods with the same list.
fn list_chain(
    r: &mut Table,
    tier: Tier,
    dir: Direction,
    policies: &[ObjectKey],
    tiers: &BTreeMap<ObjectKey, TierProgram>,
) -> String {
    let pass = if tier == Tier::Admin { Verdict::Return } else { Verdict::Accept };
    let mut chain = Vec::new();
    // Sets of inlined rules are rendered by their policies too: the same
    // names and elements, so rendering them again here changes nothing.
    let mut scratch = BTreeSet::new();
    for key in policies {
        match tiers.get(key) {
            Some(program) if program.passes(dir) => chain.extend(rules(r, &mut scratch, key, program, dir, &pass)),
            Some(_) => chain.push(Rule(vec![Statement::Verdict(Verdict::Jump(tier_chain(key, dir)))])),
            None => {}
        }
    }
    let name = format!("{SHARED_PREFIX}{}-{dir}/{}", tier.as_str(), crate::compile::set_id(&chain));
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
    tiers: &BTreeMap<ObjectKey, TierProgram>,
    shared: &mut BTreeSet<String>,
) -> (Vec<Rule>, Vec<Rule>) {
    let mut jump = |tier: Tier, list: &[ObjectKey]| -> Vec<Rule> {
        if list.is_empty() {
            return Vec::new();
        }
        let chain = list_chain(r, tier, dir, list, tiers);
        shared.insert(chain.clone());
        vec![Rule(vec![Statement::Verdict(Verdict::Jump(chain))])]
    };
    let admin = jump(Tier::Admin, &pod.admin[dir.slot()]);
    let baseline =
        if pod.isolation(dir).is_some() { Vec::new() } else { jump(Tier::Baseline, &pod.baseline[dir.slot()]) };
    (admin, baseline)
}
