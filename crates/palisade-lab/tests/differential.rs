//! Differential test: seeded random policies over the e2e model, the
//! engine's verdicts (with random cluster policies of both tiers in every other
//! set) against real packets through the compiled nftables
//! program. Every mismatch is a bug in one of the two. Needs root, nft and
//! conntrack: `#[ignore]`d, run as root by `scripts/test` (`--include-ignored`).

use palisade_lab::model_lab::ModelLab;
use palisade_lab::plan::Family;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_cluster_policies, random_policies};
use palisade_policy::{ClusterIndex, Protocol};

/// Policy sets per run (at least 50, as the dataplane issue asks).
const SETS: u64 = 50;

#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn engine_and_packets_agree_on_random_policies() {
    palisade_lab::netns::require_root(&["nft", "conntrack"]);
    let (namespaces, pods) = model();
    let mut lab = ModelLab::start(&pods, &[80, 81]).expect("lab node");
    let cases: Vec<(u16, Protocol)> = [80, 81].iter().flat_map(|p| Protocol::ALL.map(|proto| (*p, proto))).collect();
    let mut failures = Vec::new();
    for seed in 0..SETS {
        let mut rng = Rng::new(1000 + seed);
        let n = 1 + rng.below(5);
        let policies = random_policies(&mut rng, n);
        // Every other set adds up to four cluster policies of both tiers.
        let c = if seed % 2 == 0 { 0 } else { 1 + rng.below(4) };
        let cluster = random_cluster_policies(&mut rng, c);
        let mut index = ClusterIndex::from_objects(namespaces.clone(), pods.clone(), policies.clone());
        for policy in &cluster {
            index.apply_cluster_policy(policy.clone());
        }
        lab.enforce(&index).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let family = if seed % 4 < 2 { Family::V4 } else { Family::V6 };
        let (probes, rows) = lab.plan(&index, &cases, family);
        let expected: Vec<bool> = rows.iter().map(|r| r.expected).collect();
        let measured =
            ModelLab::measure(&probes, &expected).unwrap_or_else(|e| panic!("seed {seed}: probe failed to run: {e}"));
        for (row, measured) in rows.iter().zip(measured) {
            if measured != row.expected {
                failures.push(format!(
                    "seed {seed} {family:?}: {} -> {} {}/{}: measured {measured}, engine {}\npolicies: {policies:#?}\ncluster policies: {cluster:#?}",
                    row.from, row.to, row.protocol, row.port, row.expected
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
}
