//! The agent's flow-record path after the kernel: one batch of 2,048
//! logged packets (denied pod-to-pod flows of the S cluster, 10,000 pods
//! and 5,000 policies) attributed with the engine, serialized as JSON
//! lines, counted, and written to a sink. The end-to-end figure (packets
//! to records through NFLOG, in the lab) is in `crates/palisade/tests/flow_logs.rs`.
//!
//! `cargo bench -p palisade-agent --bench flow_records`

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use palisade_agent::flows::FlowWriter;
use palisade_agent::metrics::Metrics;
use palisade_dataplane::nflog::{Logged, PacketHead};
use palisade_policy::ClusterIndex;
use palisade_policy::synth::{Rng, Size, generate};

fn main() {
    divan::main();
}

/// Records per batch.
const BATCH: usize = 2048;

fn batch(index: &ClusterIndex) -> Vec<Logged> {
    let pods: Vec<_> = index.pod_ids().collect();
    let mut rng = Rng::new(7);
    (0..BATCH)
        .map(|i| {
            let (a, b) = (pods[rng.below(pods.len())], pods[rng.below(pods.len())]);
            let head = PacketHead {
                src: index.pod(a).pod().ips[0],
                dst: index.pod(b).pod().ips[0],
                protocol: 6,
                sport: Some(u16::try_from(30_000 + i).unwrap_or(0)),
                dport: Some(8080),
            };
            Logged {
                prefix: "palisade deny ingress x: ".into(),
                time: None,
                interfaces: (None, None),
                head: Some(head),
            }
        })
        .collect()
}

#[divan::bench(sample_count = 20)]
fn attribute_and_write_2048_records(bencher: divan::Bencher) {
    let c = generate(Size::S, 1);
    let index = ClusterIndex::from_objects(c.namespaces, c.pods, c.policies);
    let logged = batch(&index);
    let metrics = Metrics::new();
    let in_flight = Arc::new(AtomicUsize::new(usize::MAX / 2));
    let mut writer = FlowWriter::to_writer(Box::new(std::io::sink()), in_flight);
    bencher.counter(divan::counter::ItemsCount::new(BATCH)).bench_local(|| writer.write(&index, &logged, &metrics));
}
