//! Writes a synthetic cluster as the files a user would hand the analyzer.
//!
//! `cargo run --release -p palisade --example write_cluster -- S|L DIR`
//!
//! Writes `DIR/cluster.json` (one `kind: List` JSON document, the shape of
//! `kubectl get namespaces,pods,networkpolicies -A -o json`) and
//! `DIR/cluster.yaml` (the same objects as multi-document YAML, block style
//! as `kubectl get -o yaml` writes it). Then, for the whole path a user
//! runs, with peak memory:
//! `echo '{"from":"ns-0/x","to":"ns-1/y","port":80}' | /usr/bin/time -v palisade query -f DIR/cluster.json`

use palisade_policy::synth::Size;

fn main() {
    let mut args = std::env::args().skip(1);
    let size = match args.next().as_deref() {
        Some("S") => Size::S,
        Some("L") => Size::L,
        _ => {
            eprintln!("usage: write_cluster S|L DIR");
            std::process::exit(2);
        }
    };
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    palisade_testkit::big::write_cluster(size, &dir);
    eprintln!("wrote {}", dir.display());
}
