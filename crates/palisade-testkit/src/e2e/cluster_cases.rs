//! Truth tables for the cluster policy tiers (ClusterNetworkPolicy
//! v1alpha2, AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1)
//! on the e2e model. Every expectation is written by hand from the API's
//! documentation (`apis/v1alpha2/clusternetworkpolicy_types.go`):
//! - Admin tier first, by priority (lower first), rules in order; the first
//!   matching rule decides: Accept/Allow or Deny ends evaluation, Pass skips
//!   the rest of the Admin tier;
//! - then NetworkPolicy, which decides for the pods it isolates;
//! - then the Baseline tier, likewise; then allow;
//! - egress and ingress are decided apart: an egress Accept does not
//!   skip the destination's ingress;
//! - `networks` match pod addresses too; named ports resolve on the
//!   destination pod with the protocol the container port declares.
//!
//! Model addresses: x/a = 10.0.1.1 … z/c = 10.0.3.3 (first listed), and
//! fd00::1:1 … fd00::3:3.

use palisade_policy::Protocol::{Sctp, Tcp, Udp};

use super::Reach;
use super::cases::{ALL, TruthCase, policy};

/// A ClusterNetworkPolicy document.
#[must_use]
pub fn cnp(name: &str, tier: &str, priority: u32, rest: &str) -> String {
    format!(
        "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{tier: {tier}, priority: {priority}, {rest}}}\n"
    )
}

/// An AdminNetworkPolicy document.
#[must_use]
pub fn anp(name: &str, priority: u32, rest: &str) -> String {
    format!(
        "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{priority: {priority}, {rest}}}\n"
    )
}

/// The BaselineAdminNetworkPolicy document (always named `default`).
#[must_use]
pub fn banp(rest: &str) -> String {
    format!(
        "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec: {{{rest}}}\n"
    )
}

fn all(reach: &Reach) -> Vec<(u16, palisade_policy::Protocol, Reach)> {
    ALL.iter().map(|(p, proto)| (*p, *proto, reach.clone())).collect()
}

fn case(name: &'static str, policies: &[String], checks: Vec<(u16, palisade_policy::Protocol, Reach)>) -> TruthCase {
    TruthCase { name, policies: policies.concat(), checks }
}

const X: &str = "subject: {namespaces: {matchLabels: {ns: x}}}";
const Z: &str = "subject: {namespaces: {matchLabels: {ns: z}}}";

/// Every cluster policy case.
#[must_use]
pub fn cluster_cases() -> Vec<TruthCase> {
    let mut cases = tier_cases();
    cases.extend(order_cases());
    cases.extend(baseline_and_v1alpha1_cases());
    cases.extend(peer_and_port_cases());
    cases
}

/// Tiers and Pass.
fn tier_cases() -> Vec<TruthCase> {
    vec![
        case(
            "an admin Deny cannot be overridden by a NetworkPolicy",
            &[
                cnp(
                    "deny-y",
                    "Admin",
                    10,
                    &format!("{X}, ingress: [{{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                policy("x", "allow-all", "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}"),
            ],
            all(&Reach::new(true).expect("y", "x", false)),
        ),
        case(
            "an admin Accept overrides a NetworkPolicy's default deny",
            &[
                policy("x", "deny", "{podSelector: {}}"),
                cnp(
                    "accept-y",
                    "Admin",
                    10,
                    &format!("{X}, ingress: [{{action: Accept, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
            ],
            all(&Reach::new(true).expect("*", "x", false).expect("y", "x", true)),
        ),
        case(
            "Pass delegates to the namespace's NetworkPolicies",
            &[
                cnp(
                    "ns-isolation",
                    "Admin",
                    10,
                    &format!(
                        "{X}, ingress: [{{action: Pass, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}, \
                         {{action: Deny, from: [{{namespaces: {{}}}}]}}]"
                    ),
                ),
                policy(
                    "x",
                    "a-from-y-b",
                    "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]}",
                ),
            ],
            all(&Reach::new(true)
                .expect("x", "x", false)
                .expect("z", "x", false)
                .expect("y", "x/a", false)
                .expect("y/b", "x/a", true)),
        ),
        case(
            "Pass skips the rest of the Admin tier, not the Baseline tier",
            &[
                cnp(
                    "pass-y",
                    "Admin",
                    1,
                    &format!("{X}, ingress: [{{action: Pass, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                cnp(
                    "deny-y",
                    "Admin",
                    2,
                    &format!("{X}, ingress: [{{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                cnp(
                    "base-deny-y",
                    "Baseline",
                    5,
                    &format!("{X}, ingress: [{{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                policy(
                    "x",
                    "a-from-y",
                    "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}",
                ),
            ],
            all(&Reach::new(true)
                .expect("*", "x/a", false)
                .expect("y", "x/a", true)
                .expect("y", "x/b", false)
                .expect("y", "x/c", false)),
        ),
    ]
}

/// Priority, rule order, equal priorities.
fn order_cases() -> Vec<TruthCase> {
    vec![
        case(
            "a lower priority number is evaluated first",
            &[
                policy("x", "deny", "{podSelector: {}}"),
                cnp(
                    "accept-y",
                    "Admin",
                    20,
                    &format!("{X}, ingress: [{{action: Accept, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                cnp(
                    "deny-y-a",
                    "Admin",
                    10,
                    &format!(
                        "{X}, ingress: [{{action: Deny, from: [{{pods: {{namespaceSelector: {{matchLabels: {{ns: y}}}}, podSelector: {{matchLabels: {{pod: a}}}}}}}}]}}]"
                    ),
                ),
            ],
            all(&Reach::new(true).expect("*", "x", false).expect("y/b", "x", true).expect("y/c", "x", true)),
        ),
        case(
            "rules are evaluated in order within a policy",
            &[cnp(
                "ordered",
                "Admin",
                5,
                &format!(
                    "{X}, ingress: [{{action: Accept, from: [{{pods: {{namespaceSelector: {{matchLabels: {{ns: y}}}}, podSelector: {{matchLabels: {{pod: a}}}}}}}}]}}, \
                     {{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"
                ),
            )],
            all(&Reach::new(true).expect("y/b", "x", false).expect("y/c", "x", false)),
        ),
        case(
            "equal priorities are ordered by name (Palisade's documented choice)",
            &[
                cnp(
                    "b-deny",
                    "Admin",
                    5,
                    &format!("{X}, ingress: [{{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                cnp(
                    "a-accept",
                    "Admin",
                    5,
                    &format!("{X}, ingress: [{{action: Accept, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
            ],
            all(&Reach::new(true)),
        ),
    ]
}

/// The Baseline tier, egress against ingress, and the v1alpha1 kinds.
fn baseline_and_v1alpha1_cases() -> Vec<TruthCase> {
    vec![
        case(
            "the Baseline tier applies only to pods no NetworkPolicy isolates",
            &[
                banp("subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]"),
                policy(
                    "x",
                    "a-from-y",
                    "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}",
                ),
            ],
            all(&Reach::new(false).expect("y", "x/a", true)),
        ),
        case(
            "the Baseline tier still applies in a direction the NetworkPolicy does not isolate",
            &[
                cnp(
                    "base-no-egress",
                    "Baseline",
                    1,
                    &format!("{X}, egress: [{{action: Deny, to: [{{namespaces: {{}}}}]}}]"),
                ),
                policy(
                    "x",
                    "a-ingress-only",
                    "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress], ingress: [{}]}",
                ),
            ],
            all(&Reach::new(true).expect("x", "*", false)),
        ),
        case(
            "an egress Accept does not skip the destination's ingress policies",
            &[
                cnp("x-out", "Admin", 1, &format!("{X}, egress: [{{action: Accept, to: [{{namespaces: {{}}}}]}}]")),
                policy("y", "deny", "{podSelector: {}}"),
            ],
            all(&Reach::new(true).expect("*", "y", false)),
        ),
        case(
            "AdminNetworkPolicy (v1alpha1): Allow, then Deny",
            &[anp(
                "z-guard",
                3,
                &format!(
                    "{Z}, ingress: [{{action: Allow, from: [{{namespaces: {{matchLabels: {{ns: x}}}}}}], ports: [{{portNumber: {{protocol: TCP, port: 80}}}}]}}, \
                     {{action: Deny, from: [{{namespaces: {{}}}}]}}]"
                ),
            )],
            ALL.iter()
                .map(|(port, proto)| {
                    let reach = Reach::new(true).expect("*", "z", false);
                    let reach = if (*port, *proto) == (80, Tcp) { reach.expect("x", "z", true) } else { reach };
                    (*port, *proto, reach)
                })
                .collect(),
        ),
        case(
            "AdminNetworkPolicy and ClusterNetworkPolicy share the Admin tier by priority",
            &[
                policy("z", "deny", "{podSelector: {}}"),
                anp(
                    "deny-y",
                    1,
                    &format!("{Z}, ingress: [{{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                cnp(
                    "accept-all",
                    "Admin",
                    2,
                    &format!("{Z}, ingress: [{{action: Accept, from: [{{namespaces: {{}}}}]}}]"),
                ),
            ],
            all(&Reach::new(true).expect("y", "z", false)),
        ),
    ]
}

/// Peers (namespaces, pods, networks) and ports (numbers, ranges, named,
/// each protocol).
fn peer_and_port_cases() -> Vec<TruthCase> {
    vec![
        case(
            "egress to networks matches pod addresses, with an exception accepted first",
            &[
                cnp(
                    "y-ok",
                    "Admin",
                    1,
                    &format!("{X}, egress: [{{action: Accept, to: [{{networks: [10.0.2.0/24, 'fd00::2:0/112']}}]}}]"),
                ),
                cnp(
                    "no-pod-net",
                    "Admin",
                    2,
                    &format!("{X}, egress: [{{action: Deny, to: [{{networks: [10.0.0.0/16, 'fd00::/96']}}]}}]"),
                ),
            ],
            all(&Reach::new(true).expect("x", "x", false).expect("x", "z", false)),
        ),
        case(
            "port numbers and ranges per protocol",
            &[cnp(
                "ports",
                "Admin",
                1,
                &format!(
                    "{X}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}], \
                     protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}, {{udp: {{destinationPort: {{range: {{start: 80, end: 81}}}}}}}}]}}]"
                ),
            )],
            vec![
                (80, Tcp, Reach::new(true).expect("*", "x", false)),
                (81, Tcp, Reach::new(true)),
                (80, Udp, Reach::new(true).expect("*", "x", false)),
                (81, Udp, Reach::new(true).expect("*", "x", false)),
                (80, Sctp, Reach::new(true)),
                (81, Sctp, Reach::new(true)),
            ],
        ),
        case(
            "a named port resolves on the destination with its own protocol",
            &[cnp(
                "named",
                "Admin",
                1,
                &format!(
                    "{X}, ingress: [{{action: Deny, from: [{{namespaces: {{matchLabels: {{ns: y}}}}}}], protocols: [{{destinationNamedPort: serve-81-udp}}]}}]"
                ),
            )],
            ALL.iter()
                .map(|(port, proto)| {
                    let reach = if (*port, *proto) == (81, Udp) {
                        Reach::new(true).expect("y", "x", false)
                    } else {
                        Reach::new(true)
                    };
                    (*port, *proto, reach)
                })
                .collect(),
        ),
        case(
            "SCTP ports, and a pods subject",
            &[cnp(
                "sctp-c",
                "Admin",
                1,
                "subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}}, \
                 ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{sctp: {destinationPort: {number: 81}}}]}]",
            )],
            ALL.iter()
                .map(|(port, proto)| {
                    let reach = if (*port, *proto) == (81, Sctp) {
                        Reach::new(true).expect("*", "*/c", false)
                    } else {
                        Reach::new(true)
                    };
                    (*port, *proto, reach)
                })
                .collect(),
        ),
        case(
            "a Baseline egress Pass leaves the default (allow)",
            &[
                cnp(
                    "base-pass",
                    "Baseline",
                    1,
                    &format!("{X}, egress: [{{action: Pass, to: [{{namespaces: {{matchLabels: {{ns: y}}}}}}]}}]"),
                ),
                cnp(
                    "base-deny",
                    "Baseline",
                    2,
                    &format!("{X}, egress: [{{action: Deny, to: [{{namespaces: {{}}}}]}}]"),
                ),
            ],
            all(&Reach::new(true).expect("x", "x", false).expect("x", "z", false)),
        ),
    ]
}
