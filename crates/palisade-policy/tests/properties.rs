//! Randomized invariants over the e2e model, with policies drawn from
//! proptest strategies (`palisade_testkit::strategy`), so a failure shrinks
//! to a small policy set.

use palisade_policy::matrix::Case;
use palisade_policy::synth::e2e::model;
use palisade_policy::{ClusterIndex, NetworkPolicy, Protocol, SideVerdict, Verdict};
use palisade_testkit::e2e::all_flows as flows;
use palisade_testkit::strategy::{policies, rule};
use proptest::prelude::*;

/// A verdict with policy ids replaced by names, comparable across indexes.
#[derive(Debug, PartialEq, Eq)]
struct Named(bool, String, String);

fn side(index: &ClusterIndex, s: SideVerdict) -> String {
    match s {
        SideVerdict::Allowed(r) => {
            format!("{} {:?} {} {:?} {:?}", index.policy_name(r.policy), r.direction, r.rule, r.peer, r.port)
        }
        other => format!("{other:?}"),
    }
}

fn named(index: &ClusterIndex, v: Verdict) -> Named {
    Named(v.allowed, side(index, v.egress), side(index, v.ingress))
}

fn build(policies: Vec<NetworkPolicy>) -> ClusterIndex {
    let (namespaces, pods) = model();
    ClusterIndex::from_objects(namespaces, pods, policies)
}

fn verdicts(index: &ClusterIndex) -> Vec<(String, Named)> {
    flows(index).into_iter().map(|(label, f)| (label, named(index, index.evaluate(&f)))).collect()
}

#[test]
fn no_policies_allow_everything() {
    let index = build(Vec::new());
    for (label, flow) in flows(&index) {
        assert!(index.evaluate(&flow).allowed, "{label}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn adding_an_allow_never_removes_a_connection(
        policies in policies(5).prop_filter("a policy to widen", |p| !p.is_empty()),
        which in any::<prop::sample::Index>(),
        rule in rule(),
    ) {
        let before = build(policies.clone());
        let mut widened = policies;
        let which = which.index(widened.len());
        let p = &mut widened[which];
        if p.isolates_ingress { p.ingress.push(rule) } else { p.egress.push(rule) }
        let after = build(widened);
        for (label, flow) in flows(&before) {
            if before.evaluate(&flow).allowed {
                // Same model, same insertion order: the ids of pods coincide.
                prop_assert!(after.evaluate(&flow).allowed, "{} closed by adding a rule", label);
            }
        }
    }

    #[test]
    fn result_is_independent_of_object_order(policies in policies(6)) {
        let (mut namespaces, mut pods) = model();
        let forward = ClusterIndex::from_objects(namespaces.clone(), pods.clone(), policies.clone());
        let mut reversed_policies = policies;
        reversed_policies.reverse();
        namespaces.reverse();
        pods.reverse();
        // Policies first, then pods, then namespaces: the opposite of the usual order.
        let mut backward = ClusterIndex::new();
        for p in reversed_policies { backward.apply_policy(p); }
        for p in pods { backward.apply_pod(p); }
        for n in namespaces { backward.apply_namespace(n); }
        let by_label = |index: &ClusterIndex| {
            let mut v = verdicts(index);
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        prop_assert_eq!(by_label(&forward), by_label(&backward));
    }

    #[test]
    fn incremental_updates_equal_a_fresh_build(
        first in policies(5),
        second in policies(5),
        moved in any::<prop::sample::Index>(),
        relabelled in 0usize..3,
    ) {
        let mut index = build(first.clone());
        // Move to `second`: delete what it lacks, apply what it has.
        for p in &first {
            if !second.iter().any(|q| q.namespace == p.namespace && q.name == p.name) {
                index.delete_policy(&p.namespace, &p.name);
            }
        }
        for p in &second { index.apply_policy(p.clone()); }
        // Relabel a pod and a namespace there and back.
        let (namespaces, pods) = model();
        let mut moved = pods[moved.index(pods.len())].clone();
        moved.labels.insert("pod".into(), "b".into());
        index.apply_pod(moved);
        let mut ns = namespaces[relabelled].clone();
        ns.labels.insert("ns".into(), "other".into());
        index.apply_namespace(ns);
        for p in pods { index.apply_pod(p); }
        for n in namespaces { index.apply_namespace(n); }
        let fresh = build(second);
        let mut a = verdicts(&index);
        let mut b = verdicts(&fresh);
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn matrix_classes_agree_with_direct_evaluation(policies in policies(6)) {
        let index = build(policies);
        let pods = index.pods_sorted();
        let cases: Vec<Case> = [80, 81].iter().flat_map(|p| Protocol::ALL.map(|protocol| Case { port: *p, protocol })).collect();
        let m = index.matrix(pods.clone(), cases.clone());
        for (c, case) in cases.iter().enumerate() {
            for (i, a) in pods.iter().enumerate() {
                for (j, b) in pods.iter().enumerate() {
                    let flow = index.pod_flow(*a, *b, case.port, case.protocol);
                    prop_assert_eq!(m.allowed(c, i, j), index.evaluate(&flow).allowed, "{} -> {}", index.pod_name(*a), index.pod_name(*b));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn display_groups_are_interchangeable(policies in policies(6)) {
        let index = build(policies);
        let pods = index.pods_sorted();
        let cases: Vec<Case> = [80, 81].iter().flat_map(|p| Protocol::ALL.map(|protocol| Case { port: *p, protocol })).collect();
        let m = index.matrix(pods.clone(), cases.clone());
        let groups = m.groups();
        let group_of = |pod: usize| groups.iter().position(|g| g.contains(&pod)).expect("every pod is in a group");
        for c in 0..cases.len() {
            for f in 0..pods.len() {
                for t in 0..pods.len() {
                    if f != t {
                        prop_assert_eq!(m.allowed(c, f, t), m.group_allowed(c, group_of(f), group_of(t)), "{} -> {}", f, t);
                    }
                }
            }
        }
    }
}

/// The diff as the whole matrix sees it: every pair of common pods, every
/// case, evaluated in both states (the oracle of the diff, which evaluates
/// only the rows and columns a change can affect).
fn full_diff(before: &ClusterIndex, after: &ClusterIndex, cases: &[Case]) -> Vec<(String, String, u16, bool)> {
    let mut out = Vec::new();
    for case in cases {
        for a in before.pods_sorted() {
            for b in before.pods_sorted() {
                if a == b {
                    continue;
                }
                let (na, nb) = (before.pod_name(a), before.pod_name(b));
                let (Some(a2), Some(b2)) = (after.pod_id_by_key(na), after.pod_id_by_key(nb)) else { continue };
                let was = before.evaluate(&before.pod_flow(a, b, case.port, case.protocol)).allowed;
                let now = after.evaluate(&after.pod_flow(a2, b2, case.port, case.protocol)).allowed;
                if was != now {
                    out.push((na.to_string(), nb.to_string(), case.port, now));
                }
            }
        }
    }
    out.sort();
    out
}

fn relabelled(mut pods: Vec<palisade_policy::Pod>, which: usize, label: &str) -> Vec<palisade_policy::Pod> {
    if let Some(pod) = pods.get_mut(which % 9) {
        pod.labels.insert("pod".into(), label.into());
    }
    pods
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One policy changed (or a pod or namespace relabelled): the diff,
    /// which evaluates only what the change can affect, finds exactly the
    /// connections the whole matrix finds.
    #[test]
    fn diff_equals_the_whole_matrix_compared(
        policies in policies(5),
        replacement in palisade_testkit::strategy::policy(),
        which in 0usize..5,
        pod in 0usize..9,
        relabel in prop_oneof![Just(None), Just(Some("a")), Just(Some("c"))],
        namespace_relabel in any::<bool>(),
        cluster in palisade_testkit::strategy::cluster_policies(3),
        cluster_replacement in proptest::option::of(palisade_testkit::strategy::cluster_policy()),
    ) {
        let (namespaces, pods) = model();
        let with_cluster = |mut index: ClusterIndex, cluster: &[palisade_policy::ClusterPolicy]| {
            for c in cluster {
                index.apply_cluster_policy(c.clone());
            }
            index
        };
        let before = with_cluster(ClusterIndex::from_objects(namespaces.clone(), pods.clone(), policies.clone()), &cluster);
        // One cluster policy replaced (or added).
        let mut cluster_after = cluster;
        if let Some(replacement) = cluster_replacement {
            let name = cluster_after.first().map_or_else(|| "c0".to_string(), |c| c.name.clone());
            cluster_after.retain(|c| c.name != name);
            cluster_after.push(palisade_policy::ClusterPolicy { name, ..replacement });
        }
        let mut changed = policies.clone();
        if let Some(p) = changed.get_mut(which) {
            *p = NetworkPolicy { name: p.name.clone(), namespace: p.namespace.clone(), ..replacement };
        } else {
            changed.push(replacement);
        }
        let pods = match relabel { Some(label) => relabelled(pods, pod, label), None => pods };
        let mut namespaces = namespaces;
        if namespace_relabel {
            namespaces[1].labels.insert("ns".into(), "x".into());
        }
        let after = with_cluster(ClusterIndex::from_objects(namespaces, pods, changed), &cluster_after);
        let cases = [Case { port: 80, protocol: Protocol::Tcp }, Case { port: 81, protocol: Protocol::Udp }];
        let d = palisade_policy::diff::diff(&before, &after, &cases);
        let mut found: Vec<(String, String, u16, bool)> =
            d.opened.iter().chain(&d.closed).map(|c| (c.from.clone(), c.to.clone(), c.port, c.allowed)).collect();
        found.sort();
        prop_assert_eq!(found, full_diff(&before, &after, &cases));
        let counted: usize = d.summary.iter().map(|s| s.opened + s.closed).sum();
        prop_assert_eq!(counted, d.opened.len() + d.closed.len());
    }
}
