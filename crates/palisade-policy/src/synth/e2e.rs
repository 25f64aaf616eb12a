//! The upstream e2e model cluster and seeded random policies over it, for
//! property tests and the lab's differential test.
//!
//! Namespaces x, y, z (labelled `ns=<name>`); pods a, b, c in each
//! (labelled `pod=<name>`), x/a at 10.0.1.1 and fd00::1:1 up to z/c at
//! 10.0.3.3 and fd00::3:3; every pod serves 80 and 81 on TCP, UDP and SCTP
//! with named ports `serve-<port>-<proto>`.

use std::net::IpAddr;

use super::Rng;
use crate::cluster_policy::{
    Action, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, Subject, Tier,
};
use crate::model::{
    ContainerPort, IpBlock, LabelSelector, Labels, Namespace, NetworkPolicy, Operator, Peer, Pod, PodState, PortTarget,
    Protocol, Requirement, Rule, RulePort,
};

/// Model namespaces.
pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
/// Model pod names.
pub const PODS: [&str; 3] = ["a", "b", "c"];
/// Model ports.
pub const PORTS: [u16; 2] = [80, 81];

/// The model's namespaces and pods.
#[must_use]
pub fn model() -> (Vec<Namespace>, Vec<Pod>) {
    let mut namespaces = Vec::new();
    let mut pods = Vec::new();
    for (n, ns) in NAMESPACES.iter().enumerate() {
        namespaces.push(Namespace { name: (*ns).into(), labels: Labels::from([("ns".into(), (*ns).into())]) });
        for (p, pod) in PODS.iter().enumerate() {
            let v4: IpAddr = format!("10.0.{}.{}", n + 1, p + 1).parse().expect("literal address");
            let v6: IpAddr = format!("fd00::{}:{}", n + 1, p + 1).parse().expect("literal address");
            let ports = PORTS
                .iter()
                .flat_map(|port| {
                    Protocol::ALL.iter().map(move |proto| ContainerPort {
                        name: Some(format!("serve-{port}-{}", proto.as_str().to_lowercase())),
                        port: *port,
                        protocol: *proto,
                    })
                })
                .collect();
            pods.push(Pod {
                namespace: (*ns).into(),
                name: (*pod).into(),
                labels: Labels::from([("pod".into(), (*pod).into())]),
                ips: vec![v4, v6],
                ports,
                node_name: Some("node".into()),
                state: PodState::Active,
                workload: None,
            });
        }
    }
    (namespaces, pods)
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

fn random_selector(rng: &mut Rng, key: &str, values: &[&str]) -> LabelSelector {
    let mut sel = LabelSelector::default();
    match rng.below(6) {
        0 => {}
        1 | 2 => {
            sel.match_labels.insert(key.into(), pick(rng, values).into());
        }
        3 => sel.match_expressions.push(Requirement {
            key: key.into(),
            operator: Operator::In,
            values: vec![pick(rng, values).into(), pick(rng, values).into()],
        }),
        4 => sel.match_expressions.push(Requirement {
            key: key.into(),
            operator: Operator::NotIn,
            values: vec![pick(rng, values).into()],
        }),
        _ => sel.match_expressions.push(Requirement {
            key: key.into(),
            operator: if rng.below(2) == 0 { Operator::Exists } else { Operator::DoesNotExist },
            values: Vec::new(),
        }),
    }
    sel
}

/// A random peer over the model.
pub fn random_peer(rng: &mut Rng) -> Peer {
    match rng.below(5) {
        0 => Peer::Pods { namespace_selector: None, pod_selector: Some(random_selector(rng, "pod", &PODS)) },
        1 => Peer::Pods { namespace_selector: Some(random_selector(rng, "ns", &NAMESPACES)), pod_selector: None },
        2 | 3 => Peer::Pods {
            namespace_selector: Some(random_selector(rng, "ns", &NAMESPACES)),
            pod_selector: Some(random_selector(rng, "pod", &PODS)),
        },
        _ => {
            // A namespace's /24 (or all pods' /16), sometimes minus one pod.
            let n = rng.below(4);
            let cidr = if n == 0 { "10.0.0.0/16".to_string() } else { format!("10.0.{n}.0/24") };
            let except = if rng.below(2) == 0 {
                Vec::new()
            } else {
                let ns = if n == 0 { rng.below(3) + 1 } else { n };
                vec![format!("10.0.{ns}.{}/32", rng.below(3) + 1).parse().expect("generated CIDR")]
            };
            Peer::IpBlock(IpBlock { cidr: cidr.parse().expect("generated CIDR"), except })
        }
    }
}

/// A random rule port over the model.
pub fn random_port(rng: &mut Rng) -> RulePort {
    let protocol = Protocol::ALL[rng.below(3)];
    let port = PORTS[rng.below(2)];
    let target = match rng.below(5) {
        0 => PortTarget::Any,
        1 => PortTarget::Range { start: 80, end: 81 },
        2 => PortTarget::Named(format!("serve-{port}-{}", Protocol::ALL[rng.below(3)].as_str().to_lowercase())),
        _ => PortTarget::Range { start: port, end: port },
    };
    RulePort { protocol, target }
}

/// A random rule: sometimes all peers or all ports.
pub fn random_rule(rng: &mut Rng) -> Rule {
    let peers = if rng.below(5) == 0 { Vec::new() } else { (0..=rng.below(2)).map(|_| random_peer(rng)).collect() };
    let ports = if rng.below(3) == 0 { Vec::new() } else { (0..=rng.below(2)).map(|_| random_port(rng)).collect() };
    Rule { peers, ports }
}

/// `count` random policies over the model, named `p0`, `p1`, … .
#[must_use]
pub fn random_policies(rng: &mut Rng, count: usize) -> Vec<NetworkPolicy> {
    (0..count)
        .map(|i| {
            let isolates_ingress = rng.below(4) != 0;
            let isolates_egress = !isolates_ingress || rng.below(3) == 0;
            let rules = |rng: &mut Rng| (0..rng.below(3)).map(|_| random_rule(rng)).collect::<Vec<_>>();
            NetworkPolicy {
                namespace: NAMESPACES[rng.below(3)].into(),
                name: format!("p{i}"),
                pod_selector: random_selector(rng, "pod", &PODS),
                isolates_ingress,
                isolates_egress,
                ingress: if isolates_ingress { rules(rng) } else { Vec::new() },
                egress: if isolates_egress { rules(rng) } else { Vec::new() },
                enforcement: crate::Enforcement::Enforce,
                log_allowed: false,
            }
        })
        .collect()
}

/// A random cluster policy rule over the model: any action, one or two
/// peers (egress: sometimes a namespace's /24 or all pods' /16), no ports
/// or one or two (named ports only with pod peers, as validation requires).
pub fn random_cluster_rule(rng: &mut Rng, egress: bool) -> ClusterRule {
    let action = [Action::Accept, Action::Deny, Action::Pass][rng.below(3)];
    let peers: Vec<ClusterPeer> = (0..=rng.below(2))
        .map(|_| match rng.below(if egress { 5 } else { 4 }) {
            0 => ClusterPeer::Namespaces(random_selector(rng, "ns", &NAMESPACES)),
            1..=3 => ClusterPeer::Pods {
                namespaces: random_selector(rng, "ns", &NAMESPACES),
                pods: random_selector(rng, "pod", &PODS),
            },
            _ => {
                let n = rng.below(4);
                let cidr = if n == 0 { "10.0.0.0/16".to_string() } else { format!("10.0.{n}.0/24") };
                ClusterPeer::Networks(vec![cidr.parse().expect("generated CIDR")])
            }
        })
        .collect();
    let named_ok = !peers.iter().any(|p| matches!(p, ClusterPeer::Networks(_)));
    let ports = (rng.below(3) != 0).then(|| {
        (0..=rng.below(2))
            .map(|_| {
                let port = PORTS[rng.below(2)];
                match rng.below(4) {
                    0 if named_ok => ClusterPort::Named(format!(
                        "serve-{port}-{}",
                        Protocol::ALL[rng.below(3)].as_str().to_lowercase()
                    )),
                    1 => ClusterPort::Range { protocol: Protocol::ALL[rng.below(3)], start: 80, end: 81 },
                    _ => ClusterPort::Range { protocol: Protocol::ALL[rng.below(3)], start: port, end: port },
                }
            })
            .collect()
    });
    ClusterRule { name: None, action, peers, ports }
}

/// `count` random ClusterNetworkPolicies of both tiers over the model,
/// named `c0`, `c1`, … (priorities 0–3, so equal priorities are common).
#[must_use]
pub fn random_cluster_policies(rng: &mut Rng, count: usize) -> Vec<ClusterPolicy> {
    (0..count)
        .map(|i| {
            let subject = if rng.below(2) == 0 {
                Subject::Namespaces(random_selector(rng, "ns", &NAMESPACES))
            } else {
                Subject::Pods {
                    namespaces: random_selector(rng, "ns", &NAMESPACES),
                    pods: random_selector(rng, "pod", &PODS),
                }
            };
            let rules =
                |rng: &mut Rng, egress: bool| (0..rng.below(3)).map(|_| random_cluster_rule(rng, egress)).collect();
            ClusterPolicy {
                kind: ClusterPolicyKind::ClusterNetworkPolicy,
                name: format!("c{i}"),
                tier: if rng.below(2) == 0 { Tier::Admin } else { Tier::Baseline },
                priority: Some(u32::try_from(rng.below(4)).expect("small")),
                subject,
                ingress: rules(rng, false),
                egress: rules(rng, true),
            }
        })
        .collect()
}
