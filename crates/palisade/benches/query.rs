//! `query` throughput on the synthetic cluster S, measured in one run so the
//! ratios are meaningful on a noisy machine: the engine alone (flows already
//! resolved), a query answered in-process (names resolved, evaluated, reason
//! written), and the whole JSON Lines path (plus parsing and serializing).
//!
//! `cargo bench -p palisade --bench query`

use std::fmt::Write as _;
use std::io::BufReader;
use std::sync::LazyLock;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use palisade::endpoint::{flow, resolve};
use palisade_policy::synth::{Rng, Size, generate};
use palisade_policy::{ClusterIndex, Protocol};

fn main() {
    divan::main();
}

const QUERIES: usize = 100_000;

static INDEX: LazyLock<ClusterIndex> = LazyLock::new(|| {
    let c = generate(Size::S, 1);
    ClusterIndex::from_objects(c.namespaces, c.pods, c.policies)
});

/// (from, to, port, protocol) as the query text names them.
static QUERY_SET: LazyLock<Vec<(String, String, u16, Protocol)>> = LazyLock::new(|| {
    let pods: Vec<String> = INDEX.pods_sorted().into_iter().map(|p| INDEX.pod_name(p).to_string()).collect();
    let mut rng = Rng::new(3);
    let cases = [(8080, Protocol::Tcp), (9090, Protocol::Tcp), (5432, Protocol::Tcp), (53, Protocol::Udp)];
    (0..QUERIES)
        .map(|i| {
            let (port, protocol) = cases[rng.below(cases.len())];
            let to = if i % 10 == 9 { "172.16.5.5".to_string() } else { pods[rng.below(pods.len())].clone() };
            (pods[rng.below(pods.len())].clone(), to, port, protocol)
        })
        .collect()
});

#[divan::bench(sample_count = 10)]
fn engine_only(bencher: Bencher) {
    let index = &*INDEX;
    let flows: Vec<_> = QUERY_SET
        .iter()
        .map(|(f, t, port, proto)| {
            let (f, t) = (resolve(index, f).expect("pod"), resolve(index, t).expect("pod or address"));
            flow(index, &f, &t, *port, *proto)
        })
        .collect();
    bencher
        .counter(ItemsCount::new(flows.len()))
        .bench_local(|| flows.iter().filter(|f| index.evaluate(black_box(f)).allowed).count());
}

/// A query answered in-process: names resolved, flow evaluated, reason
/// written, as `query` does for each line minus the JSON.
#[divan::bench(sample_count = 10)]
fn query_in_process(bencher: Bencher) {
    let index = &*INDEX;
    let mut reason = String::new();
    bencher.counter(ItemsCount::new(QUERY_SET.len())).bench_local(|| {
        let mut allowed = 0usize;
        for (f, t, port, proto) in QUERY_SET.iter() {
            let (f, t) = (resolve(index, f).expect("pod"), resolve(index, t).expect("pod or address"));
            let flow = flow(index, &f, &t, *port, *proto);
            let verdict = index.evaluate(black_box(&flow));
            reason.clear();
            palisade::verdict_text::write_reason(&mut reason, index, &flow, &verdict);
            allowed += usize::from(verdict.allowed);
        }
        allowed
    });
}

#[divan::bench(sample_count = 10)]
fn json_lines(bencher: Bencher) {
    let index = &*INDEX;
    let mut input = String::new();
    for (f, t, port, proto) in QUERY_SET.iter() {
        let _ = writeln!(input, "{{\"from\":\"{f}\",\"to\":\"{t}\",\"port\":{port},\"protocol\":\"{proto}\"}}");
    }
    let mut output = Vec::with_capacity(input.len() * 4);
    bencher.counter(ItemsCount::new(QUERIES)).bench_local(|| {
        output.clear();
        let mut reader = BufReader::with_capacity(1 << 16, input.as_bytes());
        palisade::query::run(index, &mut reader, &mut output).expect("in-memory I/O")
    });
}
