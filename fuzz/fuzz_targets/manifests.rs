//! Fuzzes the manifest loader and everything downstream of it: any input
//! must load (with errors) without panicking, and the index built from what
//! loaded must evaluate, lint and explain without panicking.
//!
//! `cd fuzz && cargo +nightly fuzz run manifests seeds` (see the README, Testing).

#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_manifests::load_str;
use palisade_policy::lint::lint;
use palisade_policy::matrix::Case;
use palisade_policy::Protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = load_str("fuzz.yaml", text, "default");
    for e in &loaded.errors {
        let _ = e.to_string();
    }
    let index = loaded.index();
    let pods: Vec<_> = index.pods_sorted().into_iter().take(16).collect();
    for pod in &pods {
        let _ = index.explain(*pod);
    }
    let _ = index.matrix(pods, vec![Case { port: 80, protocol: Protocol::Tcp }]);
    let _ = lint(&index);
});
