//! Why a verdict is what it is, as data: per side, the policies that
//! isolate the pod, the rule that admitted the flow or the cluster policy
//! rule that decided it. `palisade check -o json` prints it, and the
//! agent's flow records carry it, so the two can be compared field by
//! field.

use serde::Serialize;

use crate::{AuditPolicies, ClusterIndex, Direction, Endpoint, Flow, PodId, SideVerdict, TierRuleRef, Verdict};

fn side_pod(flow: &Flow, dir: Direction) -> Option<PodId> {
    let end = if dir == Direction::Egress { flow.src } else { flow.dst };
    match end {
        Endpoint::Pod { id, .. } => Some(id),
        Endpoint::External(_) => None,
    }
}

/// A side as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideAttribution {
    /// `allowed`, `denied`, `not-isolated`, `not-a-pod`, `same-pod`.
    pub verdict: &'static str,
    /// Policies isolating the pod for this direction.
    pub isolated_by: Vec<String>,
    /// Of those, the audit (staged) ones, which the dataplane does not
    /// enforce (listed only when evaluation counted them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<String>,
    /// The admitting rule.
    pub allowed_by: Option<RuleAttribution>,
    /// The cluster policy rule that decided (Accept or Deny), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<TierAttribution>,
    /// The Pass rule evaluation went through before deciding, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed_by: Option<TierAttribution>,
}

/// A cluster policy rule reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TierAttribution {
    /// `admin` or `baseline`.
    pub tier: &'static str,
    /// `ClusterNetworkPolicy`, `AdminNetworkPolicy` or `BaselineAdminNetworkPolicy`.
    pub kind: &'static str,
    /// `metadata.name`.
    pub policy: String,
    /// `spec.priority` (`null` for a BaselineAdminNetworkPolicy).
    pub priority: Option<u32>,
    /// `ingress` or `egress`.
    pub direction: Direction,
    /// Rule index.
    pub rule: usize,
    /// The rule's `name`, if it has one.
    pub rule_name: Option<String>,
    /// Peer index.
    pub peer: usize,
    /// Port index (`null`: the rule lists no ports, so all match).
    pub port: Option<usize>,
    /// The action as the kind spells it (`Accept`/`Allow`, `Deny`, `Pass`).
    pub action: &'static str,
}

#[must_use]
pub fn tier_attribution(index: &ClusterIndex, r: &TierRuleRef) -> TierAttribution {
    let policy = index.cluster_policy(r.policy).policy();
    TierAttribution {
        tier: r.tier.as_str(),
        kind: policy.kind.as_str(),
        policy: policy.name.clone(),
        priority: policy.priority,
        direction: r.direction,
        rule: r.rule,
        rule_name: policy.rules(r.direction)[r.rule].name.clone(),
        peer: r.peer,
        port: r.port,
        action: policy.kind.action_word(r.action),
    }
}

/// A rule reference as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleAttribution {
    /// `namespace/name`.
    pub policy: String,
    /// `ingress` or `egress`.
    pub direction: Direction,
    /// Rule index.
    pub rule: usize,
    /// Peer index (`null`: the rule has no peers, so all match).
    pub peer: Option<usize>,
    /// Port index (`null`: the rule has no ports, so all match).
    pub port: Option<usize>,
}

/// `namespace/name` of the policies isolating the flow's pod on side `dir`
/// (empty for an address outside the cluster).
#[must_use]
pub fn isolating_names(index: &ClusterIndex, flow: &Flow, dir: Direction) -> Vec<String> {
    side_pod(flow, dir)
        .map(|p| index.pod(p).isolating(dir).iter().map(|id| index.policy_name(*id).to_string()).collect())
        .unwrap_or_default()
}

/// A side's JSON form.
#[must_use]
pub fn side_attribution(
    index: &ClusterIndex,
    flow: &Flow,
    dir: Direction,
    verdict: &Verdict,
    audit: AuditPolicies,
) -> SideAttribution {
    let side = verdict.side(dir);
    let isolating = side_pod(flow, dir).map(|p| index.pod(p).isolating(dir)).unwrap_or_default();
    let (mut isolated_by, mut staged) = (Vec::new(), Vec::new());
    for id in isolating {
        let name = index.policy_name(*id).to_string();
        if index.is_audit(*id) {
            if audit == AuditPolicies::Exclude {
                continue;
            }
            staged.push(name.clone());
        }
        isolated_by.push(name);
    }
    let word = match side {
        SideVerdict::NotAPod => "not-a-pod",
        SideVerdict::SamePod => "same-pod",
        SideVerdict::NotIsolated => "not-isolated",
        SideVerdict::Allowed(_) | SideVerdict::Tier(_) if side.allows() => "allowed",
        SideVerdict::Denied | SideVerdict::Allowed(_) | SideVerdict::Tier(_) => "denied",
    };
    let decided_by = match side {
        SideVerdict::Tier(r) => Some(tier_attribution(index, &r)),
        _ => None,
    };
    let passed_by = verdict.pass(dir).map(|r| tier_attribution(index, &r));
    let allowed_by = match side {
        SideVerdict::Allowed(r) => Some(RuleAttribution {
            policy: index.policy_name(r.policy).to_string(),
            direction: r.direction,
            rule: r.rule,
            peer: r.peer,
            port: r.port,
        }),
        _ => None,
    };
    let audit = if audit == AuditPolicies::Include { staged } else { Vec::new() };
    SideAttribution { verdict: word, isolated_by, audit, allowed_by, decided_by, passed_by }
}
