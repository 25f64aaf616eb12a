//! Loading cluster state from manifests: files, directories, pipes, stdin;
//! multi-document YAML, JSON, `kind: List` and typed lists.
//!
//! ```text
//! inputs -> pieces: JSON objects and List items as slices of the text (one scan),
//!           YAML documents cut at their `---` lines          (pieces.rs)
//!        -> in parallel, per piece: YAML to JSON; nested Lists flattened;
//!           head (apiVersion, kind, names); kinds told apart by API group (kinds.rs)
//!        -> Namespace, Pod, NetworkPolicy: the fields policy uses, read
//!           straight from the text (lean.rs); on any surprise, k8s-openapi
//!           types with field paths for errors and unknown fields (convert.rs)
//!        -> validated palisade-policy model (file, object, field on every error)
//!        -> taken in input order: duplicates, workload templates (this file)
//! ```
//!
//! An invalid object is rejected whole; everything else still loads.
//! Fields the API does not define are warnings (errors with
//! [`LoadOptions::strict`]); policies of kinds Palisade does not evaluate
//! are listed ([`Loaded::ignored_policies`]) so that callers can say their
//! answers are incomplete.

mod block_yaml;
mod build;
mod cluster_policy;
mod convert;
mod documents;
pub mod encode;
mod error;
mod kinds;
mod lean;
mod parallel;
mod pieces;
mod pod;
pub use pod::HOST_NETWORK;
mod policy;
mod selector;
mod walk;

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_policy::{
    ClusterIndex, ClusterPolicy, Enforcement, Namespace, NetworkPolicy, Node, ObjectKey, ObjectKind, Pod,
};
use serde_json::Value;

pub use build::Build;
use convert::{Kept, Outcome};
pub use documents::{Input, manifest_files};
pub use error::{FieldError, LoadError};
pub use kinds::{IGNORED_POLICY_KINDS, IgnoredPolicy, ignored_policy_kind};
pub use lean::{ENFORCEMENT, LINT_IGNORE, LOG};
use pieces::Piece;
pub use walk::{Walk, WalkLimits};

/// How to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Namespace for objects that name none.
    pub default_namespace: String,
    /// Unknown fields reject their object (the API server's strict field
    /// validation) instead of being warned about.
    pub strict: bool,
    /// What the load builds from the objects.
    pub build: Build,
}

impl LoadOptions {
    /// Options with `default_namespace`, not strict, building the objects.
    #[must_use]
    pub fn new(default_namespace: &str) -> Self {
        LoadOptions { default_namespace: default_namespace.to_string(), strict: false, build: Build::Objects }
    }
}

/// Everything loaded from a set of inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Declared namespaces.
    pub namespaces: Vec<Namespace>,
    /// Pods, and workload templates as planned pods.
    pub pods: Vec<Pod>,
    /// NetworkPolicies.
    pub policies: Vec<NetworkPolicy>,
    /// ClusterNetworkPolicies, AdminNetworkPolicies and
    /// BaselineAdminNetworkPolicies.
    pub cluster_policies: Vec<ClusterPolicy>,
    /// Nodes (for `nodes` peers of cluster policies).
    pub nodes: Vec<Node>,
    /// Everything that could not be used.
    pub errors: Vec<LoadError>,
    /// Fields the API does not define (the API server drops them with a
    /// warning): objects load without them, as in a cluster.
    pub warnings: Vec<LoadError>,
    /// Objects of kinds Palisade does not use, counted by kind.
    pub skipped: BTreeMap<String, usize>,
    /// Objects of policy kinds Palisade does not enforce (AdminNetworkPolicy,
    /// Calico's and Cilium's policies, ...), counted by `Kind (group)`:
    /// verdicts computed without them may be wrong.
    pub ignored_policy_kinds: BTreeMap<String, usize>,
    /// Those policies, in input order.
    pub ignored_policies: Vec<IgnoredPolicy>,
    /// Of the skipped kinds, those whose objects may create pods the input
    /// does not show (custom resources with a pod template, operators'
    /// workloads), counted.
    pub pod_creating_kinds: BTreeMap<String, usize>,
    /// Lint codes suppressed per object (`palisade.dev/lint-ignore:
    /// code,code`).
    pub lint_ignore: BTreeMap<ObjectKey, Vec<String>>,
    /// Files read.
    pub files: usize,
    /// Where each object came from, to report duplicates.
    origins: hashbrown::HashMap<ObjectKey, Arc<str>>,
    /// The file being taken (shared by its objects' origins).
    current_file: Option<Arc<str>>,
    /// `(namespace, owner kind, owner name)` of live pods, to drop the
    /// workload templates that live pods already stand for.
    owners: Vec<(String, String, String)>,
    /// Workload pods, merged in at the end.
    templates: Vec<(Pod, String)>,
    /// Audit (staged) NetworkPolicies read (`palisade.dev/enforcement:
    /// audit`), whether or not they are left out of the index.
    pub staged: usize,
    /// The index built while objects are taken ([`Build::Index`]).
    building: Option<build::Building>,
}

impl Loaded {
    /// Builds the cluster index from what loaded (the objects in the
    /// vectors: with [`Build::Index`] they are in the index
    /// [`Loaded::take_index`] returns instead, and this one is empty).
    #[must_use]
    pub fn index(&self) -> ClusterIndex {
        cluster_index(
            self.namespaces.clone(),
            self.nodes.clone(),
            self.cluster_policies.clone(),
            self.pods.clone(),
            self.policies.clone(),
        )
    }

    /// Builds the cluster index, moving the objects into it (they are left
    /// empty here): what a command that only needs the index does. With
    /// [`Build::Index`], it is the index built while the objects were
    /// taken.
    #[must_use]
    pub fn take_index(&mut self) -> ClusterIndex {
        if let Some(index) = self.finish_building() {
            return index;
        }
        cluster_index(
            std::mem::take(&mut self.namespaces),
            std::mem::take(&mut self.nodes),
            std::mem::take(&mut self.cluster_policies),
            std::mem::take(&mut self.pods),
            std::mem::take(&mut self.policies),
        )
    }

    /// Whether nothing at all was read: no object of any kind.
    #[must_use]
    pub fn read_nothing(&self) -> bool {
        self.namespaces.is_empty()
            && self.pods.is_empty()
            && self.policies.is_empty()
            && self.cluster_policies.is_empty()
            && self.nodes.is_empty()
            && self.skipped.is_empty()
            && self.ignored_policy_kinds.is_empty()
            && self.origins.is_empty()
    }

    /// The file an object was read from.
    #[must_use]
    pub fn origin(&self, key: &ObjectKey) -> Option<&str> {
        self.origins.get(key).map(|f| &**f)
    }

    /// One line summarising skipped kinds, if any.
    #[must_use]
    pub fn skipped_summary(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let total: usize = self.skipped.values().sum();
        let kinds: Vec<String> = self.skipped.iter().map(|(k, n)| format!("{n} {k}")).collect();
        Some(format!("skipped {total} object(s) of kinds Palisade does not use: {}", kinds.join(", ")))
    }

    /// The ignored policies that could change the verdict of a connection
    /// between pods of these namespaces (`None`: an address).
    pub fn could_change(&self, from: Option<&str>, to: Option<&str>) -> impl Iterator<Item = &IgnoredPolicy> {
        self.ignored_policies.iter().filter(move |p| p.could_affect(from, to))
    }

    /// One line naming the policy kinds present but not enforced, if any.
    #[must_use]
    pub fn incomplete_summary(&self) -> Option<String> {
        if self.ignored_policy_kinds.is_empty() {
            return None;
        }
        let kinds: Vec<String> = self.ignored_policy_kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        Some(format!(
            "INCOMPLETE: the input holds policies of kinds Palisade does not evaluate ({}); \
             connections they select may be allowed or denied differently than shown",
            kinds.join(", ")
        ))
    }

    /// Takes one converted object: rejected with its errors, or kept unless
    /// an object of the same key came first.
    fn absorb(&mut self, file: &str, mut out: Outcome, strict: bool) {
        if let Some(kind) = out.skipped {
            if out.creates_pods {
                *self.pod_creating_kinds.entry(kind.clone()).or_default() += 1;
            }
            *self.skipped.entry(kind).or_default() += 1;
            return;
        }
        if let Some(policy) = out.ignored_policy {
            *self.ignored_policy_kinds.entry(policy.kind.clone()).or_default() += 1;
            self.ignored_policies.push(policy);
            return;
        }
        let invalid = |field: String, message: String, out: &Outcome| LoadError::Invalid {
            file: file.into(),
            object: out.object(),
            key: out.key.clone(),
            field,
            message,
        };
        for field in std::mem::take(&mut out.unknown) {
            let e = invalid(field, UNKNOWN_FIELD.to_string(), &out);
            if strict {
                self.errors.push(e);
                out.kept = None;
            } else {
                self.warnings.push(e);
            }
        }
        for e in std::mem::take(&mut out.errors) {
            self.errors.push(invalid(e.field, e.message, &out));
        }
        match out.kept {
            None => {}
            Some(Kept::Template(pod)) => self.templates.push((pod, file.to_string())),
            Some(Kept::Namespace(ns)) => {
                let key = out.key.unwrap_or_else(|| ObjectKey::namespace(&ns.name));
                self.keep(file, None, key, ns, |l, v| l.namespaces.push(v));
            }
            Some(Kept::Pod(pod, owners)) => {
                for (kind, name) in owners {
                    self.owners.push((pod.namespace.clone(), kind, name));
                }
                let key = out.key.unwrap_or_else(|| ObjectKey::pod(&pod.namespace, &pod.name));
                self.keep(file, None, key, pod, |l, v| l.pods.push(v));
            }
            Some(Kept::Policy(p)) => {
                let key = out.key.unwrap_or_else(|| ObjectKey::policy(&p.namespace, &p.name));
                if !out.lint_ignore.is_empty() && !self.origins.contains_key(&key) {
                    self.lint_ignore.insert(key.clone(), out.lint_ignore);
                }
                self.keep(file, None, key, p, |l, v| {
                    l.staged += usize::from(v.enforcement == Enforcement::Audit);
                    l.policies.push(v);
                });
            }
            Some(Kept::ClusterPolicy(p)) => {
                let key = out.key.unwrap_or_else(|| ObjectKey::cluster_policy(p.kind, &p.name));
                if !out.lint_ignore.is_empty() && !self.origins.contains_key(&key) {
                    self.lint_ignore.insert(key.clone(), out.lint_ignore);
                }
                self.keep(file, None, key, p, |l, v| l.cluster_policies.push(v));
            }
            Some(Kept::Node(node)) => {
                let key = out.key.unwrap_or_else(|| ObjectKey::node(&node.name));
                self.keep(file, None, key, node, |l, v| l.nodes.push(v));
            }
        }
    }

    /// Keeps `value` unless an object with its key came first; `object`
    /// names it in that error when its key does not (a workload's pod).
    fn keep<T>(
        &mut self,
        file: &str,
        object: Option<&str>,
        key: ObjectKey,
        value: T,
        push: impl FnOnce(&mut Loaded, T),
    ) {
        if let Some(first) = self.origins.get(&key) {
            let kind = key.kind;
            self.errors.push(LoadError::Invalid {
                file: file.into(),
                object: object.map_or_else(|| key.to_string(), str::to_string),
                key: Some(key),
                field: "metadata.name".into(),
                message: format!("duplicate {kind}: already defined in {first}; this copy is ignored"),
            });
            return;
        }
        let file = match &self.current_file {
            Some(current) if **current == *file => Arc::clone(current),
            _ => {
                let shared: Arc<str> = Arc::from(file);
                self.current_file = Some(Arc::clone(&shared));
                shared
            }
        };
        self.origins.insert(key, file);
        push(self, value);
    }
}

/// Builds an index. Cluster policies go in before pods: each pod is then
/// linked to those whose subject selects it in one pass over them (a
/// cluster policy added to a populated index re-tests every pod instead).
fn cluster_index(
    namespaces: Vec<Namespace>,
    nodes: Vec<Node>,
    cluster_policies: Vec<ClusterPolicy>,
    pods: Vec<Pod>,
    policies: Vec<NetworkPolicy>,
) -> ClusterIndex {
    let mut index = ClusterIndex::new();
    index.reserve(namespaces.len(), pods.len(), policies.len());
    build::apply_in_order(&mut index, namespaces, nodes, cluster_policies, pods, policies, drop);
    index
}

/// The message of an unknown field.
pub const UNKNOWN_FIELD: &str =
    "unknown field: the API server drops it (or rejects the object under strict field validation; here: --strict)";

/// Loads `inputs`; objects without a namespace go to `default_namespace`.
#[must_use]
pub fn load(inputs: &[Input], default_namespace: &str) -> Loaded {
    load_with(inputs, &LoadOptions::new(default_namespace))
}

/// Loads `inputs` with `options`. Files are split into independent pieces
/// (documents, List items) which convert in parallel and are then taken in
/// input order, so the result does not depend on the number of threads.
#[must_use]
pub fn load_with(inputs: &[Input], options: &LoadOptions) -> Loaded {
    let mut loaded = Loaded::for_build(options.build);
    let texts = documents::read_inputs(inputs, &mut loaded.errors);
    let files: Vec<(&str, &str)> = texts.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    add_texts(&mut loaded, &files, options);
    finish(&mut loaded);
    loaded
}

/// Loads texts already read, each named by where it came from (pages of
/// an API server's lists, for example), with `options`.
#[must_use]
pub fn load_texts(texts: &[(&str, &str)], options: &LoadOptions) -> Loaded {
    let mut loaded = Loaded::for_build(options.build);
    add_texts(&mut loaded, texts, options);
    finish(&mut loaded);
    loaded
}

/// Loads one text as if read from `file` (for tests and fuzzing).
#[must_use]
pub fn load_str(file: &str, text: &str, default_namespace: &str) -> Loaded {
    load_str_with(file, text, &LoadOptions::new(default_namespace))
}

/// [`load_str`] with `options`.
#[must_use]
pub fn load_str_with(file: &str, text: &str, options: &LoadOptions) -> Loaded {
    let mut loaded = Loaded::for_build(options.build);
    add_texts(&mut loaded, &[(file, text)], options);
    finish(&mut loaded);
    loaded
}

/// What a piece turned into, in order.
#[allow(
    clippy::large_enum_variant,
    reason = "an object is the common case; boxing it costs a cross-thread free per object (see `Events`)"
)]
enum Event {
    Error(LoadError),
    /// A syntax error: nothing after it in its file is read.
    Syntax(LoadError),
    Object(Outcome),
}

/// A piece's events: almost always one object, held without allocating.
/// The loader takes them on one thread while others still convert; every
/// allocation a conversion makes and that thread frees is a free into the
/// converting thread's heap under its lock (with one `Vec` and one `Box`
/// per object, taking the results of L took 0.88 s instead of 0.16 s).
#[allow(
    clippy::large_enum_variant,
    reason = "an object is the common case; boxing it costs a cross-thread free per object (see `Events`)"
)]
enum Events {
    One(Outcome),
    Many(Vec<Event>),
}

impl IntoIterator for Events {
    type Item = Event;
    type IntoIter = EventsIter;

    fn into_iter(self) -> EventsIter {
        match self {
            Events::One(o) => EventsIter::One(Some(o)),
            Events::Many(v) => EventsIter::Many(v.into_iter()),
        }
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "an object is the common case; boxing it costs a cross-thread free per object (see `Events`)"
)]
enum EventsIter {
    One(Option<Outcome>),
    Many(std::vec::IntoIter<Event>),
}

impl Iterator for EventsIter {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        match self {
            EventsIter::One(o) => o.take().map(Event::Object),
            EventsIter::Many(v) => v.next(),
        }
    }
}

fn add_texts<'f>(loaded: &mut Loaded, files: &[(&'f str, &'f str)], options: &LoadOptions) {
    loaded.files += files.len();
    let mut stopped = vec![false; files.len()];
    // Cut on this thread, converted meanwhile on the others, taken here in
    // input order once everything is cut.
    let cut = |emit: &mut dyn FnMut((usize, Piece<'f>))| {
        for (i, (file, text)) in files.iter().enumerate() {
            let text = documents::without_bom(text);
            if pieces::is_json(text) {
                pieces::stream_json(file, text, &mut |piece| emit((i, piece)));
            } else {
                pieces::cut_yaml(text, &mut |piece| emit((i, piece)));
            }
        }
    };
    let convert = |(i, piece): &(usize, Piece<'f>)| {
        let events = if piece.retracted() {
            Events::Many(Vec::new())
        } else {
            piece_events(files[*i].0, piece, &options.default_namespace)
        };
        (*i, piece.speculation(), events)
    };
    parallel::map_streamed(cut, convert, |(i, speculation, events)| {
        // The items of what turned out not to be a List, cut again.
        if speculation.is_some_and(|s| s.retracted()) {
            return;
        }
        for event in events {
            if stopped[i] {
                break;
            }
            match event {
                Event::Error(e) => loaded.errors.push(e),
                Event::Syntax(e) => {
                    loaded.errors.push(e);
                    stopped[i] = true;
                }
                Event::Object(outcome) => loaded.absorb(files[i].0, outcome, options.strict),
            }
        }
        loaded.feed_index();
    });
}

/// Converts one piece: its objects (Lists flattened), in order.
fn piece_events(file: &str, piece: &Piece<'_>, default_namespace: &str) -> Events {
    let mut errors = Vec::new();
    let (mut first, mut more) = (None, Vec::new());
    let syntax = pieces::piece_objects(file, piece, &mut errors, &mut |raw, head| {
        let outcome = convert::convert(raw, &head, default_namespace);
        if first.is_none() {
            first = Some(outcome);
        } else {
            more.push(outcome);
        }
    });
    if errors.is_empty()
        && more.is_empty()
        && syntax.is_none()
        && let Some(one) = first.take()
    {
        return Events::One(one);
    }
    // Structure errors and objects keep their relative order only within
    // each kind; both are reported, which is what matters.
    let mut events: Vec<Event> = errors.into_iter().map(Event::Error).collect();
    events.extend(first.into_iter().chain(more).map(Event::Object));
    events.extend(syntax.map(Event::Syntax));
    Events::Many(events)
}

/// One object as the Kubernetes API serves it, converted.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiObject {
    /// A Namespace.
    Namespace(Namespace),
    /// A Pod (never a workload template).
    Pod(Pod),
    /// A NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
    /// A ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy.
    ClusterPolicy(ClusterPolicy),
    /// A Node.
    Node(Node),
}

/// The kinds [`convert_api_object`] converts.
const API_KINDS: [&str; 7] = [
    "Namespace",
    "Pod",
    "NetworkPolicy",
    "ClusterNetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "Node",
];

/// Converts one object served by the Kubernetes API (a watcher's item) with
/// exactly the checks manifests get; `source` names where it came from in
/// errors (e.g. `api`). Kinds other than Namespace, Pod, NetworkPolicy, the
/// cluster policy kinds and Node are an error here. Unknown fields are not
/// reported (the API server dropped them already).
pub fn convert_api_object(source: &str, value: &Value) -> Result<ApiObject, Vec<LoadError>> {
    let text = value.to_string();
    let head: pieces::Head = serde_json::from_str(&text).unwrap_or_default();
    let (kind, name) = (head.kind().to_string(), head.name().to_string());
    if !API_KINDS.contains(&kind.as_str()) {
        let namespace = head.namespace().unwrap_or_default();
        return Err(vec![LoadError::Invalid {
            file: source.into(),
            object: format!("{kind} {namespace}/{name}"),
            key: None,
            field: "kind".into(),
            message: format!("is not one of {}", API_KINDS.join(", ")),
        }]);
    }
    let mut out = convert::convert(&text, &head, "");
    out.unknown.clear();
    let mut loaded = Loaded::default();
    loaded.absorb(source, out, false);
    if !loaded.errors.is_empty() {
        return Err(loaded.errors);
    }
    loaded
        .namespaces
        .pop()
        .map(ApiObject::Namespace)
        .or_else(|| loaded.pods.pop().map(ApiObject::Pod))
        .or_else(|| loaded.policies.pop().map(ApiObject::NetworkPolicy))
        .or_else(|| loaded.cluster_policies.pop().map(ApiObject::ClusterPolicy))
        .or_else(|| loaded.nodes.pop().map(ApiObject::Node))
        .ok_or_else(|| {
            vec![LoadError::Read { file: source.into(), message: format!("{kind} {name}: nothing converted") }]
        })
}

/// Whether a live pod's owner stands for the workload `kind/name`.
fn owned_by(owner_kind: &str, owner_name: &str, kind: &str, name: &str) -> bool {
    match kind {
        // Deployment → ReplicaSet `<name>-<hash>`; CronJob → Job `<name>-<time>`.
        "Deployment" => owner_kind == "ReplicaSet" && owner_name.strip_prefix(name).is_some_and(|r| r.starts_with('-')),
        "CronJob" => owner_kind == "Job" && owner_name.strip_prefix(name).is_some_and(|r| r.starts_with('-')),
        _ => owner_kind == kind && owner_name == name,
    }
}

/// Adds workload templates that no live pod already stands for.
fn finish(loaded: &mut Loaded) {
    for (pod, file) in std::mem::take(&mut loaded.templates) {
        let (kind, name) = pod.workload.as_deref().and_then(|w| w.split_once('/')).unwrap_or_default();
        let live = loaded.owners.iter().any(|(ns, ok, on)| *ns == pod.namespace && owned_by(ok, on, kind, name));
        if live {
            *loaded.skipped.entry(format!("{kind} (live pods present)")).or_default() += 1;
            continue;
        }
        let object = format!("{kind} {}/{}", pod.namespace, pod.name);
        let key = ObjectKey::new(ObjectKind::Pod, &pod.namespace, &pod.name);
        loaded.keep(&file, Some(&object), key, pod, |l, v| l.pods.push(v));
    }
    loaded.feed_index();
}

/// An object as read, before conversion: for tools that rewrite manifests
/// (the lab assigns pod addresses and writes them back).
#[derive(Clone, Debug, PartialEq)]
pub struct RawObject {
    /// The file it came from.
    pub file: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, or the default namespace ("" for Namespaces).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The whole document, with `metadata.namespace` filled in.
    pub value: Value,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn raw_object(file: &str, mut value: Value, default_namespace: &str) -> RawObject {
    let kind = str_at(&value, &["kind"]).unwrap_or_default().to_string();
    let name = str_at(&value, &["metadata", "name"]).unwrap_or_default().to_string();
    let namespace = if kind == "Namespace" {
        String::new()
    } else {
        let ns = str_at(&value, &["metadata", "namespace"]).unwrap_or(default_namespace).to_string();
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        ns
    };
    RawObject { file: file.to_string(), kind, namespace, name, value }
}

/// Reads `inputs` into raw objects (Lists flattened). Syntax and read errors
/// are returned; objects are not validated here (use [`load`] for that).
#[must_use]
pub fn raw_objects(inputs: &[Input], default_namespace: &str) -> (Vec<RawObject>, Vec<LoadError>) {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (file, text) in documents::read_inputs(inputs, &mut errors) {
        let text = documents::without_bom(&text);
        let found = if pieces::is_json(text) { pieces::json_pieces(&file, text) } else { pieces::yaml_pieces(text) };
        for piece in found {
            let syntax = pieces::piece_objects(&file, &piece, &mut errors, &mut |raw, _| {
                if let Ok(value) = serde_json::from_str(raw) {
                    out.push(raw_object(&file, value, default_namespace));
                }
            });
            if let Some(e) = syntax {
                errors.push(e);
                break;
            }
        }
    }
    (out, errors)
}
