//! NetworkPolicy truth tables on the upstream e2e model (namespaces x, y, z;
//! pods a, b, c; ports 80/81; TCP, UDP, SCTP). Every expectation is written
//! by hand from the API reference, never produced by the engine.

mod model;

use model::{Reach, assert_reach, cluster};
use palisade_policy::Protocol::{Sctp, Tcp, Udp};
use palisade_policy::{ClusterIndex, Endpoint, Flow, Protocol};

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

const ALL_CASES: [(u16, Protocol); 6] = [(80, Tcp), (81, Tcp), (80, Udp), (81, Udp), (80, Sctp), (81, Sctp)];

fn assert_all_cases(index: &ClusterIndex, expected: &Reach, what: &str) {
    for (port, proto) in ALL_CASES {
        assert_reach(index, port, proto, expected, what);
    }
}

#[test]
fn no_policies_allow_everything() {
    assert_all_cases(&cluster(""), &Reach::new(true), "no policies");
}

#[test]
fn default_deny_ingress() {
    // policyTypes absent and no rules: defaults to [Ingress] and admits nothing.
    let index = cluster(&policy("x", "deny", "{podSelector: {}}"));
    assert_all_cases(&index, &Reach::new(true).expect("*", "x/*", false), "deny all ingress in x");
}

#[test]
fn default_deny_egress() {
    let index = cluster(&policy("x", "deny", "{podSelector: {}, policyTypes: [Egress]}"));
    assert_all_cases(&index, &Reach::new(true).expect("x/*", "*", false), "deny all egress from x");
}

#[test]
fn empty_ingress_list_denies_and_empty_rule_allows() {
    let deny = cluster(&policy("x", "p", "{podSelector: {matchLabels: {pod: a}}, ingress: []}"));
    assert_all_cases(&deny, &Reach::new(true).expect("*", "x/a", false), "ingress: []");
    let allow = cluster(&policy("x", "p", "{podSelector: {matchLabels: {pod: a}}, ingress: [{}]}"));
    assert_all_cases(&allow, &Reach::new(true), "ingress: [{}]");
    let allow_empty_from =
        cluster(&policy("x", "p", "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [], ports: []}]}"));
    assert_all_cases(&allow_empty_from, &Reach::new(true), "from: [] and ports: [] mean all");
}

#[test]
fn allow_from_same_namespace() {
    let index = cluster(&policy("x", "same-ns", "{podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}"));
    let expected = Reach::new(true).expect("*", "x/*", false).expect("x/*", "x/*", true);
    assert_all_cases(&index, &expected, "podSelector {} peer = own namespace only");
}

#[test]
fn pod_selector_peer_is_own_namespace() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
    ));
    // y/b and z/b carry pod=b too, but a podSelector peer alone is the policy's namespace.
    let expected = Reach::new(true).expect("*", "x/a", false).expect("x/b", "x/a", true);
    assert_all_cases(&index, &expected, "podSelector peer");
}

#[test]
fn namespace_selector_peer() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}",
    ));
    let expected = Reach::new(true).expect("*", "x/a", false).expect("y/*", "x/a", true);
    assert_all_cases(&index, &expected, "namespaceSelector peer");
}

#[test]
fn namespace_and_pod_selector_in_one_peer_is_and() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y]}]}, podSelector: {matchLabels: {pod: b}}}]}]}",
    ));
    let expected = Reach::new(true).expect("*", "x/a", false).expect("y/b", "x/a", true);
    assert_all_cases(&index, &expected, "one peer: AND");
}

#[test]
fn namespace_and_pod_selector_in_two_peers_is_or() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]}",
    ));
    let expected = Reach::new(true).expect("*", "x/a", false).expect("y/*", "x/a", true).expect("x/b", "x/a", true);
    assert_all_cases(&index, &expected, "two peers: OR");
}

#[test]
fn empty_namespace_selector_means_all_namespaces() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}]}]}",
    ));
    let expected = Reach::new(true).expect("*", "x/a", false).expect("*/c", "x/a", true);
    assert_all_cases(&index, &expected, "namespaceSelector {} + podSelector");
    let all = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {}}]}]}",
    ));
    assert_all_cases(&all, &Reach::new(true), "namespaceSelector {} alone: every pod");
}

#[test]
fn match_expressions_operators() {
    let not_in = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}}]}]}",
    ));
    let expected = Reach::new(true).expect("x/*", "x/a", false);
    assert_all_cases(&not_in, &expected, "NotIn");

    let exists = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: Exists}]}}]}]}",
    ));
    let expected = Reach::new(true).expect("*", "x/a", false).expect("x/*", "x/a", true);
    assert_all_cases(&exists, &expected, "Exists");

    let does_not_exist = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: DoesNotExist}]}}]}]}",
    ));
    assert_all_cases(&does_not_exist, &Reach::new(true).expect("*", "x/a", false), "DoesNotExist");

    let target_in =
        cluster(&policy("x", "p", "{podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}}"));
    assert_all_cases(
        &target_in,
        &Reach::new(true).expect("*", "x/a", false).expect("*", "x/b", false),
        "podSelector In",
    );
}

#[test]
fn namespace_name_label_is_always_present() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]}",
    ));
    assert_all_cases(
        &index,
        &Reach::new(true).expect("*", "x/a", false).expect("z/*", "x/a", true),
        "metadata.name label",
    );
}

#[test]
fn numbered_port_defaults_to_tcp() {
    let index = cluster(&policy("x", "p", "{podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: 80}]}]}"));
    let closed = Reach::new(true).expect("*", "x/a", false);
    assert_reach(&index, 80, Tcp, &Reach::new(true), "TCP 80 open");
    for (port, proto) in [(81, Tcp), (80, Udp), (81, Udp), (80, Sctp), (81, Sctp)] {
        assert_reach(&index, port, proto, &closed, "only TCP 80");
    }
}

#[test]
fn named_ports_resolve_on_the_destination() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]}",
    ));
    let closed = Reach::new(true).expect("*", "x/a", false);
    assert_reach(&index, 81, Udp, &Reach::new(true), "named UDP 81 open");
    for (port, proto) in [(80, Udp), (81, Tcp), (80, Tcp), (81, Sctp)] {
        assert_reach(&index, port, proto, &closed, "only serve-81-udp");
    }
    // The name exists only for UDP; the rule asks for it on TCP (the default): nothing matches.
    let wrong_protocol = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: serve-80-udp}]}]}",
    ));
    assert_all_cases(&wrong_protocol, &closed, "named port with the wrong protocol");
}

#[test]
fn end_port_ranges() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{protocol: SCTP, port: 80, endPort: 81}]}]}",
    ));
    let closed = Reach::new(true).expect("*", "x/a", false);
    assert_reach(&index, 80, Sctp, &Reach::new(true), "SCTP 80 in range");
    assert_reach(&index, 81, Sctp, &Reach::new(true), "SCTP 81 in range");
    for (port, proto) in [(80, Tcp), (81, Tcp), (80, Udp), (81, Udp)] {
        assert_reach(&index, port, proto, &closed, "range is SCTP only");
    }
    let narrow = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: 79, endPort: 80}]}]}",
    ));
    assert_reach(&narrow, 80, Tcp, &Reach::new(true), "80 in 79-80");
    assert_reach(&narrow, 81, Tcp, &closed, "81 outside 79-80");
}

#[test]
fn several_ports_in_one_rule() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: 80, protocol: UDP}, {port: 81}]}]}",
    ));
    let closed = Reach::new(true).expect("*", "x/a", false);
    assert_reach(&index, 80, Udp, &Reach::new(true), "UDP 80");
    assert_reach(&index, 81, Tcp, &Reach::new(true), "TCP 81");
    assert_reach(&index, 80, Tcp, &closed, "TCP 80 not listed");
    assert_reach(&index, 81, Udp, &closed, "UDP 81 not listed");
}

#[test]
fn egress_to_pods_on_a_port() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {pod: a}}}], ports: [{port: 80}]}]}",
    ));
    assert_reach(
        &index,
        80,
        Tcp,
        &Reach::new(true).expect("x/*", "*", false).expect("x/*", "x/a", true),
        "egress TCP 80 to x/a",
    );
    for (port, proto) in [(81, Tcp), (80, Udp), (80, Sctp)] {
        assert_reach(&index, port, proto, &Reach::new(true).expect("x/*", "*", false), "egress only TCP 80");
    }
}

#[test]
fn egress_named_port_resolves_on_the_peer() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]}",
    ));
    assert_reach(&index, 81, Udp, &Reach::new(true), "egress to named UDP 81");
    assert_reach(&index, 80, Udp, &Reach::new(true).expect("x/*", "*", false), "UDP 80 is not serve-81-udp");
    // A named port never matches a destination outside the cluster.
    let xa = index.pod_endpoint(index.pod_id("x", "a").expect("x/a"), None);
    let out = Flow { src: xa, dst: Endpoint::External("192.0.2.1".parse().expect("ip")), port: 81, protocol: Udp };
    assert!(!index.evaluate(&out).allowed, "named egress port to an external address");
}

#[test]
fn policy_types_egress_only_ignores_ingress_rules() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}], egress: [{}]}",
    ));
    assert_all_cases(&index, &Reach::new(true), "ingress not isolated when policyTypes is [Egress]");
}

#[test]
fn policy_types_default_includes_egress_when_egress_rules_exist() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]}",
    ));
    let expected = Reach::new(true).expect("*", "x/a", false).expect("x/a", "*", false).expect("x/a", "x/b", true);
    assert_all_cases(&index, &expected, "defaulted policyTypes [Ingress, Egress]");
}

#[test]
fn policies_are_additive() {
    let policies = policy(
        "x",
        "from-b",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
    ) + &policy(
        "x",
        "from-y",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}",
    );
    let expected = Reach::new(true).expect("*", "x/a", false).expect("x/b", "x/a", true).expect("y/*", "x/a", true);
    assert_all_cases(&cluster(&policies), &expected, "union of two policies");
}

#[test]
fn both_egress_and_ingress_must_allow() {
    let policies = policy(
        "x",
        "egress-a",
        "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: a}}}]}]}",
    ) + &policy(
        "y",
        "ingress-from-xb",
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: b}}}]}]}",
    );
    // x/a may only send to y/a, but y/a only accepts x/b: x/a reaches nothing.
    let expected = Reach::new(true).expect("x/a", "*", false).expect("*", "y/*", false).expect("x/b", "y/*", true);
    assert_all_cases(&cluster(&policies), &expected, "egress AND ingress");
}

#[test]
fn policy_applies_only_in_its_namespace() {
    let index = cluster(&policy("y", "deny-a", "{podSelector: {matchLabels: {pod: a}}}"));
    assert_all_cases(&index, &Reach::new(true).expect("*", "y/a", false), "y's policy does not select x/a");
}

#[test]
fn ip_block_matches_pod_addresses() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{ipBlock: {cidr: 10.0.2.1/32}}]}]}",
    ));
    assert_all_cases(
        &index,
        &Reach::new(true).expect("*", "x/a", false).expect("y/a", "x/a", true),
        "ipBlock /32 of y/a",
    );
    let except = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.2/32, 10.0.3.0/24]}}]}]}",
    ));
    let expected = Reach::new(true).expect("y/b", "x/a", false).expect("z/*", "x/a", false);
    assert_all_cases(&except, &expected, "ipBlock except carves out y/b and z");
}

fn pod_at(index: &ClusterIndex, key: &str, addr: &str) -> Endpoint {
    Endpoint::Pod { id: index.pod_id_by_key(key).expect("model pod"), addr: Some(addr.parse().expect("ip")) }
}

#[test]
fn ip_block_ipv6_and_external_addresses() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{ipBlock: {cidr: 'fd00::2:0/112'}}, {ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]}]}",
    ));
    let xa6 = pod_at(&index, "x/a", "fd00::1:1");
    let xa4 = pod_at(&index, "x/a", "10.0.1.1");
    let cases = [
        (pod_at(&index, "y/a", "fd00::2:1"), xa6, true, "y/a over IPv6 is inside fd00::2:0/112"),
        (pod_at(&index, "y/a", "10.0.2.1"), xa4, false, "y/a over IPv4 is in no block"),
        (pod_at(&index, "z/a", "fd00::3:1"), xa6, false, "z/a over IPv6 is outside"),
        (Endpoint::External("192.0.2.7".parse().expect("ip")), xa4, true, "external inside the block"),
        (Endpoint::External("192.0.2.200".parse().expect("ip")), xa4, false, "external in the except range"),
        (Endpoint::External("2001:db8::1".parse().expect("ip")), xa6, false, "external IPv6 outside"),
    ];
    for (src, dst, allowed, why) in cases {
        let verdict = index.evaluate(&Flow { src, dst, port: 80, protocol: Tcp });
        assert_eq!(verdict.allowed, allowed, "{why}");
    }
}

#[test]
fn egress_ip_block_to_the_outside() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 443}]}]}",
    ));
    let xa = pod_at(&index, "x/a", "10.0.1.1");
    let ext = |s: &str| Endpoint::External(s.parse().expect("ip"));
    let cases = [
        (ext("192.0.2.10"), 443, true, "inside the block on 443"),
        (ext("192.0.2.10"), 80, false, "inside the block on another port"),
        (ext("198.51.100.1"), 443, false, "outside the block"),
        (pod_at(&index, "y/b", "10.0.2.2"), 443, false, "a pod outside the block"),
    ];
    for (dst, port, allowed, why) in cases {
        assert_eq!(index.evaluate(&Flow { src: xa, dst, port, protocol: Tcp }).allowed, allowed, "{why}");
    }
    // An external source is never subject to egress policy; x/b's ingress is not isolated.
    let inbound = Flow { src: ext("198.51.100.1"), dst: pod_at(&index, "x/b", "10.0.1.2"), port: 80, protocol: Tcp };
    assert!(index.evaluate(&inbound).allowed, "external to a non-isolated pod");
}

#[test]
fn a_pod_always_reaches_itself() {
    let index = cluster(&policy("x", "deny", "{podSelector: {}, policyTypes: [Ingress, Egress]}"));
    let xa = pod_at(&index, "x/a", "10.0.1.1");
    let verdict = index.evaluate(&Flow { src: xa, dst: xa, port: 80, protocol: Tcp });
    assert!(verdict.allowed, "self traffic under deny-all");
}
