//! Expected values come from the NetworkPolicy and AdminNetworkPolicy
//! semantics, written out per entry below, not from the engine.

use super::*;
use palisade_dataplane::conntrack::{Sides, Tuple};
use palisade_policy::ObjectKind;
use std::collections::BTreeMap;

const CLUSTER: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: server}}
spec: {nodeName: n1, containers: [{name: c, ports: [{containerPort: 8080, name: http-alt}]}]}
status: {phase: Running, podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {role: client}}
spec: {nodeName: n1, containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.0.2, podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: x, labels: {role: other}}
spec: {nodeName: n2, containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.1.3, podIPs: [{ip: 10.0.1.3}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-ingress, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 80}]
";

fn entry(src: &str, dst: &str, real_dst: &str, protocol: u8, dport: u16, real_port: u16) -> Entry {
    let orig = Tuple { src: src.parse().unwrap(), dst: dst.parse().unwrap(), protocol, sport: 40000, dport };
    let reply = Tuple { src: real_dst.parse().unwrap(), dst: orig.src, protocol, sport: real_port, dport: 40000 };
    Entry { orig, reply, zone: 0, id: 1 }
}

fn plain(src: &str, dst: &str, protocol: u8, port: u16) -> Entry {
    entry(src, dst, dst, protocol, port, port)
}

fn local() -> LocalAddrs {
    [("10.0.0.1", "a"), ("10.0.0.2", "b")]
        .into_iter()
        .map(|(ip, name)| (ip.parse().unwrap(), ObjectKey::new(ObjectKind::Pod, "x", name)))
        .collect()
}

fn node() -> BTreeSet<IpAddr> {
    ["10.0.0.254".parse().unwrap()].into()
}

#[test]
fn only_flows_a_side_this_node_enforces_denies_are_revoked() {
    let index = palisade_manifests::load_str("c.yaml", CLUSTER, "default").index();
    let entries = [
        // b is a client, port 80: admitted by a-ingress.
        plain("10.0.0.2", "10.0.0.1", TCP, 80),
        // c is no client: a is isolated for ingress and nothing admits it.
        plain("10.0.1.3", "10.0.0.1", TCP, 80),
        // Through a Service to a's 8080: a-ingress admits port 80 only.
        entry("10.0.0.2", "10.96.0.10", "10.0.0.1", TCP, 80, 8080),
        // Through a Service to a's 80: admitted.
        entry("10.0.0.2", "10.96.0.10", "10.0.0.1", TCP, 8080, 80),
        // a's egress is not isolated; c's ingress is another node's to judge.
        plain("10.0.0.1", "10.0.1.3", UDP, 53),
        // The node's own address: the input hook, never filtered.
        plain("10.0.0.254", "10.0.0.1", TCP, 22),
        // Not TCP, UDP or SCTP.
        plain("10.0.1.3", "10.0.0.1", 1, 0),
        // Between two remote addresses: not this node's to judge.
        plain("10.0.1.3", "10.0.1.4", TCP, 80),
        // SCTP from c: denied like TCP.
        plain("10.0.1.3", "10.0.0.1", SCTP, 80),
    ];
    let got = denied(&index, &local(), &node(), &entries);
    assert_eq!(
        got,
        [(entries[1], Reason::NetworkPolicy), (entries[2], Reason::NetworkPolicy), (entries[8], Reason::NetworkPolicy)]
    );
}

#[test]
fn an_admin_deny_is_named_as_the_reason() {
    let anp = r"
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: no-b}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}}
  egress:
  - {name: deny-all, action: Deny, to: [{networks: [0.0.0.0/0]}]}
";
    let index = palisade_manifests::load_str("c.yaml", &format!("{CLUSTER}{anp}"), "default").index();
    let entries = [plain("10.0.0.2", "10.0.0.1", TCP, 80), plain("10.0.1.3", "10.0.0.1", TCP, 80)];
    let got = denied(&index, &local(), &node(), &entries);
    assert_eq!(got, [(entries[0], Reason::AdminTier), (entries[1], Reason::NetworkPolicy)]);
}

/// The local pods as the program after loading `yaml` sees them.
fn view(yaml: &str) -> (ClusterIndex, LocalView) {
    let index = palisade_manifests::load_str("c.yaml", yaml, "default").index();
    let program =
        palisade_dataplane::compile(&index, &palisade_dataplane::NodeScope::Node("n1".into()), &BTreeMap::new());
    let view = LocalView::of(&program);
    (index, view)
}

#[test]
fn a_change_affects_its_pods_namespaces_and_the_pods_a_policy_selects_or_lists() {
    let (index, after) = view(CLUSTER);
    let key = |kind, ns: &str, name: &str| ObjectKey::new(kind, ns, name);
    let with =
        |list: &[&str], sides: Sides| Affected::Addresses(list.iter().map(|a| (a.parse().unwrap(), sides)).collect());
    let addrs = |list: &[&str]| with(list, Sides::BOTH);
    let answered = Sides { opened: false, answered: true };
    assert_eq!(after.addrs, local(), "a and b are local (node n1), c is not");
    // A remote pod relabelled: its flows with local pods.
    let mut changes = Changes::default();
    changes.pods.insert(key(ObjectKind::Pod, "x", "c"));
    assert_eq!(affected(&index, &changes, &after, &after), addrs(&["10.0.1.3"]));
    // A local pod deleted: its old address still counts.
    let mut before = after.clone();
    before.addrs.insert("10.0.0.9".parse().unwrap(), key(ObjectKind::Pod, "x", "gone"));
    let mut changes = Changes::default();
    changes.pods.insert(key(ObjectKind::Pod, "x", "gone"));
    assert_eq!(affected(&index, &changes, &before, &after), addrs(&["10.0.0.9"]));
    // a-ingress selects a only, for ingress: b's verdicts cannot change
    // with it, nor those of the connections a opens.
    let mut changes = Changes::default();
    changes.policies.insert(key(ObjectKind::NetworkPolicy, "x", "a-ingress"));
    assert_eq!(affected(&index, &changes, &after, &after), with(&["10.0.0.1"], answered));
    // Deleted (gone from the index): the pods whose program listed it.
    let (empty_index, without) = view(&CLUSTER.replace("kind: NetworkPolicy", "kind: NetworkPolicyGone"));
    assert_eq!(affected(&empty_index, &changes, &after, &without), with(&["10.0.0.1"], answered));
    // A policy of another namespace selects nothing here.
    let mut changes = Changes::default();
    changes.policies.insert(key(ObjectKind::NetworkPolicy, "y", "p"));
    assert_eq!(affected(&index, &changes, &after, &after), addrs(&[]));
    // Namespace x relabelled: every pod of x, local or not.
    let mut changes = Changes::default();
    changes.namespaces.insert(key(ObjectKind::Namespace, "", "x"));
    assert_eq!(affected(&index, &changes, &after, &after), addrs(&["10.0.0.1", "10.0.0.2", "10.0.1.3"]));
    // A Node: every local pod.
    let mut changes = Changes::default();
    changes.nodes.insert(key(ObjectKind::Node, "", "n2"));
    assert_eq!(affected(&index, &changes, &after, &after), Affected::AllLocal);
}

#[test]
fn a_cluster_policy_affects_the_local_pods_that_list_it_before_or_after() {
    let anp = r"
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: clients}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}}
  egress:
  - {name: deny-all, action: Deny, to: [{networks: [0.0.0.0/0]}]}
";
    let (index, after) = view(&format!("{CLUSTER}{anp}"));
    let (_, before) = view(CLUSTER);
    let mut changes = Changes::default();
    changes.cluster_policies.insert(ObjectKey::new(ObjectKind::AdminNetworkPolicy, "", "clients"));
    // Egress rules only: the connections b opens.
    let b = ("10.0.0.2".parse().unwrap(), Sides { opened: true, answered: false });
    assert_eq!(affected(&index, &changes, &before, &after), Affected::Addresses([b].into()), "added: b, its subject");
    let (gone, _) = view(CLUSTER);
    assert_eq!(affected(&gone, &changes, &after, &before), Affected::Addresses([b].into()), "deleted: b listed it");
}

/// A revoked UDP flow whose peer's answer was in flight: the answer makes
/// conntrack open the reverse flow, which the policies allow (a's egress
/// is not isolated; c's ingress is another node's), and the revoked
/// client would ride on it. The looks 100 ms and 600 ms later delete
/// exactly that reverse entry, while the state still denies the flow.
#[test]
fn the_echo_of_a_revoked_udp_flow_is_revoked_too() {
    use crate::fake::FakeKernel;
    let index = palisade_manifests::load_str("c.yaml", CLUSTER, "default").index();
    // c -> a UDP 80: a is isolated for ingress and nothing admits c.
    let revoked = plain("10.0.1.3", "10.0.0.1", UDP, 80);
    // a's answer, landed after the revocation: a -> c, reversed tuples.
    let echo = Entry { orig: revoked.reply, reply: revoked.orig, zone: 0, id: 2 };
    // Unrelated flows between the same pods stay.
    let other = plain("10.0.0.1", "10.0.1.3", UDP, 53);
    let kernel = FakeKernel::new();
    kernel.state().connections = vec![echo, other];
    let metrics = crate::metrics::Metrics::new();
    let mut echoes = echoes::Echoes::default();
    let start = Instant::now();
    echoes.revoked(&[revoked, plain("10.0.1.3", "10.0.0.1", TCP, 80)], start);
    assert_eq!(echoes.next(), Some(start + std::time::Duration::from_millis(100)), "UDP only, 100 ms later");
    let state = (&index, &local(), &node());
    let mut k = kernel.clone();
    assert_eq!(echoes.look(start, state, &mut k, &metrics), 0, "not due yet");
    let deleted = echoes.look(start + std::time::Duration::from_millis(100), state, &mut k, &metrics);
    assert_eq!(deleted, 1);
    assert_eq!(kernel.state().revoked, [echo]);
    assert_eq!(kernel.state().connections, [other]);
    assert_eq!(echoes.next(), Some(start + std::time::Duration::from_millis(600)), "one more look");
    // Once the flow is allowed again, a new flow on the same tuple stays.
    let every_pod =
        CLUSTER.replace("  - from: [{podSelector: {matchLabels: {role: client}}}]\n    ports: [{port: 80}]", "  - {}");
    assert_ne!(every_pod, CLUSTER);
    let loaded = palisade_manifests::load_str("c.yaml", &every_pod, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let allowed = loaded.index();
    kernel.state().connections.push(echo);
    let late =
        echoes.look(start + std::time::Duration::from_millis(600), (&allowed, &local(), &node()), &mut k, &metrics);
    assert_eq!(late, 0, "the state no longer denies it");
    assert_eq!(echoes.next(), None, "nothing left to look for");
}
