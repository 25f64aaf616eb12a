//! proptest strategies for NetworkPolicies over the e2e model: the same
//! vocabulary as `palisade_policy::synth::e2e::random_policies`, built from
//! proptest's combinators so that a failing case shrinks (fewer policies,
//! fewer rules, peers and ports, simpler selectors, alternatives listed
//! first being the simpler ones).

use palisade_policy::synth::e2e::{NAMESPACES, PODS, PORTS};
use palisade_policy::{
    Action, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, IpBlock, LabelSelector,
    NetworkPolicy, Operator, Peer, PortTarget, Protocol, Requirement, Rule, RulePort, Subject, Tier,
};
use proptest::prelude::*;

fn value(values: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(values).prop_map(str::to_string)
}

/// A selector on `key` with one of `values`: empty, matchLabels, or one
/// requirement of each operator.
pub fn selector(key: &'static str, values: &'static [&'static str]) -> impl Strategy<Value = LabelSelector> {
    let requirement = |operator: Operator, values: Vec<String>| {
        let mut s = LabelSelector::default();
        s.match_expressions.push(Requirement { key: key.into(), operator, values });
        s
    };
    prop_oneof![
        Just(LabelSelector::default()),
        value(values).prop_map(move |v| {
            let mut s = LabelSelector::default();
            s.match_labels.insert(key.into(), v);
            s
        }),
        (value(values), value(values)).prop_map(move |(a, b)| requirement(Operator::In, vec![a, b])),
        value(values).prop_map(move |v| requirement(Operator::NotIn, vec![v])),
        Just(requirement(Operator::Exists, Vec::new())),
        Just(requirement(Operator::DoesNotExist, Vec::new())),
    ]
}

fn block() -> impl Strategy<Value = IpBlock> {
    // A namespace's /24 (or all pods' /16), sometimes minus one pod.
    (0u8..4, proptest::option::of((1u8..4, 1u8..4))).prop_map(|(n, except)| {
        let cidr = if n == 0 { "10.0.0.0/16".to_string() } else { format!("10.0.{n}.0/24") };
        let except = except
            .map(|(ns, pod)| {
                let ns = if n == 0 { ns } else { n };
                vec![format!("10.0.{ns}.{pod}/32").parse().expect("generated CIDR")]
            })
            .unwrap_or_default();
        IpBlock { cidr: cidr.parse().expect("generated CIDR"), except }
    })
}

/// A peer: pods by podSelector, namespaceSelector or both, or an ipBlock.
pub fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        selector("pod", &PODS).prop_map(|p| Peer::Pods { namespace_selector: None, pod_selector: Some(p) }),
        selector("ns", &NAMESPACES).prop_map(|n| Peer::Pods { namespace_selector: Some(n), pod_selector: None }),
        (selector("ns", &NAMESPACES), selector("pod", &PODS))
            .prop_map(|(n, p)| Peer::Pods { namespace_selector: Some(n), pod_selector: Some(p) }),
        block().prop_map(Peer::IpBlock),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    proptest::sample::select(Protocol::ALL.to_vec())
}

/// A rule port: any port, a range, a number, or a named port of the model.
pub fn port() -> impl Strategy<Value = RulePort> {
    let port = proptest::sample::select(PORTS.to_vec());
    let target = prop_oneof![
        Just(PortTarget::Any),
        port.clone().prop_map(|p| PortTarget::Range { start: p, end: p }),
        Just(PortTarget::Range { start: 80, end: 81 }),
        (port, protocol())
            .prop_map(|(p, proto)| PortTarget::Named(format!("serve-{p}-{}", proto.as_str().to_lowercase()))),
    ];
    (protocol(), target).prop_map(|(protocol, target)| RulePort { protocol, target })
}

/// A rule: no peers (all) or up to two, no ports (all) or up to two.
pub fn rule() -> impl Strategy<Value = Rule> {
    (proptest::collection::vec(peer(), 0..=2), proptest::collection::vec(port(), 0..=2))
        .prop_map(|(peers, ports)| Rule { peers, ports })
}

/// One policy (named later by [`policies`]).
pub fn policy() -> impl Strategy<Value = NetworkPolicy> {
    let types = prop_oneof![Just((true, false)), Just((false, true)), Just((true, true))];
    let rules = || proptest::collection::vec(rule(), 0..=2);
    (proptest::sample::select(NAMESPACES.to_vec()), selector("pod", &PODS), types, rules(), rules()).prop_map(
        |(namespace, pod_selector, (isolates_ingress, isolates_egress), ingress, egress)| NetworkPolicy {
            namespace: namespace.into(),
            name: String::new(),
            pod_selector,
            isolates_ingress,
            isolates_egress,
            ingress: if isolates_ingress { ingress } else { Vec::new() },
            egress: if isolates_egress { egress } else { Vec::new() },
            enforcement: palisade_policy::Enforcement::Enforce,
            log_allowed: false,
        },
    )
}

/// Up to `max` policies, named `p0`, `p1`, … .
pub fn policies(max: usize) -> impl Strategy<Value = Vec<NetworkPolicy>> {
    proptest::collection::vec(policy(), 0..=max).prop_map(|mut ps| {
        for (i, p) in ps.iter_mut().enumerate() {
            p.name = format!("p{i}");
        }
        ps
    })
}

/// A cluster policy peer: namespaces, pods, or networks (egress only).
fn cluster_peer(egress: bool) -> BoxedStrategy<ClusterPeer> {
    let pods = prop_oneof![
        selector("ns", &NAMESPACES).prop_map(ClusterPeer::Namespaces),
        (selector("ns", &NAMESPACES), selector("pod", &PODS))
            .prop_map(|(namespaces, pods)| ClusterPeer::Pods { namespaces, pods }),
    ];
    if egress {
        prop_oneof![3 => pods, 1 => block().prop_map(|b| ClusterPeer::Networks(vec![b.cidr]))].boxed()
    } else {
        pods.boxed()
    }
}

/// A cluster policy port: a number or range of one protocol, or a named
/// port of the model (not with networks peers, as validation requires).
fn cluster_port(named: bool) -> BoxedStrategy<ClusterPort> {
    let port = proptest::sample::select(PORTS.to_vec());
    let range = prop_oneof![
        (protocol(), port.clone()).prop_map(|(protocol, p)| ClusterPort::Range { protocol, start: p, end: p }),
        protocol().prop_map(|protocol| ClusterPort::Range { protocol, start: 80, end: 81 }),
    ];
    if named {
        prop_oneof![
            range,
            (port, protocol())
                .prop_map(|(p, proto)| ClusterPort::Named(format!("serve-{p}-{}", proto.as_str().to_lowercase()))),
        ]
        .boxed()
    } else {
        range.boxed()
    }
}

/// A cluster policy rule: any action, one or two peers, no ports (all) or
/// one or two.
pub fn cluster_rule(egress: bool) -> impl Strategy<Value = ClusterRule> {
    let action = prop_oneof![Just(Action::Accept), Just(Action::Deny), Just(Action::Pass)];
    (action, proptest::collection::vec(cluster_peer(egress), 1..=2), proptest::option::of(0..=2usize)).prop_flat_map(
        |(action, peers, ports)| {
            let named = !peers.iter().any(|p| matches!(p, ClusterPeer::Networks(_)));
            let ports = match ports {
                None => Just(None).boxed(),
                Some(n) => proptest::collection::vec(cluster_port(named), n.max(1)).prop_map(Some).boxed(),
            };
            ports.prop_map(move |ports| ClusterRule { name: None, action, peers: peers.clone(), ports })
        },
    )
}

/// A ClusterNetworkPolicy of either tier (named later by
/// [`cluster_policies`]).
pub fn cluster_policy() -> impl Strategy<Value = ClusterPolicy> {
    let tier = prop_oneof![Just(Tier::Admin), Just(Tier::Baseline)];
    let subject = prop_oneof![
        selector("ns", &NAMESPACES).prop_map(Subject::Namespaces),
        (selector("ns", &NAMESPACES), selector("pod", &PODS))
            .prop_map(|(namespaces, pods)| Subject::Pods { namespaces, pods }),
    ];
    let rules = |egress: bool| proptest::collection::vec(cluster_rule(egress), 0..=2);
    (tier, 0u32..4, subject, rules(false), rules(true)).prop_map(|(tier, priority, subject, ingress, egress)| {
        ClusterPolicy {
            kind: ClusterPolicyKind::ClusterNetworkPolicy,
            name: String::new(),
            tier,
            priority: Some(priority),
            subject,
            ingress,
            egress,
        }
    })
}

/// Up to `max` cluster policies, named `c0`, `c1`, … (few distinct
/// priorities, so equal priorities are common).
pub fn cluster_policies(max: usize) -> impl Strategy<Value = Vec<ClusterPolicy>> {
    proptest::collection::vec(cluster_policy(), 0..=max).prop_map(|mut ps| {
        for (i, p) in ps.iter_mut().enumerate() {
            p.name = format!("c{i}");
        }
        ps
    })
}
