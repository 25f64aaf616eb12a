//! Issue #11, item 4: memory goes back after a large manifests file. A
//! file of 4 MB of NetworkPolicies goes through the manifests source into
//! an index, is removed and scanned away; the process's resident memory
//! after the removal must be well under what it was with the file (it
//! stayed at 90% of it when the source kept each file's text, parsed
//! every document before converting any, and left freed pages to the
//! allocator). Its own test binary: resident memory is the whole
//! process's.

use std::fmt::Write as _;

use palisade_agent::apply_changes;
use palisade_agent::manifests::ManifestSource;
use palisade_policy::ClusterIndex;
use palisade_testkit::memory::rss_bytes;
use palisade_testkit::temp::TempDir;

#[test]
fn memory_goes_back_after_a_large_file_is_removed() {
    let dir = TempDir::new("memory");
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 4 << 20 {
        let _ = write!(
            text,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{i}, namespace: ns{}}}\n\
             spec:\n  podSelector: {{matchLabels: {{app: a{}}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: b{}}}}}}}]\n    \
             ports: [{{port: {}}}]\n",
            i % 50,
            i % 7,
            i % 11,
            1000 + i % 100
        );
        i += 1;
    }
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, &text).expect("write");
    drop(text);
    let mut source = ManifestSource::new(dir.path(), "default");
    let mut index = ClusterIndex::default();
    let scan = source.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors.first());
    apply_changes(&mut index, scan.changes);
    palisade_agent::memory::trim();
    let loaded = rss_bytes();
    std::fs::remove_file(&file).expect("remove");
    let scan = source.scan();
    apply_changes(&mut index, scan.changes);
    palisade_agent::memory::trim();
    let after = rss_bytes();
    assert_eq!(index.counts().2, 0, "the policies are gone");
    eprintln!("{i} policies: resident {} MiB with the file, {} MiB after its removal", loaded >> 20, after >> 20);
    assert!(after * 2 < loaded, "resident memory after the removal: {after} bytes, with the file {loaded}");
}
