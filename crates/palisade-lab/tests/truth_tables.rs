//! The engine issue's truth tables, re-run with real packets: every case of
//! `palisade-manifests/tests/model/cases.rs` (hand-written expectations) is
//! compiled to nftables in a lab node and probed over TCP, UDP and SCTP;
//! the measured table must equal the hand-written one (and the engine's).
//! Needs root, nft and conntrack (CI has them).

#[path = "../../palisade-manifests/tests/model/mod.rs"]
mod model;

use std::time::Duration;

use palisade_dataplane::nft::{Nft, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::transaction::{diff, full};
use palisade_dataplane::{NodeScope, compile};
use palisade_lab::netns::{kernel_tests_enabled, run, unique_prefix};
use palisade_lab::plan::{Family, plan};
use palisade_lab::probe::run_all;
use palisade_lab::serve;
use palisade_lab::topology::Topology;
use palisade_policy::synth::e2e::model as e2e_model;

#[test]
fn truth_tables_with_real_packets() {
    if !kernel_tests_enabled(&["nft", "conntrack"]) {
        return;
    }
    let (_, pods) = e2e_model();
    let mut topo = Topology::new(&unique_prefix()).expect("node namespace");
    for pod in &pods {
        let key = format!("{}/{}", pod.namespace, pod.name);
        topo.add_pod(&key, &pod.ips).expect("pod namespace");
        serve::start(topo.pods[&key].ns.name(), &[80, 81], &[80, 81]).expect("servers");
    }
    let nft = NftCli { netns: Some(topo.node.name().to_string()) };
    let mut applied = None;
    let mut failures = Vec::new();
    let mut measured_count = 0usize;
    for (n, case) in model::cases::cases().iter().enumerate() {
        let index = model::cluster(&case.policies);
        let rendered = render(&compile(&index, &NodeScope::All, &topo.pod_ifaces()));
        let tx = match &applied {
            None => Some(full(&rendered)),
            Some(old) => diff(old, &rendered),
        };
        if let Some(tx) = tx {
            nft.apply(&tx).unwrap_or_else(|e| panic!("{}: nft rejected the program: {e}", case.name));
        }
        applied = Some(rendered);
        run("ip", &["netns", "exec", topo.node.name(), "conntrack", "-F"]).expect("conntrack -F");
        // IPv4 for every case, IPv6 as well for every third.
        let families: &[Family] = if n % 3 == 0 { &[Family::V4, Family::V6] } else { &[Family::V4] };
        let mut probes = Vec::new();
        let mut rows = Vec::new();
        for family in families {
            for (port, protocol, reach) in &case.checks {
                let (p, r) = plan(&index, &topo, &[*port], &[*protocol], *family);
                probes.extend(p);
                rows.extend(r.into_iter().map(|row| (row, reach)));
            }
        }
        let hand: Vec<bool> = rows.iter().map(|(row, reach)| reach.allowed(&row.from, &row.to)).collect();
        let results = run_all(&probes, &hand, 48, Duration::from_millis(150), Duration::from_millis(1500));
        for (((row, _), hand), result) in rows.iter().zip(&hand).zip(results) {
            let measured = result.unwrap_or_else(|e| panic!("{}: probe failed to run: {e}", case.name));
            measured_count += 1;
            if measured != *hand || row.expected != *hand {
                failures.push(format!(
                    "{}: {} -> {} {}/{}: packets {}, hand-written {}, engine {}",
                    case.name, row.from, row.to, row.protocol, row.port, measured, hand, row.expected
                ));
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
