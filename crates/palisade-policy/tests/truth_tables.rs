//! NetworkPolicy truth tables on the upstream e2e model (namespaces x, y, z;
//! pods a, b, c; ports 80/81; TCP, UDP, SCTP). Every expectation is written
//! by hand from the API reference, never produced by the engine.

use palisade_policy::Protocol::{Tcp, Udp};
use palisade_policy::{ClusterIndex, Endpoint, Flow};
use palisade_testkit::e2e::cases::{cases, policy};
use palisade_testkit::e2e::{assert_reach, cluster};

#[test]
fn every_case_of_the_truth_tables() {
    let cases = cases();
    assert!(cases.len() >= 30, "the cases cover every point of the semantics");
    for case in &cases {
        let index = cluster(&case.policies);
        for (port, protocol, expected) in &case.checks {
            assert_reach(&index, *port, *protocol, expected, case.name);
        }
    }
}

#[test]
fn egress_named_port_never_matches_an_external_address() {
    let index = cluster(&policy(
        "x",
        "p",
        "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]}",
    ));
    let xa = index.pod_endpoint(index.pod_id("x", "a").expect("x/a"), None);
    let out = Flow { src: xa, dst: Endpoint::External("192.0.2.1".parse().expect("ip")), port: 81, protocol: Udp };
    assert!(!index.evaluate(&out).allowed, "named egress port to an external address");
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

#[test]
fn every_case_of_the_cluster_policy_truth_tables() {
    let cases = palisade_testkit::e2e::cluster_cases::cluster_cases();
    for case in &cases {
        let index = cluster(&case.policies);
        for (port, protocol, expected) in &case.checks {
            assert_reach(&index, *port, *protocol, expected, case.name);
        }
    }
}
