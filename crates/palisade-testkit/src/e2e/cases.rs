//! The truth tables as data: each case is a set of policies over the model
//! and hand-written expectations for some (port, protocol) pairs. The engine
//! test (`truth_tables.rs`) and the lab test (`palisade-lab`, real packets)
//! both check every case.

use palisade_policy::Protocol;
use palisade_policy::Protocol::{Sctp, Tcp, Udp};

use super::Reach;

/// One truth table case.
#[derive(Clone, Debug)]
pub struct TruthCase {
    /// What it shows.
    pub name: &'static str,
    /// Policies (YAML documents).
    pub policies: String,
    /// Expected reachability per port and protocol.
    pub checks: Vec<(u16, Protocol, Reach)>,
}

/// A NetworkPolicy document.
#[must_use]
pub fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

/// Every port and protocol of the model.
pub const ALL: [(u16, Protocol); 6] = [(80, Tcp), (81, Tcp), (80, Udp), (81, Udp), (80, Sctp), (81, Sctp)];

fn all(reach: &Reach) -> Vec<(u16, Protocol, Reach)> {
    ALL.iter().map(|(p, proto)| (*p, *proto, reach.clone())).collect()
}

fn case(name: &'static str, policies: String, checks: Vec<(u16, Protocol, Reach)>) -> TruthCase {
    TruthCase { name, policies, checks }
}

fn a_ingress(spec_rest: &str) -> String {
    policy("x", "p", &format!("{{podSelector: {{matchLabels: {{pod: a}}}}, {spec_rest}}}"))
}

/// Every case, expectations written by hand from the API reference.
#[must_use]
pub fn cases() -> Vec<TruthCase> {
    let open = Reach::new(true);
    let xa_closed = Reach::new(true).expect("*", "x/a", false);
    vec![
        case("no policies allow everything", String::new(), all(&open)),
        case(
            "default deny ingress (policyTypes defaults to [Ingress])",
            policy("x", "deny", "{podSelector: {}}"),
            all(&Reach::new(true).expect("*", "x/*", false)),
        ),
        case(
            "default deny egress",
            policy("x", "deny", "{podSelector: {}, policyTypes: [Egress]}"),
            all(&Reach::new(true).expect("x/*", "*", false)),
        ),
        case("ingress: [] admits nothing", a_ingress("ingress: []"), all(&xa_closed)),
        case("ingress: [{}] admits everything", a_ingress("ingress: [{}]"), all(&open)),
        case("from: [] and ports: [] mean all", a_ingress("ingress: [{from: [], ports: []}]"), all(&open)),
        case(
            "podSelector {} peer is the own namespace only",
            policy("x", "same-ns", "{podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}"),
            all(&Reach::new(true).expect("*", "x/*", false).expect("x/*", "x/*", true)),
        ),
        case(
            "podSelector peer is the policy's namespace",
            a_ingress("ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]"),
            all(&xa_closed.clone().expect("x/b", "x/a", true)),
        ),
        case(
            "namespaceSelector peer",
            a_ingress("ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]"),
            all(&xa_closed.clone().expect("y/*", "x/a", true)),
        ),
        case(
            "namespaceSelector and podSelector in one peer: AND",
            a_ingress(
                "ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y]}]}, podSelector: {matchLabels: {pod: b}}}]}]",
            ),
            all(&xa_closed.clone().expect("y/b", "x/a", true)),
        ),
        case(
            "namespaceSelector and podSelector in two peers: OR",
            a_ingress(
                "ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]",
            ),
            all(&xa_closed.clone().expect("y/*", "x/a", true).expect("x/b", "x/a", true)),
        ),
        case(
            "namespaceSelector {} with podSelector: those pods in every namespace",
            a_ingress("ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}]}]"),
            all(&xa_closed.clone().expect("*/c", "x/a", true)),
        ),
        case(
            "namespaceSelector {} alone: every pod",
            a_ingress("ingress: [{from: [{namespaceSelector: {}}]}]"),
            all(&open),
        ),
        case(
            "NotIn",
            a_ingress(
                "ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}}]}]",
            ),
            all(&Reach::new(true).expect("x/*", "x/a", false)),
        ),
        case(
            "Exists",
            a_ingress("ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: Exists}]}}]}]"),
            all(&xa_closed.clone().expect("x/*", "x/a", true)),
        ),
        case(
            "DoesNotExist",
            a_ingress("ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: DoesNotExist}]}}]}]"),
            all(&xa_closed),
        ),
        case(
            "podSelector In selects both pods",
            policy("x", "p", "{podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}}"),
            all(&Reach::new(true).expect("*", "x/a", false).expect("*", "x/b", false)),
        ),
        case(
            "kubernetes.io/metadata.name is always present",
            a_ingress("ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]"),
            all(&xa_closed.clone().expect("z/*", "x/a", true)),
        ),
        case(
            "a numbered port defaults to TCP",
            a_ingress("ingress: [{ports: [{port: 80}]}]"),
            vec![
                (80, Tcp, open.clone()),
                (81, Tcp, xa_closed.clone()),
                (80, Udp, xa_closed.clone()),
                (81, Udp, xa_closed.clone()),
                (80, Sctp, xa_closed.clone()),
                (81, Sctp, xa_closed.clone()),
            ],
        ),
        case(
            "named ports resolve on the destination",
            a_ingress("ingress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]"),
            vec![
                (81, Udp, open.clone()),
                (80, Udp, xa_closed.clone()),
                (81, Tcp, xa_closed.clone()),
                (80, Tcp, xa_closed.clone()),
                (81, Sctp, xa_closed.clone()),
            ],
        ),
        case(
            "a named port with the wrong protocol matches nothing",
            a_ingress("ingress: [{ports: [{port: serve-80-udp}]}]"),
            all(&xa_closed),
        ),
        case(
            "endPort ranges",
            a_ingress("ingress: [{ports: [{protocol: SCTP, port: 80, endPort: 81}]}]"),
            vec![
                (80, Sctp, open.clone()),
                (81, Sctp, open.clone()),
                (80, Tcp, xa_closed.clone()),
                (81, Tcp, xa_closed.clone()),
                (80, Udp, xa_closed.clone()),
                (81, Udp, xa_closed.clone()),
            ],
        ),
        case(
            "a range ending at 80",
            a_ingress("ingress: [{ports: [{port: 79, endPort: 80}]}]"),
            vec![(80, Tcp, open.clone()), (81, Tcp, xa_closed.clone())],
        ),
        case(
            "several ports in one rule",
            a_ingress("ingress: [{ports: [{port: 80, protocol: UDP}, {port: 81}]}]"),
            vec![
                (80, Udp, open.clone()),
                (81, Tcp, open.clone()),
                (80, Tcp, xa_closed.clone()),
                (81, Udp, xa_closed.clone()),
            ],
        ),
        case(
            "egress to pods on a port",
            policy(
                "x",
                "p",
                "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {pod: a}}}], ports: [{port: 80}]}]}",
            ),
            vec![
                (80, Tcp, Reach::new(true).expect("x/*", "*", false).expect("x/*", "x/a", true)),
                (81, Tcp, Reach::new(true).expect("x/*", "*", false)),
                (80, Udp, Reach::new(true).expect("x/*", "*", false)),
                (80, Sctp, Reach::new(true).expect("x/*", "*", false)),
            ],
        ),
        case(
            "an egress named port resolves on the peer",
            policy(
                "x",
                "p",
                "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]}",
            ),
            vec![(81, Udp, open.clone()), (80, Udp, Reach::new(true).expect("x/*", "*", false))],
        ),
        case(
            "policyTypes [Egress] ignores ingress rules",
            a_ingress(
                "policyTypes: [Egress], ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}], egress: [{}]",
            ),
            all(&open),
        ),
        case(
            "policyTypes defaults to [Ingress, Egress] when there are egress rules",
            a_ingress("egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]"),
            all(&Reach::new(true).expect("*", "x/a", false).expect("x/a", "*", false).expect("x/a", "x/b", true)),
        ),
        case(
            "policies are additive",
            policy(
                "x",
                "from-b",
                "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
            ) + &policy(
                "x",
                "from-y",
                "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}",
            ),
            all(&Reach::new(true).expect("*", "x/a", false).expect("x/b", "x/a", true).expect("y/*", "x/a", true)),
        ),
        case(
            "egress at the source AND ingress at the destination",
            policy(
                "x",
                "egress-a",
                "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: a}}}]}]}",
            ) + &policy(
                "y",
                "ingress-from-xb",
                "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: b}}}]}]}",
            ),
            // x/a may only send to y/a, but y/a only accepts x/b: x/a reaches nothing.
            all(&Reach::new(true).expect("x/a", "*", false).expect("*", "y/*", false).expect("x/b", "y/*", true)),
        ),
        case(
            "a policy selects pods of its own namespace only",
            policy("y", "deny-a", "{podSelector: {matchLabels: {pod: a}}}"),
            all(&Reach::new(true).expect("*", "y/a", false)),
        ),
        case(
            "ipBlock matches pod addresses",
            a_ingress("ingress: [{from: [{ipBlock: {cidr: 10.0.2.1/32}}]}]"),
            all(&Reach::new(true).expect("*", "x/a", false).expect("y/a", "x/a", true)),
        ),
        case(
            "ipBlock except carves out addresses",
            a_ingress("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.2/32, 10.0.3.0/24]}}]}]"),
            all(&Reach::new(true).expect("y/b", "x/a", false).expect("z/*", "x/a", false)),
        ),
    ]
}
