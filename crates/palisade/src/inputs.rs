//! Shared `-f`/`-n` handling: load, report problems on stderr, build the index.

use std::path::PathBuf;

use clap::Args;
use palisade_manifests::{Build, IgnoredPolicy, Input, LoadError, LoadOptions, Loaded, load_with};
use palisade_policy::ClusterIndex;
use serde::Serialize;

use crate::commands::{EXIT_ERROR, EXIT_INCOMPLETE};

/// Where cluster state comes from.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Manifest file or directory (recursive: .yaml, .yml, .json); `-` for
    /// stdin. Repeatable. Without it, the cluster is read through the
    /// Kubernetes API (the kubeconfig's current context, `--context`, or the
    /// in-cluster service account).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub filenames: Vec<PathBuf>,
    /// The kubeconfig context to read the cluster from (without `-f`).
    #[arg(long, value_name = "NAME", conflicts_with = "filenames")]
    pub context: Option<String>,
    /// Namespace for objects that name none.
    #[arg(long = "default-namespace", value_name = "NS", default_value = "default")]
    pub default_namespace: String,
    /// Reject objects with fields the API does not define (a typo such as
    /// `matchLabel:`), as the API server's strict field validation does;
    /// without it they are warnings.
    #[arg(long)]
    pub strict: bool,
    /// Audit (staged) NetworkPolicies (`palisade.dev/enforcement: audit`):
    /// `include` counts them as if enforced (what the cluster will do once
    /// they are); `exclude` leaves them out (what the dataplane does now).
    #[arg(long, value_enum, default_value = "include")]
    pub audit: Audit,
}

/// `--audit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Audit {
    /// Count audit policies as enforced.
    #[default]
    Include,
    /// Leave them out.
    Exclude,
}

/// Loaded state and its index.
#[derive(Debug)]
pub struct State {
    /// What loaded: errors, warnings and what was skipped (the objects
    /// themselves are in the index).
    pub loaded: Loaded,
    /// The index over it.
    pub index: ClusterIndex,
}

/// What the input holds that Palisade does not evaluate, for JSON output.
#[derive(Debug, Serialize)]
pub struct IncompleteJson<'a> {
    /// Policy kinds present and not evaluated, with counts.
    pub ignored_policy_kinds: &'a std::collections::BTreeMap<String, usize>,
}

impl State {
    /// Whether any input was rejected.
    #[must_use]
    pub fn had_errors(&self) -> bool {
        !self.loaded.errors.is_empty()
    }

    /// Whether the input holds policies of kinds Palisade does not evaluate.
    #[must_use]
    pub fn incomplete(&self) -> bool {
        !self.loaded.ignored_policies.is_empty()
    }

    /// The `"incomplete"` member of JSON outputs, when the input holds
    /// policies Palisade does not evaluate.
    #[must_use]
    pub fn incomplete_json(&self) -> Option<IncompleteJson<'_>> {
        self.incomplete().then_some(IncompleteJson { ignored_policy_kinds: &self.loaded.ignored_policy_kinds })
    }

    /// The ignored policies that could change a verdict between these
    /// namespaces (`None`: an address outside the cluster).
    #[must_use]
    pub fn could_change(&self, from: Option<&str>, to: Option<&str>) -> Vec<&IgnoredPolicy> {
        self.loaded.could_change(from, to).collect()
    }

    /// The exit status: invalid input first, then an answer the input's
    /// ignored policies could change, then `code`.
    #[must_use]
    pub fn exit(&self, code: u8, could_change: bool) -> u8 {
        if self.had_errors() {
            EXIT_ERROR
        } else if could_change {
            EXIT_INCOMPLETE
        } else {
            code
        }
    }

    /// `value` as pretty JSON, with an `"incomplete"` member added when
    /// the input holds policies Palisade does not evaluate (and `value` is
    /// a JSON object).
    #[must_use]
    pub fn json<T: Serialize>(&self, value: &T) -> String {
        let Some(incomplete) = self.incomplete_json() else {
            return serde_json::to_string_pretty(value).expect("plain data serializes");
        };
        // (Through a tree only then: its members come out sorted.)
        let mut v = serde_json::to_value(value).expect("plain data serializes");
        if let Some(map) = v.as_object_mut() {
            map.insert("incomplete".into(), serde_json::to_value(incomplete).expect("plain data serializes"));
        }
        serde_json::to_string_pretty(&v).expect("plain data serializes")
    }

    /// The first line of a text report on an incomplete input.
    #[must_use]
    pub fn incomplete_line(&self) -> Option<String> {
        self.loaded.incomplete_summary()
    }
}

/// Loads `paths`, printing every error, warning and summary to stderr.
/// Reading no object at all is an error.
#[must_use]
pub fn load_state(paths: &[PathBuf], options: &LoadOptions, audit: Audit) -> State {
    let inputs: Vec<Input> = paths.iter().map(|p| Input::parse(&p.to_string_lossy())).collect();
    let loaded = load_with(&inputs, &index_only(options, audit));
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    report(loaded, &names.join(", "), "no .yaml, .yml or .json file holds a Kubernetes object", audit)
}

/// Reads the cluster through the Kubernetes API (see [`crate::live`]).
#[must_use]
pub fn load_live(context: Option<&str>, options: &LoadOptions, audit: Audit) -> State {
    match crate::live::read(context, &index_only(options, audit)) {
        Ok(loaded) => report(loaded, "the Kubernetes API", "the cluster has no Namespace, Pod or NetworkPolicy", audit),
        Err(e) => {
            let mut loaded = Loaded::default();
            loaded.errors.push(LoadError::Read { file: "the Kubernetes API".into(), message: format!("{e:#}") });
            report(loaded, "the Kubernetes API", "", audit)
        }
    }
}

/// `options` for a command that needs only the index: built while the
/// objects are taken, without the audit policies under `--audit exclude`.
fn index_only(options: &LoadOptions, audit: Audit) -> LoadOptions {
    LoadOptions { build: Build::Index { leave_out_audit: audit == Audit::Exclude }, ..options.clone() }
}

/// Prints what `loaded` found wrong or left out, and builds the index.
fn report(mut loaded: Loaded, source: &str, nothing: &str, audit: Audit) -> State {
    if loaded.read_nothing() && loaded.errors.is_empty() {
        loaded
            .errors
            .push(LoadError::Read { file: source.to_string(), message: format!("no objects were read ({nothing})") });
    }
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(summary) = loaded.skipped_summary() {
        eprintln!("note: {summary}");
    }
    if let Some(summary) = loaded.incomplete_summary() {
        eprintln!("warning: {summary}");
    }
    let staged = loaded.staged;
    if staged > 0 {
        if audit == Audit::Exclude {
            // Left out of the index as it was built (`index_only`).
            eprintln!("note: {staged} audit (staged) NetworkPolicies left out (--audit exclude): what is enforced now");
        } else {
            eprintln!(
                "note: {staged} audit (staged) NetworkPolicies count as enforced (palisade.dev/enforcement: audit; \
                 --audit exclude leaves them out)"
            );
        }
    }
    let index = loaded.take_index();
    State { loaded, index }
}

impl InputArgs {
    /// The load options these arguments ask for.
    #[must_use]
    pub fn options(&self) -> LoadOptions {
        LoadOptions { default_namespace: self.default_namespace.clone(), strict: self.strict, build: Build::Objects }
    }

    /// Loads these inputs: the files, or without any, the cluster through
    /// the Kubernetes API.
    #[must_use]
    pub fn load(&self) -> State {
        if self.filenames.is_empty() {
            load_live(self.context.as_deref(), &self.options(), self.audit)
        } else {
            load_state(&self.filenames, &self.options(), self.audit)
        }
    }
}
