//! The incremental compiler against the full one: after every change of a
//! random sequence (pods relabelled, readdressed, moved, stopped, deleted;
//! namespaces relabelled and deleted; policies added, changed, deleted;
//! interfaces changing), the incrementally kept program and table equal a
//! fresh `compile` + `render` of the same index, and a transaction is
//! produced exactly when the table changed.

mod changes;

use std::hash::{BuildHasher, Hasher};

use changes::{ifaces, mutate};
use palisade_dataplane::render::render;
use palisade_dataplane::{Incremental, NodeScope, compile};
use palisade_policy::ClusterIndex;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_cluster_policies, random_policies};

/// Prints which sets and chains differ (on failure, before the assertion).
fn report_differences(got: &palisade_dataplane::ruleset::Table, expected: &palisade_dataplane::ruleset::Table) {
    for (n, d) in &expected.sets {
        if got.sets.get(n) != Some(d) {
            let got = got.sets.get(n).map(|g| g.elements.iter().map(ToString::to_string).collect::<Vec<_>>());
            eprintln!("set {n}: want {:?} got {got:?}", d.elements.iter().map(ToString::to_string).collect::<Vec<_>>());
        }
    }
    for n in got.sets.keys().filter(|n| !expected.sets.contains_key(*n)) {
        eprintln!("extra set {n}");
    }
    for (n, c) in &expected.chains {
        if got.chains.get(n) != Some(c) {
            eprintln!("chain {n} differs");
        }
    }
}

/// Returns how often the two fast paths (members updated, sets patched) ran.
fn run(seed: u64, scope: &NodeScope, steps: usize) -> (usize, usize) {
    run_with::<rustc_hash::FxBuildHasher>(seed, scope, steps)
}

thread_local! {
    /// Steps after which the program held a cluster policy with a Pass rule.
    static PASSING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// [`run`], with the incremental compiler's pod identities hashed by `S`.
fn run_with<S: BuildHasher + Default>(seed: u64, scope: &NodeScope, steps: usize) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let (namespaces, mut pods) = model();
    for (i, pod) in pods.iter_mut().enumerate() {
        pod.node_name = Some(if i % 2 == 0 { "n1" } else { "n2" }.into());
    }
    let n = rng.below(8);
    // Some policies are staged or log what they admit (their pods are
    // observed, and staged ones isolate nothing in the dataplane).
    let mut policies = random_policies(&mut rng, n);
    for p in &mut policies {
        if rng.below(5) == 0 {
            p.enforcement = palisade_policy::Enforcement::Audit;
        }
        p.log_allowed = rng.below(5) == 0;
    }
    let mut index = ClusterIndex::from_objects(namespaces, pods.clone(), policies);
    let c = rng.below(4);
    for policy in random_cluster_policies(&mut rng, c) {
        index.apply_cluster_policy(policy);
    }
    index.track_changes();
    let mut drop_every = 0;
    // Every other seed runs with the new-pod gate (its sets follow the local pods).
    let gate = if seed % 2 == 1 {
        let mut cidrs = palisade_dataplane::ranges::AddrSet::default();
        cidrs.v4.push((0x0a00_0000, 0x0a00_ffff));
        palisade_dataplane::PodGate { interface_prefixes: vec!["pv".into()], cidrs }
    } else {
        palisade_dataplane::PodGate::default()
    };
    // Seeds 2 and 3 of every 4 log flows to NFLOG (denials, observed pods,
    // cluster policies' deny chains).
    let flow_log = (seed % 4 >= 2).then_some(palisade_dataplane::FlowLog { group: 7, per_second: 10, burst: 10 });
    let options = palisade_dataplane::NodeOptions { gate: gate.clone(), flow_log };
    let mut incremental =
        Incremental::<S>::with_hasher_and_options(&index, scope.clone(), &ifaces(&index, drop_every), options);
    let (mut updated, mut patched) = (0, 0);
    for step in 0..steps {
        let what = if rng.below(15) == 0 {
            drop_every = rng.below(4);
            "interfaces change".to_string()
        } else {
            mutate(&mut rng, &mut index, &mut pods, step)
        };
        let before = incremental.rendered().clone();
        let links = ifaces(&index, drop_every);
        let changes = index.take_changes().expect("tracking");
        let (tx, stats) = incremental.update(&index, &changes, &links);
        updated += stats.policies_updated;
        patched += stats.policies_patched;
        let mut program = compile(&index, scope, &links);
        program.gate = gate.clone();
        program.flow_log = flow_log;
        if program.tiers.values().any(|t| palisade_policy::Direction::BOTH.iter().any(|d| t.passes(*d))) {
            PASSING.with(|p| p.set(p.get() + 1));
        }
        let context = format!("seed {seed}, {scope:?}, step {step}: {what}");
        assert_eq!(incremental.program(), &program, "{context}: program");
        let expected = render(&program);
        if incremental.rendered() != &expected {
            report_differences(incremental.rendered(), &expected);
        }
        assert!(incremental.rendered() == &expected, "{context}: rendered table differs");
        assert_eq!(tx.is_some(), before != expected, "{context}: a transaction exactly when the table changed");
        assert!(incremental.pod_identities() <= index.pod_count(), "{context}: deleted pods' identities are forgotten");
    }
    (updated, patched)
}

#[test]
fn incremental_equals_full_on_random_changes() {
    let (mut updated, mut patched) = (0, 0);
    for seed in 0..12 {
        for (u, p) in [run(seed, &NodeScope::All, 150), run(seed + 100, &NodeScope::Node("n1".into()), 150)] {
            updated += u;
            patched += p;
        }
    }
    assert!(updated > 50 && patched > 50, "the fast paths ran: members updated {updated}, sets patched {patched}");
    let passing = PASSING.with(std::cell::Cell::get);
    assert!(passing > 100, "cluster policies with Pass rules were compiled: {passing} steps");
}

/// A hasher under which every pod name collides: what a tenant choosing
/// pod names against a non-cryptographic hash can aim for.
#[derive(Clone, Debug, Default)]
struct Colliding;

#[derive(Debug)]
struct Constant;

impl Hasher for Constant {
    fn finish(&self) -> u64 {
        0x5eed
    }
    fn write(&mut self, _: &[u8]) {}
}

impl BuildHasher for Colliding {
    type Hasher = Constant;
    fn build_hasher(&self) -> Constant {
        Constant
    }
}

/// Pods whose names share one hash value keep their own addresses in every
/// peer and named-port set through adds, relabels, readdressing and
/// deletes: identities are exact keys, not hashes (with identities taken
/// from the hash, every pod here would be one pod, and the second pod a
/// set meets would never enter it).
#[test]
fn pods_whose_names_share_a_hash_keep_their_own_sets() {
    let (mut updated, mut patched) = (0, 0);
    for seed in 0..6 {
        for (u, p) in [
            run_with::<Colliding>(seed + 300, &NodeScope::All, 120),
            run_with::<Colliding>(seed + 400, &NodeScope::Node("n1".into()), 120),
        ] {
            updated += u;
            patched += p;
        }
    }
    assert!(updated > 20 && patched > 20, "the member-level paths ran: updated {updated}, patched {patched}");
}

/// The same, step by step on two pods that one rule's peer set holds: one
/// is deleted and re-created under its name, the other relabelled out and
/// back in; the set holds exactly the right addresses after each step.
#[test]
fn a_deleted_pod_leaves_a_colliding_pod_in_its_sets() {
    let policy = palisade_manifests::load_str(
        "p.yaml",
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}, namespaceSelector: {}}]}]
",
        "default",
    );
    let (namespaces, pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods.clone(), policy.policies);
    index.track_changes();
    let links = ifaces(&index, 0);
    let mut incremental = Incremental::<Colliding>::with_hasher(&index, NodeScope::All, &links);
    // The rule's IPv4 pod-peer set, as its first rule names it.
    let set = incremental.rendered().chains["policy/x/from-b/ingress"].rules[0]
        .0
        .iter()
        .find_map(|s| match s {
            palisade_dataplane::ruleset::Statement::Lookup { set, .. } if set.contains("/pods4/") => Some(set.clone()),
            _ => None,
        })
        .expect("a pods4 lookup");
    let members = |inc: &Incremental<Colliding>| -> Vec<String> {
        inc.rendered().sets[&set].elements.iter().map(ToString::to_string).collect()
    };
    // x/b, y/b and z/b are the peers.
    assert_eq!(members(&incremental), ["10.0.1.2", "10.0.2.2", "10.0.3.2"]);
    let by_name =
        |ns: &str, name: &str| pods.iter().find(|p| p.namespace == ns && p.name == name).expect("pod").clone();
    let mut step = |index: &mut ClusterIndex, what: &str, want: &[&str]| {
        let changes = index.take_changes().expect("tracking");
        incremental.update(index, &changes, &links);
        assert_eq!(members(&incremental), want, "{what}");
        let full = render(&compile(index, &NodeScope::All, &links));
        assert!(incremental.rendered() == &full, "{what}: equals a full render");
    };
    index.delete_pod("y", "b");
    step(&mut index, "y/b deleted", &["10.0.1.2", "10.0.3.2"]);
    let mut z_b = by_name("z", "b");
    z_b.labels.insert("pod".into(), "c".into());
    index.apply_pod(z_b.clone());
    step(&mut index, "z/b relabelled out", &["10.0.1.2"]);
    index.apply_pod(by_name("y", "b"));
    step(&mut index, "y/b re-created", &["10.0.1.2", "10.0.2.2"]);
    z_b.labels.insert("pod".into(), "b".into());
    index.apply_pod(z_b);
    step(&mut index, "z/b relabelled back", &["10.0.1.2", "10.0.2.2", "10.0.3.2"]);
    index.delete_pod("x", "b");
    index.delete_pod("z", "b");
    step(&mut index, "x/b and z/b deleted in one change", &["10.0.2.2"]);
}

/// Two policies in different namespaces admitting the same peers (a
/// namespaceSelector peer, so the namespace does not decide them) on the
/// same port share one pod set and one port set; the shared sets stay
/// while either policy does and go with the last one, each step equal to
/// a full render.
#[test]
fn shared_sets_live_as_long_as_a_rule_refers_to_them() {
    let policy = |ns: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: from-y, namespace: {ns}}}\n\
             spec: {{podSelector: {{}}, ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{ns: y}}}}}}], ports: [{{port: 80}}, {{port: 443}}]}}]}}\n"
        )
    };
    let text = format!("{}---\n{}", policy("x"), policy("z"));
    let loaded = palisade_manifests::load_str("p.yaml", &text, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (namespaces, pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods, loaded.policies);
    index.track_changes();
    let links = ifaces(&index, 0);
    let mut incremental = Incremental::new(&index, NodeScope::All, &links);
    let shared = |inc: &Incremental| -> Vec<String> {
        inc.rendered().sets.keys().filter(|n| n.starts_with("shared/")).cloned().collect()
    };
    // pods4, pods6 and ports: three sets for the two policies.
    let both = shared(&incremental);
    assert_eq!(both.len(), 3, "{both:?}");
    let step = |index: &mut ClusterIndex, incremental: &mut Incremental, what: &str| {
        let changes = index.take_changes().expect("tracking");
        incremental.update(index, &changes, &links);
        let full = render(&compile(index, &NodeScope::All, &links));
        assert!(incremental.rendered() == &full, "{what}: equals a full render");
    };
    index.delete_policy("x", "from-y");
    step(&mut index, &mut incremental, "x/from-y deleted");
    assert_eq!(shared(&incremental), both, "z/from-y still refers to them");
    index.delete_policy("z", "from-y");
    step(&mut index, &mut incremental, "z/from-y deleted");
    assert!(shared(&incremental).is_empty(), "no rule refers to them any more");
}
