//! The engine issue's truth tables, re-run with real packets: every case of
//! `palisade-testkit/src/e2e/cases.rs` and of `cluster_cases.rs` (the Admin
//! and Baseline tiers) (hand-written expectations) is
//! compiled to nftables in a lab node and probed over TCP, UDP and SCTP;
//! the measured table must equal the hand-written one (and the engine's).
//! Needs root, nft and conntrack: `#[ignore]`d, run as root by `scripts/test`
//! (`--include-ignored`).

use palisade_lab::model_lab::ModelLab;
use palisade_lab::plan::Family;
use palisade_policy::synth::e2e::model as e2e_model;

#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn truth_tables_with_real_packets() {
    palisade_lab::netns::require_root(&["nft", "conntrack"]);
    let (_, pods) = e2e_model();
    let mut lab = ModelLab::start(&pods, &[80, 81]).expect("lab node");
    let mut failures = Vec::new();
    let mut measured_count = 0usize;
    let cases = palisade_testkit::e2e::cases::cases();
    let cluster_cases = palisade_testkit::e2e::cluster_cases::cluster_cases();
    for (n, case) in cases.iter().chain(&cluster_cases).enumerate() {
        let index = palisade_testkit::e2e::cluster(&case.policies);
        lab.enforce(&index).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // IPv4 for every case, IPv6 as well for every third.
        let families: &[Family] = if n % 3 == 0 { &[Family::V4, Family::V6] } else { &[Family::V4] };
        for family in families {
            for (port, protocol, reach) in &case.checks {
                let (probes, rows) = lab.plan(&index, &[(*port, *protocol)], *family);
                let hand: Vec<bool> = rows.iter().map(|row| reach.allowed(&row.from, &row.to)).collect();
                let measured = ModelLab::measure(&probes, &hand)
                    .unwrap_or_else(|e| panic!("{}: probe failed to run: {e}", case.name));
                for ((row, hand), measured) in rows.iter().zip(&hand).zip(measured) {
                    measured_count += 1;
                    if measured != *hand || row.expected != *hand {
                        failures.push(format!(
                            "{}: {} -> {} {}/{}: packets {measured}, hand-written {hand}, engine {}",
                            case.name, row.from, row.to, row.protocol, row.port, row.expected
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{measured_count} probes, all as the hand-written truth tables say");
}
