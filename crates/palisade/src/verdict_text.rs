//! Verdicts in words and as JSON, shared by `check` and `query`.

use palisade_policy::{
    Action, ClusterIndex, Direction, Endpoint, Flow, PodId, PolicyId, RuleRef, SideVerdict, TierRuleRef, Verdict,
};

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

/// `admin ns-isolation priority 10 ingress rule 2, peer 0, all ports: Pass`
/// (the kind is named when it is not ClusterNetworkPolicy; a rule's name
/// follows its index in parentheses).
#[must_use]
pub fn tier_ref(index: &ClusterIndex, r: &TierRuleRef) -> String {
    use std::fmt::Write as _;
    let policy = index.cluster_policy(r.policy).policy();
    let mut s = format!("{} {}", r.tier, policy.label());
    if let Some(priority) = policy.priority {
        let _ = write!(s, " priority {priority}");
    }
    let _ = write!(s, " {} rule {}", r.direction, r.rule);
    if let Some(name) = &policy.rules(r.direction)[r.rule].name {
        let _ = write!(s, " ({name})");
    }
    let _ = write!(s, ", peer {}", r.peer);
    match r.port {
        Some(p) => {
            let _ = write!(s, ", port {p}");
        }
        None => s.push_str(", all ports"),
    }
    let _ = write!(s, ": {}", policy.kind.action_word(r.action));
    s
}

/// Whether cluster policies selecting the pod on `dir`'s side have rules
/// for `dir` (so "not isolated" would not say why it is allowed).
#[must_use]
pub fn tier_rules(index: &ClusterIndex, flow: &Flow, dir: Direction) -> bool {
    side_pod(flow, dir)
        .is_some_and(|pod| index.cluster_policies_of(pod).iter().any(|id| index.cluster_policy(*id).has_rules(dir)))
}

fn side_pod(flow: &Flow, dir: Direction) -> Option<PodId> {
    let end = if dir == Direction::Egress { flow.src } else { flow.dst };
    match end {
        Endpoint::Pod { id, .. } => Some(id),
        Endpoint::External(_) => None,
    }
}

/// Writes one side in a short phrase (nothing for a side that is not a
/// pod), after the Pass rule evaluation went through, if any.
fn write_side(out: &mut impl Text, index: &ClusterIndex, flow: &Flow, dir: Direction, verdict: &Verdict) {
    if let Some(pass) = verdict.pass(dir) {
        out.push_str(&tier_ref(index, &pass));
        out.push_str(" -> ");
    }
    match verdict.side(dir) {
        SideVerdict::Tier(r) => {
            let word = if r.action == Action::Deny { " denied by " } else { " allowed by " };
            out.push_str(dir.as_str());
            out.push_str(word);
            out.push_str(&tier_ref(index, &r));
        }
        SideVerdict::NotAPod | SideVerdict::SamePod => {}
        SideVerdict::NotIsolated if tier_rules(index, flow, dir) => {
            out.push_str(dir.as_str());
            out.push_str(" allowed: no cluster policy rule matches and no NetworkPolicy isolates it");
        }
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
    let sides = if !verdict.ingress.allows() && verdict.egress.allows() {
        [Direction::Ingress, Direction::Egress]
    } else {
        [Direction::Egress, Direction::Ingress]
    };
    let written = |dir: Direction| !matches!(verdict.side(dir), SideVerdict::NotAPod | SideVerdict::SamePod);
    if written(sides[0]) {
        write_side(out, index, flow, sides[0], verdict);
        if written(sides[1]) {
            out.push_str("; ");
        }
    }
    if written(sides[1]) {
        write_side(out, index, flow, sides[1], verdict);
    }
}
