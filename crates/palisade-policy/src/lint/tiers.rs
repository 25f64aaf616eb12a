//! Findings about cluster policies (ClusterNetworkPolicy and the v1alpha1
//! kinds): rules no connection can reach, Deny rules a Pass above makes
//! unreachable, equal priorities whose order matters, subjects that select
//! no pod, and domain names (not enforced).
//!
//! Shadowing is decided on the policies' text: a rule is shadowed when an
//! earlier rule of its tier (same policy, or a policy evaluated before it
//! whose subject covers its subject) matches every peer and port it does.

use super::{Finding, LintContext, Severity};
use crate::cluster_policy::{Action, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Subject};
use crate::index::{ClusterIndex, ClusterPolicyId};
use crate::key::ObjectKey;
use crate::model::{Direction, LabelSelector};

/// Runs the cluster policy checks.
pub(super) fn lint_cluster_policies(index: &ClusterIndex, context: &LintContext, out: &mut Vec<Finding>) {
    let ordered = index.cluster_policies();
    for (at, &id) in ordered.iter().enumerate() {
        let policy = index.cluster_policy(id).policy();
        selects_nothing(index, id, context, out);
        domain_names(policy, out);
        for dir in Direction::BOTH {
            shadowed(index, &ordered[..at], policy, dir, out);
        }
    }
    equal_priorities(index, ordered, out);
}

fn object(policy: &ClusterPolicy) -> String {
    format!("{} {}", policy.kind, policy.name)
}

fn rule_field(dir: Direction, rule: usize) -> String {
    format!("spec.{dir}[{rule}]")
}

fn selects_nothing(index: &ClusterIndex, id: ClusterPolicyId, context: &LintContext, out: &mut Vec<Finding>) {
    let entry = index.cluster_policy(id);
    if !entry.selected().is_empty() {
        return;
    }
    let policy = entry.policy();
    let (severity, elsewhere) = match &context.pods_elsewhere {
        Some(kinds) => (Severity::Info, format!(" in the input (which also holds {kinds}, so such pods may exist)")),
        None => (Severity::Warning, String::new()),
    };
    out.push(Finding {
        code: "policy-selects-no-pod",
        severity,
        object: object(policy),
        key: Some(ObjectKey::cluster_policy(policy.kind, &policy.name)),
        field: Some("spec.subject".into()),
        message: format!("its subject ({}) selects no pod{elsewhere}", crate::describe::subject(&policy.subject)),
        why: "a cluster policy applies only to the pods its subject selects (hostNetwork pods never)".into(),
        fix: "check the subject's selectors against the namespaces' and pods' labels".into(),
    });
}

fn domain_names(policy: &ClusterPolicy, out: &mut Vec<Finding>) {
    for (i, rule) in policy.egress.iter().enumerate() {
        for (j, peer) in rule.peers.iter().enumerate() {
            if let ClusterPeer::DomainNames(names) = peer {
                out.push(Finding {
                    code: "domain-names-not-enforced",
                    severity: Severity::Warning,
                    object: object(policy),
                    key: Some(ObjectKey::cluster_policy(policy.kind, &policy.name)),
                    field: Some(format!("{}.to[{j}].domainNames", rule_field(Direction::Egress, i))),
                    message: format!("domain names {} are not enforced by Palisade", names.join(", ")),
                    why: "domainNames is experimental; Palisade's analyzer and dataplane treat this peer as \
                          matching no connection, so this Accept rule accepts nothing"
                        .into(),
                    fix: "accept the addresses the names resolve to with a networks peer, or keep the rule for \
                          implementations that resolve names"
                        .into(),
                });
            }
        }
    }
}

/// Whether subject `a` selects every pod subject `b` selects (on text).
fn subject_covers(a: &Subject, b: &Subject) -> bool {
    match (a, b) {
        _ if a == b => true,
        (Subject::Namespaces(ns), _) if ns.is_empty() => true,
        (Subject::Pods { namespaces, pods }, _) if namespaces.is_empty() && pods.is_empty() => true,
        (Subject::Namespaces(a_ns), Subject::Pods { namespaces, .. }) => a_ns == namespaces,
        (Subject::Pods { namespaces, pods }, Subject::Namespaces(b_ns)) => pods.is_empty() && namespaces == b_ns,
        _ => false,
    }
}

/// `(namespaces, pods)` a pod peer selects; `None` for other peers.
fn pod_peer(p: &ClusterPeer) -> Option<(&LabelSelector, Option<&LabelSelector>)> {
    match p {
        ClusterPeer::Namespaces(ns) => Some((ns, None)),
        ClusterPeer::Pods { namespaces, pods } => Some((namespaces, Some(pods))),
        _ => None,
    }
}

/// Whether peer `a` matches everything peer `b` matches (on text).
fn peer_covers(a: &ClusterPeer, b: &ClusterPeer) -> bool {
    if a == b {
        return true;
    }
    match (pod_peer(a), pod_peer(b), a, b) {
        (Some((a_ns, a_pods)), Some((b_ns, b_pods)), ..) => {
            let pods_ok = a_pods.is_none_or(LabelSelector::is_empty) || a_pods == b_pods;
            (a_ns.is_empty() || a_ns == b_ns) && pods_ok
        }
        (.., ClusterPeer::Networks(a_nets), ClusterPeer::Networks(b_nets)) => {
            b_nets.iter().all(|b| a_nets.iter().any(|a| a.contains(b)))
        }
        _ => false,
    }
}

fn port_covers(a: &ClusterPort, b: &ClusterPort) -> bool {
    match (a, b) {
        (
            ClusterPort::Range { protocol: pa, start: sa, end: ea },
            ClusterPort::Range { protocol: pb, start: sb, end: eb },
        ) => pa == pb && sa <= sb && eb <= ea,
        (ClusterPort::Named(a), ClusterPort::Named(b)) => a == b,
        _ => false,
    }
}

/// Whether rule `a` matches every connection rule `b` matches (on text).
fn rule_covers(a: &ClusterRule, b: &ClusterRule) -> bool {
    let peers = b.peers.iter().all(|bp| a.peers.iter().any(|ap| peer_covers(ap, bp)));
    let ports = match (&a.ports, &b.ports) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|bp| a.iter().any(|ap| port_covers(ap, bp))),
    };
    peers && ports
}

/// Rules of `policy` for `dir` that an earlier rule of the tier covers.
fn shadowed(
    index: &ClusterIndex,
    earlier: &[ClusterPolicyId],
    policy: &ClusterPolicy,
    dir: Direction,
    out: &mut Vec<Finding>,
) {
    let before: Vec<&ClusterPolicy> = earlier
        .iter()
        .map(|id| index.cluster_policy(*id).policy())
        .filter(|p| p.tier == policy.tier && subject_covers(&p.subject, &policy.subject))
        .collect();
    let rules = policy.rules(dir);
    for (i, rule) in rules.iter().enumerate() {
        let own = rules[..i].iter().enumerate().map(|(j, r)| (policy, j, r));
        let others = before.iter().flat_map(|p| p.rules(dir).iter().enumerate().map(move |(j, r)| (*p, j, r)));
        let Some((by, j, cover)) = others.chain(own).find(|(_, _, r)| rule_covers(r, rule)) else { continue };
        let by_name = if by.name == policy.name && by.kind == policy.kind { "this policy".into() } else { object(by) };
        let pass_above = cover.action == Action::Pass && rule.action == Action::Deny;
        let (code, why) = if pass_above {
            (
                "deny-unreachable-after-pass",
                format!("{by_name}'s {dir} rule {j} passes every connection this Deny matches to the next tier first"),
            )
        } else {
            ("cluster-rule-shadowed", format!("{by_name}'s {dir} rule {j} matches every connection it matches first"))
        };
        out.push(Finding {
            code,
            severity: Severity::Warning,
            object: object(policy),
            key: Some(ObjectKey::cluster_policy(policy.kind, &policy.name)),
            field: Some(rule_field(dir, i)),
            message: format!("{dir} rule {i} ({}) is never reached", policy.kind.action_word(rule.action)),
            why,
            fix: "remove the rule, or order it (rule order, or a lower priority number) before the rule that covers it"
                .into(),
        });
    }
}

/// Policies of one tier at one priority whose subjects share a pod and
/// whose rules of one direction have different actions: their order
/// decides, and the API leaves it to the implementation.
fn equal_priorities(index: &ClusterIndex, ordered: &[ClusterPolicyId], out: &mut Vec<Finding>) {
    for (at, &a) in ordered.iter().enumerate() {
        let pa = index.cluster_policy(a);
        for &b in &ordered[at + 1..] {
            let pb = index.cluster_policy(b);
            let (x, y) = (pa.policy(), pb.policy());
            if x.tier != y.tier || x.priority != y.priority || x.priority.is_none() {
                continue;
            }
            let shared = pa.selected().iter().find(|p| pb.selected().binary_search(p).is_ok());
            let Some(shared) = shared else { continue };
            let differ = Direction::BOTH
                .into_iter()
                .find(|dir| x.rules(*dir).iter().any(|r| y.rules(*dir).iter().any(|s| s.action != r.action)));
            let Some(dir) = differ else { continue };
            out.push(Finding {
                code: "equal-priority-overlap",
                severity: Severity::Warning,
                object: object(y),
                key: Some(ObjectKey::cluster_policy(y.kind, &y.name)),
                field: Some("spec.priority".into()),
                message: format!(
                    "shares {} priority {} with {} and both select {} with {dir} rules of different actions",
                    x.tier,
                    x.priority.unwrap_or_default(),
                    object(x),
                    index.pod_name(*shared)
                ),
                why: format!(
                    "the API leaves the order of equal priorities to the implementation: Palisade evaluates {} \
                     first (by name), another implementation may not",
                    object(x)
                ),
                fix: "give the policies different priorities".into(),
            });
        }
    }
}
