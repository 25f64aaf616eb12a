//! How much slower the JSON Lines path is than the engine alone and than a
//! query answered in-process, measured the way that holds on a noisy shared
//! machine: the three passes over the same 100,000 queries on S alternate,
//! round after round, and each round gives its own ratios; the report is
//! the median of those ratios (and their spread), not a ratio of medians
//! taken minutes apart.
//!
//! `cargo bench -p palisade --bench query_ratio [-- ROUNDS]` (default 31)

mod query_setup;

use std::time::Instant;

use palisade_lab::bench::quartiles;
use query_setup::{QUERIES, engine_pass, in_process_pass, json_lines_input, json_lines_pass, resolved_flows};

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(31).clamp(1, 1_000);
    let flows = resolved_flows();
    let input = json_lines_input();
    let mut output = Vec::with_capacity(input.len() * 4);
    let mut reason = String::new();
    let mut secs = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(engine_pass(&flows));
        secs[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(in_process_pass(&mut reason));
        secs[1].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let stats = json_lines_pass(&input, &mut output);
        secs[2].push(t.elapsed().as_secs_f64());
        assert_eq!(stats.answered, QUERIES, "every query is answered");
    }
    #[expect(clippy::cast_precision_loss, reason = "100,000 is exact in an f64")]
    let rate = |s: &Vec<f64>| QUERIES as f64 / quartiles(s.clone())[1] / 1e6;
    println!(
        "{rounds} alternating rounds of {QUERIES} queries on S; median rates: engine alone {:.2} M/s, in-process query {:.2} M/s, JSON Lines {:.2} M/s",
        rate(&secs[0]),
        rate(&secs[1]),
        rate(&secs[2])
    );
    let ratio = |a: usize, b: usize| quartiles(secs[a].iter().zip(&secs[b]).map(|(x, y)| x / y).collect());
    for (name, a, b) in [
        ("JSON Lines / engine alone", 2, 0),
        ("JSON Lines / in-process query", 2, 1),
        ("in-process query / engine alone", 1, 0),
    ] {
        let [q1, q2, q3] = ratio(a, b);
        println!("{name}: time ratio per round, median {q2:.2} (quartiles {q1:.2}-{q3:.2})");
    }
}
