//! `query` throughput on the synthetic cluster S, three ways: the engine
//! alone (flows already resolved), a query answered in-process (names
//! resolved, evaluated, reason written), and the whole JSON Lines path (plus
//! parsing and serializing). Absolute rates; `query_ratio` compares the
//! three in alternating passes, which is what holds on a noisy machine.
//!
//! `cargo bench -p palisade --bench query`

mod query_setup;

use divan::Bencher;
use divan::counter::ItemsCount;
use query_setup::{
    QUERIES, QUERY_SET, engine_pass, in_process_pass, json_lines_input, json_lines_pass, resolved_flows,
};

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 10)]
fn engine_only(bencher: Bencher) {
    let flows = resolved_flows();
    bencher.counter(ItemsCount::new(flows.len())).bench_local(|| engine_pass(&flows));
}

#[divan::bench(sample_count = 10)]
fn query_in_process(bencher: Bencher) {
    // Built before timing (the set builds the index too).
    let _ = &*QUERY_SET;
    let mut reason = String::new();
    bencher.counter(ItemsCount::new(QUERIES)).bench_local(|| in_process_pass(&mut reason));
}

#[divan::bench(sample_count = 10)]
fn json_lines(bencher: Bencher) {
    let input = json_lines_input();
    let mut output = Vec::with_capacity(input.len() * 4);
    bencher.counter(ItemsCount::new(QUERIES)).bench_local(|| json_lines_pass(&input, &mut output));
}
