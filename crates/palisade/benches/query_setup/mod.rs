//! The queries both `query` benchmarks answer: 100,000 random queries on the
//! synthetic cluster S (pods to pods, one in ten to an external address),
//! as resolved flows, as names, and as JSON Lines text.

use std::fmt::Write as _;
use std::io::BufReader;
use std::sync::LazyLock;

use palisade::endpoint::{flow, resolve};
use palisade_policy::synth::{Rng, Size, generate};
use palisade_policy::{ClusterIndex, Flow, Protocol};

pub const QUERIES: usize = 100_000;

pub static INDEX: LazyLock<ClusterIndex> = LazyLock::new(|| {
    let c = generate(Size::S, 1);
    ClusterIndex::from_objects(c.namespaces, c.pods, c.policies)
});

/// (from, to, port, protocol) as the query text names them.
pub static QUERY_SET: LazyLock<Vec<(String, String, u16, Protocol)>> = LazyLock::new(|| {
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

/// The queries as flows, resolved before any timing.
pub fn resolved_flows() -> Vec<Flow> {
    let index = &*INDEX;
    QUERY_SET
        .iter()
        .map(|(f, t, port, proto)| {
            let (f, t) = (resolve(index, f).expect("pod"), resolve(index, t).expect("pod or address"));
            flow(index, &f, &t, *port, *proto)
        })
        .collect()
}

/// The engine alone: evaluates every flow; returns how many are allowed.
pub fn engine_pass(flows: &[Flow]) -> usize {
    flows.iter().filter(|f| INDEX.evaluate(std::hint::black_box(f)).allowed).count()
}

/// A query answered in-process, as `query` does for each line minus the
/// JSON: names resolved, flow evaluated, reason written.
pub fn in_process_pass(reason: &mut String) -> usize {
    let index = &*INDEX;
    let mut allowed = 0usize;
    for (f, t, port, proto) in QUERY_SET.iter() {
        let (f, t) = (resolve(index, f).expect("pod"), resolve(index, t).expect("pod or address"));
        let flow = flow(index, &f, &t, *port, *proto);
        let verdict = index.evaluate(std::hint::black_box(&flow));
        reason.clear();
        palisade::verdict_text::write_reason(reason, index, &flow, &verdict);
        allowed += usize::from(verdict.allowed);
    }
    allowed
}

/// The queries as JSON Lines, the documented form of a query.
pub fn json_lines_input() -> String {
    let mut input = String::new();
    for (f, t, port, proto) in QUERY_SET.iter() {
        let _ = writeln!(input, "{{\"from\":\"{f}\",\"to\":\"{t}\",\"port\":{port},\"protocol\":\"{proto}\"}}");
    }
    input
}

/// The whole JSON Lines path over `input`, answers written to `output`.
pub fn json_lines_pass(input: &str, output: &mut Vec<u8>) -> palisade::query::Stats {
    output.clear();
    let mut reader = BufReader::with_capacity(1 << 16, input.as_bytes());
    palisade::query::run(&INDEX, &mut reader, output).expect("in-memory I/O")
}
