//! Verdicts in words and as JSON, shared by `check` and `query`.

use palisade_policy::{ClusterIndex, Direction, Endpoint, Flow, PodId, RuleRef, SideVerdict, Verdict};
use serde::Serialize;

/// `ns/policy ingress rule 0, peer 1, port 0`.
#[must_use]
pub fn rule_ref(index: &ClusterIndex, r: &RuleRef) -> String {
    let mut s = format!("{} {} rule {}", index.policy_name(r.policy), r.direction, r.rule);
    match r.peer {
        Some(p) => s.push_str(&format!(", peer {p}")),
        None => s.push_str(", all peers"),
    }
    match r.port {
        Some(p) => s.push_str(&format!(", port {p}")),
        None => s.push_str(", all ports"),
    }
    s
}

fn policy_list(index: &ClusterIndex, policies: &[palisade_policy::PolicyId], limit: usize) -> String {
    let mut names: Vec<String> = policies.iter().take(limit).map(|p| index.policy_name(*p)).collect();
    if policies.len() > limit {
        names.push(format!("+{} more", policies.len() - limit));
    }
    names.join(", ")
}

fn side_pod(flow: &Flow, dir: Direction) -> Option<PodId> {
    let end = if dir == Direction::Egress { flow.src } else { flow.dst };
    match end {
        Endpoint::Pod { id, .. } => Some(id),
        Endpoint::External(_) => None,
    }
}

/// One side in a short phrase, or `None` when nothing applies there.
#[must_use]
pub fn side_short(index: &ClusterIndex, flow: &Flow, dir: Direction, side: SideVerdict) -> Option<String> {
    match side {
        SideVerdict::NotAPod | SideVerdict::SamePod => None,
        SideVerdict::NotIsolated => Some(format!("{dir} not isolated")),
        SideVerdict::Allowed(r) => Some(format!("{dir} allowed by {}", rule_ref(index, &r))),
        SideVerdict::Denied => {
            let pod = side_pod(flow, dir).expect("a denied side is a pod");
            let isolating = index.pod(pod).isolating(dir);
            Some(format!("{dir} denied: isolated by {}, no rule admits it", policy_list(index, isolating, 3)))
        }
    }
}

/// The short reason `query` prints.
#[must_use]
pub fn reason(index: &ClusterIndex, flow: &Flow, verdict: &Verdict) -> String {
    if verdict.egress == SideVerdict::SamePod {
        return "a pod can always reach itself".into();
    }
    // Lead with what decided: a denial if there is one.
    let mut parts: Vec<String> = Vec::with_capacity(2);
    let sides = [(Direction::Egress, verdict.egress), (Direction::Ingress, verdict.ingress)];
    for (dir, side) in sides
        .iter()
        .filter(|(_, s)| *s == SideVerdict::Denied)
        .chain(sides.iter().filter(|(_, s)| *s != SideVerdict::Denied))
    {
        if let Some(p) = side_short(index, flow, *dir, *side) {
            parts.push(p);
        }
    }
    parts.join("; ")
}

/// A side as JSON.
#[derive(Debug, Serialize)]
pub struct SideJson {
    /// `allowed`, `denied`, `not-isolated`, `not-a-pod`, `same-pod`.
    pub verdict: &'static str,
    /// Policies isolating the pod for this direction.
    pub isolated_by: Vec<String>,
    /// The admitting rule.
    pub allowed_by: Option<RuleJson>,
}

/// A rule reference as JSON.
#[derive(Debug, Serialize)]
pub struct RuleJson {
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

/// A side's JSON form.
#[must_use]
pub fn side_json(index: &ClusterIndex, flow: &Flow, dir: Direction, side: SideVerdict) -> SideJson {
    let isolated_by = side_pod(flow, dir)
        .map(|p| index.pod(p).isolating(dir).iter().map(|id| index.policy_name(*id)).collect())
        .unwrap_or_default();
    let verdict = match side {
        SideVerdict::NotAPod => "not-a-pod",
        SideVerdict::SamePod => "same-pod",
        SideVerdict::NotIsolated => "not-isolated",
        SideVerdict::Allowed(_) => "allowed",
        SideVerdict::Denied => "denied",
    };
    let allowed_by = match side {
        SideVerdict::Allowed(r) => Some(RuleJson {
            policy: index.policy_name(r.policy),
            direction: r.direction,
            rule: r.rule,
            peer: r.peer,
            port: r.port,
        }),
        _ => None,
    };
    SideJson { verdict, isolated_by, allowed_by }
}
