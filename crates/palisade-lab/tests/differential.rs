//! Differential test: seeded random policies over the e2e model, the
//! engine's verdicts against real packets through the compiled nftables
//! program. Every mismatch is a bug in one of the two. Needs root and nft
//! (CI has both; PALISADE_ROOT_TESTS=1 makes their absence a failure).

use std::time::{Duration, Instant};

use palisade_dataplane::nft::{Nft, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::transaction::{diff, full};
use palisade_dataplane::{NodeScope, compile};
use palisade_lab::netns::{run, unique_prefix};
use palisade_lab::plan::{Family, plan};
use palisade_lab::probe::run_all;
use palisade_lab::serve;
use palisade_lab::topology::Topology;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_policies};
use palisade_policy::{ClusterIndex, Protocol};

/// Policy sets per run (at least 50, as the dataplane issue asks).
const SETS: u64 = 50;

#[test]
fn engine_and_packets_agree_on_random_policies() {
    if !palisade_lab::netns::kernel_tests_enabled(&["nft", "conntrack"]) {
        return;
    }
    let (namespaces, pods) = model();
    let mut topo = Topology::new(&unique_prefix()).expect("node namespace");
    for pod in &pods {
        topo.add_pod(&format!("{}/{}", pod.namespace, pod.name), &pod.ips).expect("pod namespace");
        serve::start(topo.pods[&format!("{}/{}", pod.namespace, pod.name)].ns.name(), &[80, 81], &[80, 81])
            .expect("servers");
    }
    let nft = NftCli { netns: Some(topo.node.name().to_string()) };
    let mut applied = None;
    let mut failures = Vec::new();
    let started = Instant::now();
    for seed in 0..SETS {
        let mut rng = Rng::new(1000 + seed);
        let n = 1 + rng.below(5);
        let policies = random_policies(&mut rng, n);
        let index = ClusterIndex::from_objects(namespaces.clone(), pods.clone(), policies.clone());
        let rendered = render(&compile(&index, &NodeScope::All, &topo.pod_ifaces()));
        let tx = match &applied {
            None => Some(full(&rendered)),
            Some(old) => diff(old, &rendered),
        };
        if let Some(tx) = tx {
            nft.apply(&tx).unwrap_or_else(|e| panic!("seed {seed}: nft rejected the program: {e}\n{tx}"));
        }
        applied = Some(rendered);
        // Connections the previous policy set allowed stay established in
        // conntrack (revoking them is later work); a probe that reused a
        // source port would ride on one. Each set starts from a clean table.
        run("ip", &["netns", "exec", topo.node.name(), "conntrack", "-F"]).expect("conntrack -F in the node namespace");
        let family = if seed % 2 == 0 { Family::V4 } else { Family::V6 };
        let (probes, mut rows) = plan(&index, &topo, &[80, 81], &Protocol::ALL, family);
        let expected: Vec<bool> = rows.iter().map(|r| r.expected).collect();
        let results = run_all(&probes, &expected, 48, Duration::from_millis(150), Duration::from_millis(1500));
        for (row, result) in rows.iter_mut().zip(results) {
            row.measured = result.unwrap_or_else(|e| panic!("seed {seed}: probe {row:?} failed to run: {e}"));
            if row.measured != row.expected {
                failures.push(format!(
                    "seed {seed} {family:?}: {} -> {} {}/{}: measured {}, engine {}\npolicies: {policies:#?}",
                    row.from, row.to, row.protocol, row.port, row.measured, row.expected
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{SETS} policy sets probed in {:.1}s", started.elapsed().as_secs_f64());
}
