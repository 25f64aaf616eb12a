//! Shared `-f`/`-n` handling: load, report problems on stderr, build the index.

use std::path::PathBuf;

use clap::Args;
use palisade_manifests::{Input, Loaded, load};
use palisade_policy::ClusterIndex;

/// Where cluster state comes from.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Manifest file or directory (recursive: .yaml, .yml, .json); `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub filenames: Vec<PathBuf>,
    /// Namespace for objects that name none.
    #[arg(long = "default-namespace", value_name = "NS", default_value = "default")]
    pub default_namespace: String,
}

/// Loaded state and its index.
#[derive(Debug)]
pub struct State {
    /// What loaded, with errors.
    pub loaded: Loaded,
    /// The index over it.
    pub index: ClusterIndex,
}

impl State {
    /// Whether any input was rejected.
    #[must_use]
    pub fn had_errors(&self) -> bool {
        !self.loaded.errors.is_empty()
    }
}

/// Loads `paths`, printing every error and the skipped-kinds summary to stderr.
#[must_use]
pub fn load_state(paths: &[PathBuf], default_namespace: &str) -> State {
    let inputs: Vec<Input> = paths.iter().map(|p| Input::parse(&p.to_string_lossy())).collect();
    let loaded = load(&inputs, default_namespace);
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    if let Some(summary) = loaded.skipped_summary() {
        eprintln!("note: {summary}");
    }
    let index = loaded.index();
    State { loaded, index }
}

impl InputArgs {
    /// Loads these inputs.
    #[must_use]
    pub fn load(&self) -> State {
        load_state(&self.filenames, &self.default_namespace)
    }
}
