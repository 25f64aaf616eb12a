//! The incremental compiler against the full one: after every change of a
//! random sequence (pods relabelled, readdressed, moved, stopped, deleted;
//! namespaces relabelled and deleted; policies added, changed, deleted;
//! interfaces changing), the incrementally kept program and table equal a
//! fresh `compile` + `render` of the same index, and a transaction is
//! produced exactly when the table changed.

mod changes;

use changes::{ifaces, mutate};
use palisade_dataplane::render::render;
use palisade_dataplane::{Incremental, NodeScope, compile};
use palisade_policy::ClusterIndex;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_policies};

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
    let mut rng = Rng::new(seed);
    let (namespaces, mut pods) = model();
    for (i, pod) in pods.iter_mut().enumerate() {
        pod.node_name = Some(if i % 2 == 0 { "n1" } else { "n2" }.into());
    }
    let n = rng.below(8);
    let mut index = ClusterIndex::from_objects(namespaces, pods.clone(), random_policies(&mut rng, n));
    index.track_changes();
    let mut drop_every = 0;
    let mut incremental = Incremental::new(&index, scope.clone(), &ifaces(&index, drop_every));
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
        let program = compile(&index, scope, &links);
        let context = format!("seed {seed}, {scope:?}, step {step}: {what}");
        assert_eq!(incremental.program(), &program, "{context}: program");
        let expected = render(&program);
        if incremental.rendered() != &expected {
            report_differences(incremental.rendered(), &expected);
        }
        assert!(incremental.rendered() == &expected, "{context}: rendered table differs");
        assert_eq!(tx.is_some(), before != expected, "{context}: a transaction exactly when the table changed");
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
}
