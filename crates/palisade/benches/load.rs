//! From files to the first answer, the path a user takes with a cluster
//! dump: read, split, convert and validate every object (in parallel), build
//! the index, answer one query. S and L as one JSON List and as
//! multi-document YAML, written once before timing.
//!
//! `cargo bench -p palisade --bench load` (L takes a minute to set up; peak
//! memory of the whole command: see `examples/write_cluster.rs`).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use divan::Bencher;
use palisade::endpoint::{flow, resolve};
use palisade_manifests::{Build, Input, LoadOptions, load, load_with};
use palisade_policy::Protocol;
use palisade_policy::synth::Size;

fn main() {
    divan::main();
}

/// The files, written once per run into the same place under `target/`
/// (a static is never dropped, so a temporary directory would be left
/// behind: 230 MB per run).
static FILES: LazyLock<(PathBuf, PathBuf)> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (s, l) = (root.join("bench-load-s"), root.join("bench-load-l"));
    for (size, dir) in [(Size::S, &s), (Size::L, &l)] {
        std::fs::create_dir_all(dir).expect("bench directory");
        palisade_testkit::big::write_cluster(size, dir);
    }
    (s, l)
});

fn file(size: &str, name: &str) -> PathBuf {
    let dir: &Path = if size == "S" { &FILES.0 } else { &FILES.1 };
    dir.join(name)
}

/// Loads `path`, building the index as the analyzer's commands do (while
/// the objects are taken), and answers one query.
fn first_answer(path: &Path) -> bool {
    let options = LoadOptions { build: Build::Index { leave_out_audit: false }, ..LoadOptions::new("default") };
    let mut loaded = load_with(&[Input::Path(path.to_path_buf())], &options);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    let index = loaded.take_index();
    let pods = index.pods_sorted();
    let (a, b) = (index.pod_name(pods[0]).to_string(), index.pod_name(pods[pods.len() - 1]).to_string());
    let (from, to) = (resolve(&index, &a).expect("pod"), resolve(&index, &b).expect("pod"));
    let allowed = index.evaluate(&flow(&index, &from, &to, 8080, Protocol::Tcp)).allowed;
    // Freed outside the measurement's interest but inside its time, as a
    // library user would; the CLI leaves this to the process exit.
    drop((index, loaded));
    allowed
}

#[divan::bench(args = ["S", "L"], sample_count = 5, sample_size = 1)]
fn json_list(bencher: Bencher, size: &str) {
    let path = file(size, "cluster.json");
    bencher.bench_local(|| first_answer(&path));
}

/// The loading alone (read, split, convert, validate; no index), to set
/// beside the first answer.
#[divan::bench(args = ["S", "L"], sample_count = 5, sample_size = 1)]
fn json_list_load_only(bencher: Bencher, size: &str) {
    let path = file(size, "cluster.json");
    bencher.bench_local(|| {
        let loaded = load(&[Input::Path(path.clone())], "default");
        loaded.pods.len()
    });
}

#[divan::bench(args = ["S", "L"], sample_count = 5, sample_size = 1)]
fn yaml_documents(bencher: Bencher, size: &str) {
    let path = file(size, "cluster.yaml");
    bencher.bench_local(|| first_answer(&path));
}
