//! Verdicts in words and as JSON, shared by `check` and `query`.

use palisade_policy::{ClusterIndex, Direction, Endpoint, Flow, PodId, PolicyId, RuleRef, SideVerdict, Verdict};
use serde::Serialize;

/// Where text goes: a `String`, or the byte buffer `query` writes its
/// answers into (so the reason needs no copy).
pub trait Text {
    /// Appends `s`.
    fn push_str(&mut self, s: &str);
    /// Appends one ASCII character.
    fn push_ascii(&mut self, c: u8);
}

impl Text for String {
    fn push_str(&mut self, s: &str) {
        self.push_str(s);
    }
    fn push_ascii(&mut self, c: u8) {
        self.push(char::from(c));
    }
}

impl Text for Vec<u8> {
    fn push_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
    fn push_ascii(&mut self, c: u8) {
        self.push(c);
    }
}

/// Writes `namespace/name` of a policy.
fn write_policy(out: &mut impl Text, index: &ClusterIndex, id: PolicyId) {
    out.push_str(index.policy_name(id));
}

/// Appends a decimal number without going through `fmt` (hot in `query`).
pub(crate) fn push_number(out: &mut impl Text, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push_ascii(*d);
    }
}

/// Writes `ns/policy ingress rule 0, peer 1, port 0`.
fn write_rule_ref(out: &mut impl Text, index: &ClusterIndex, r: &RuleRef) {
    write_policy(out, index, r.policy);
    // Literal per direction: a copy of known length (this is hot in `query`).
    match r.direction {
        Direction::Ingress => out.push_str(" ingress rule "),
        Direction::Egress => out.push_str(" egress rule "),
    }
    push_number(out, r.rule);
    match r.peer {
        Some(p) => {
            out.push_str(", peer ");
            push_number(out, p);
        }
        None => out.push_str(", all peers"),
    }
    match r.port {
        Some(p) => {
            out.push_str(", port ");
            push_number(out, p);
        }
        None => out.push_str(", all ports"),
    }
}

/// `ns/policy ingress rule 0, peer 1, port 0`.
#[must_use]
pub fn rule_ref(index: &ClusterIndex, r: &RuleRef) -> String {
    let mut s = String::new();
    write_rule_ref(&mut s, index, r);
    s
}

fn side_pod(flow: &Flow, dir: Direction) -> Option<PodId> {
    let end = if dir == Direction::Egress { flow.src } else { flow.dst };
    match end {
        Endpoint::Pod { id, .. } => Some(id),
        Endpoint::External(_) => None,
    }
}

/// Writes one side in a short phrase (nothing for a side that is not a pod).
fn write_side(out: &mut impl Text, index: &ClusterIndex, flow: &Flow, dir: Direction, side: SideVerdict) {
    match side {
        SideVerdict::NotAPod | SideVerdict::SamePod => {}
        SideVerdict::NotIsolated => match dir {
            Direction::Ingress => out.push_str("ingress not isolated"),
            Direction::Egress => out.push_str("egress not isolated"),
        },
        SideVerdict::Allowed(r) => {
            match dir {
                Direction::Ingress => out.push_str("ingress allowed by "),
                Direction::Egress => out.push_str("egress allowed by "),
            }
            write_rule_ref(out, index, &r);
        }
        SideVerdict::Denied => {
            let pod = side_pod(flow, dir).expect("a denied side is a pod");
            let isolating = index.pod(pod).isolating(dir);
            match dir {
                Direction::Ingress => out.push_str("ingress denied: isolated by "),
                Direction::Egress => out.push_str("egress denied: isolated by "),
            }
            for (i, p) in isolating.iter().take(3).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_policy(out, index, *p);
            }
            if isolating.len() > 3 {
                out.push_str(", +");
                push_number(out, isolating.len() - 3);
                out.push_str(" more");
            }
            out.push_str(", no rule admits it");
        }
    }
}

/// Writes the short reason `query` prints (the denying side first, if any)
/// to the end of `out`.
pub fn write_reason(out: &mut impl Text, index: &ClusterIndex, flow: &Flow, verdict: &Verdict) {
    if verdict.egress == SideVerdict::SamePod {
        out.push_str("a pod can always reach itself");
        return;
    }
    let sides = if verdict.ingress == SideVerdict::Denied && verdict.egress != SideVerdict::Denied {
        [(Direction::Ingress, verdict.ingress), (Direction::Egress, verdict.egress)]
    } else {
        [(Direction::Egress, verdict.egress), (Direction::Ingress, verdict.ingress)]
    };
    let written = |side: SideVerdict| !matches!(side, SideVerdict::NotAPod | SideVerdict::SamePod);
    if written(sides[0].1) {
        write_side(out, index, flow, sides[0].0, sides[0].1);
        if written(sides[1].1) {
            out.push_str("; ");
        }
    }
    if written(sides[1].1) {
        write_side(out, index, flow, sides[1].0, sides[1].1);
    }
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
pub fn side_json(index: &ClusterIndex, flow: &Flow, dir: Direction, side: SideVerdict) -> SideJson {
    let isolated_by = isolating_names(index, flow, dir);
    let verdict = match side {
        SideVerdict::NotAPod => "not-a-pod",
        SideVerdict::SamePod => "same-pod",
        SideVerdict::NotIsolated => "not-isolated",
        SideVerdict::Allowed(_) => "allowed",
        SideVerdict::Denied => "denied",
    };
    let allowed_by = match side {
        SideVerdict::Allowed(r) => Some(RuleJson {
            policy: index.policy_name(r.policy).to_string(),
            direction: r.direction,
            rule: r.rule,
            peer: r.peer,
            port: r.port,
        }),
        _ => None,
    };
    SideJson { verdict, isolated_by, allowed_by }
}
