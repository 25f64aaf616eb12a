//! Loading cluster state from manifests: files, directories, stdin;
//! multi-document YAML, JSON, and `kind: List`.
//!
//! ```text
//! inputs -> documents (YAML/JSON, line:column on syntax errors)
//!        -> objects by kind (List items flattened; other kinds counted and skipped)
//!        -> k8s-openapi types (field path on type errors)
//!        -> validated palisade-policy model (file, object, field on every error)
//! ```
//!
//! An invalid object is rejected whole; everything else still loads.

mod documents;
pub mod encode;
mod error;
mod pod;
pub use pod::HOST_NETWORK;
mod policy;
mod selector;
mod walk;

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core, networking::v1 as net};
use palisade_policy::validation::{check_dns_label, check_dns_subdomain};
use palisade_policy::{ClusterIndex, Namespace, NetworkPolicy, ObjectKey, ObjectKind, Pod};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use documents::{Input, manifest_files};
use error::FieldErrors;
pub use error::{FieldError, LoadError};
pub use walk::{Walk, WalkLimits};

/// Everything loaded from a set of inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Declared namespaces.
    pub namespaces: Vec<Namespace>,
    /// Pods, and workload templates as planned pods.
    pub pods: Vec<Pod>,
    /// NetworkPolicies.
    pub policies: Vec<NetworkPolicy>,
    /// Everything that could not be used.
    pub errors: Vec<LoadError>,
    /// Objects of kinds Palisade does not use, counted by kind.
    pub skipped: BTreeMap<String, usize>,
    /// Files read.
    pub files: usize,
    /// Where each object came from, to report duplicates.
    origins: BTreeMap<ObjectKey, String>,
    /// `(namespace, owner kind, owner name)` of live pods, to drop the
    /// workload templates that live pods already stand for.
    owners: Vec<(String, String, String)>,
    /// Workload pods, merged in at the end.
    templates: Vec<(Pod, String)>,
}

impl Loaded {
    /// Builds the cluster index from what loaded.
    #[must_use]
    pub fn index(&self) -> ClusterIndex {
        ClusterIndex::from_objects(self.namespaces.clone(), self.pods.clone(), self.policies.clone())
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
}

/// Loads `inputs`; objects without a namespace go to `default_namespace`.
#[must_use]
pub fn load(inputs: &[Input], default_namespace: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let texts = documents::read_inputs(inputs, &mut loaded.errors);
    for (file, text) in &texts {
        add_text(&mut loaded, file, text, default_namespace);
    }
    finish(&mut loaded);
    loaded
}

/// Loads one text as if read from `file` (for tests and fuzzing).
#[must_use]
pub fn load_str(file: &str, text: &str, default_namespace: &str) -> Loaded {
    let mut loaded = Loaded::default();
    add_text(&mut loaded, file, text, default_namespace);
    finish(&mut loaded);
    loaded
}

fn add_text(loaded: &mut Loaded, file: &str, text: &str, default_namespace: &str) {
    loaded.files += 1;
    let mut errors = Vec::new();
    documents::each_document(file, text, &mut errors, |doc| add_value(loaded, file, doc, default_namespace));
    loaded.errors.extend(errors);
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
}

/// Converts one object served by the Kubernetes API (a watcher's item) with
/// exactly the checks manifests get; `source` names where it came from in
/// errors (e.g. `api`). Kinds other than Namespace, Pod and NetworkPolicy
/// are an error here.
pub fn convert_api_object(source: &str, value: Value) -> Result<ApiObject, Vec<LoadError>> {
    let kind = str_at(&value, &["kind"]).unwrap_or_default().to_string();
    let name = str_at(&value, &["metadata", "name"]).unwrap_or_default().to_string();
    let namespace = str_at(&value, &["metadata", "namespace"]).unwrap_or_default().to_string();
    let mut loaded = Loaded::default();
    match kind.as_str() {
        "Namespace" | "Pod" | "NetworkPolicy" => add_object(&mut loaded, source, value, &kind, &name, &namespace),
        _ => {
            return Err(vec![LoadError::Invalid {
                file: source.into(),
                object: format!("{kind} {namespace}/{name}"),
                key: None,
                field: "kind".into(),
                message: "is not Namespace, Pod or NetworkPolicy".into(),
            }]);
        }
    }
    if !loaded.errors.is_empty() {
        return Err(loaded.errors);
    }
    loaded
        .namespaces
        .pop()
        .map(ApiObject::Namespace)
        .or_else(|| loaded.pods.pop().map(ApiObject::Pod))
        .or_else(|| loaded.policies.pop().map(ApiObject::NetworkPolicy))
        .ok_or_else(|| {
            vec![LoadError::Read { file: source.into(), message: format!("{kind} {name}: nothing converted") }]
        })
}

/// Lists nested deeper than this are rejected (no manifest nests Lists).
const MAX_LIST_DEPTH: usize = 4;

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The objects of one document: a `List` (or typed list such as
/// `PodList`) is flattened, nested Lists too, down to [`MAX_LIST_DEPTH`].
/// Documents that are not objects, objects without a kind and Lists whose
/// items are not a list or nest too deeply are errors naming the file.
/// The one flattener of the loader ([`load`]) and of [`raw_objects`].
fn flatten(file: &str, value: Value, depth: usize, errors: &mut Vec<LoadError>, out: &mut dyn FnMut(Value)) {
    let kind = str_at(&value, &["kind"]).unwrap_or_default().to_string();
    let invalid = |object: String, field: &str, message: &str| LoadError::Invalid {
        file: file.into(),
        object,
        key: None,
        field: field.into(),
        message: message.into(),
    };
    if !value.is_object() {
        errors.push(invalid("document".into(), "(root)", "is not an object"));
        return;
    }
    if kind.is_empty() {
        let name = str_at(&value, &["metadata", "name"]).unwrap_or_default();
        errors.push(invalid(format!("object {name:?}"), "kind", "required"));
        return;
    }
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        if depth >= MAX_LIST_DEPTH {
            errors.push(invalid(kind, "items", "Lists nested too deeply"));
            return;
        }
        let items = match value {
            Value::Object(mut map) => map.remove("items"),
            _ => None,
        };
        match items {
            Some(Value::Array(items)) => {
                for item in items {
                    flatten(file, item, depth + 1, errors, out);
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => errors.push(invalid(kind, "items", "must be a list")),
        }
        return;
    }
    out(value);
}

fn add_value(loaded: &mut Loaded, file: &str, value: Value, default_namespace: &str) {
    let mut objects = Vec::new();
    flatten(file, value, 0, &mut loaded.errors, &mut |object| objects.push(object));
    for value in objects {
        let kind = str_at(&value, &["kind"]).unwrap_or_default().to_string();
        let name = str_at(&value, &["metadata", "name"]).unwrap_or_default().to_string();
        let namespace = str_at(&value, &["metadata", "namespace"]).unwrap_or(default_namespace).to_string();
        add_object(loaded, file, value, &kind, &name, &namespace);
    }
}

/// Converts one object (not a List) by its apiVersion and kind.
fn add_object(loaded: &mut Loaded, file: &str, value: Value, kind: &str, name: &str, namespace: &str) {
    let (kind, name, namespace) = (kind.to_string(), name.to_string(), namespace.to_string());
    let api_version = str_at(&value, &["apiVersion"]).unwrap_or_default().to_string();
    let cluster_scoped = kind == "Namespace";
    let object = if cluster_scoped { format!("{kind} {name}") } else { format!("{kind} {namespace}/{name}") };
    let mut errors = FieldErrors::default();
    if name.is_empty() {
        errors.push("metadata.name", "required");
    } else if cluster_scoped {
        errors.check(|| "metadata.name".into(), check_dns_label(&name));
    } else {
        errors.check(|| "metadata.name".into(), check_dns_subdomain(&name));
    }
    if !cluster_scoped {
        errors.check(|| "metadata.namespace".into(), check_dns_label(&namespace));
    }
    let key = match kind.as_str() {
        "Namespace" => Some(ObjectKey::namespace(&name)),
        "Pod" => Some(ObjectKey::pod(&namespace, &name)),
        "NetworkPolicy" => Some(ObjectKey::policy(&namespace, &name)),
        _ => None,
    };
    let ctx = Ctx { file, object: &object, key, namespace: &namespace, name: &name };
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            if let Some(ns) = typed::<core::Namespace>(loaded, &ctx, value, errors.0) {
                let mut errors = FieldErrors::default();
                let labels = pod::namespace_labels(&ns, &mut errors);
                ctx.accept(loaded, ObjectKind::Namespace, errors, Namespace { name: name.clone(), labels }, |l, v| {
                    l.namespaces.push(v);
                });
            }
        }
        ("v1", "Pod") => {
            if let Some(p) = typed::<core::Pod>(loaded, &ctx, value, errors.0) {
                for owner in p.metadata.owner_references.iter().flatten() {
                    loaded.owners.push((namespace.clone(), owner.kind.clone(), owner.name.clone()));
                }
                let mut errors = FieldErrors::default();
                let converted = pod::pod(&p, &namespace, &name, &mut errors);
                ctx.accept(loaded, ObjectKind::Pod, errors, converted, |l, v| l.pods.push(v));
            }
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            if let Some(p) = typed::<net::NetworkPolicy>(loaded, &ctx, value, errors.0) {
                let mut errors = FieldErrors::default();
                let converted = policy::convert(p.spec.as_ref(), &namespace, &name, &mut errors);
                ctx.accept(loaded, ObjectKind::NetworkPolicy, errors, converted, |l, v| l.policies.push(v));
            }
        }
        ("apps/v1", "Deployment") => workload::<apps::Deployment>(loaded, &ctx, value, errors, |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        ("apps/v1", "StatefulSet") => workload::<apps::StatefulSet>(loaded, &ctx, value, errors, |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        ("apps/v1", "DaemonSet") => workload::<apps::DaemonSet>(loaded, &ctx, value, errors, |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        ("apps/v1", "ReplicaSet") => workload::<apps::ReplicaSet>(loaded, &ctx, value, errors, |d| {
            d.spec.as_ref().and_then(|s| s.template.as_ref()).map(|t| (t, "spec.template"))
        }),
        ("batch/v1", "Job") => workload::<batch::Job>(loaded, &ctx, value, errors, |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        ("batch/v1", "CronJob") => workload::<batch::CronJob>(loaded, &ctx, value, errors, |d| {
            d.spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .map(|s| (&s.template, "spec.jobTemplate.spec.template"))
        }),
        (
            _,
            "Namespace" | "Pod" | "NetworkPolicy" | "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job"
            | "CronJob",
        ) => {
            let message = format!("{api_version:?} is not a supported version of {kind}");
            ctx.reject(loaded, vec![FieldError::new("apiVersion", message)]);
        }
        _ => *loaded.skipped.entry(kind).or_default() += 1,
    }
}

/// The object being converted.
struct Ctx<'a> {
    file: &'a str,
    object: &'a str,
    key: Option<ObjectKey>,
    namespace: &'a str,
    name: &'a str,
}

impl Ctx<'_> {
    fn reject(&self, loaded: &mut Loaded, errors: Vec<FieldError>) {
        for e in errors {
            loaded.errors.push(LoadError::Invalid {
                file: self.file.into(),
                object: self.object.into(),
                key: self.key.clone(),
                field: e.field,
                message: e.message,
            });
        }
    }

    /// Keeps `value` if it had no errors and is not a duplicate.
    fn accept<T>(
        &self,
        loaded: &mut Loaded,
        kind: ObjectKind,
        errors: FieldErrors,
        value: T,
        keep: impl FnOnce(&mut Loaded, T),
    ) {
        if !errors.0.is_empty() {
            return self.reject(loaded, errors.0);
        }
        let key = ObjectKey::new(kind, self.namespace, self.name);
        if let Some(first) = loaded.origins.get(&key) {
            let message = format!("duplicate {kind}: already defined in {first}; this copy is ignored");
            return self.reject(loaded, vec![FieldError::new("metadata.name", message)]);
        }
        loaded.origins.insert(key, self.file.to_string());
        keep(loaded, value);
    }
}

/// Deserializes into a k8s-openapi type; on failure records the field path.
fn typed<T: DeserializeOwned>(
    loaded: &mut Loaded,
    ctx: &Ctx<'_>,
    value: Value,
    mut errors: Vec<FieldError>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) if errors.is_empty() => Some(v),
        Ok(_) => {
            ctx.reject(loaded, errors);
            None
        }
        Err(e) => {
            let path = e.path().to_string();
            errors.push(FieldError::new(if path == "." { "(root)".into() } else { path }, e.inner()));
            ctx.reject(loaded, errors);
            None
        }
    }
}

fn workload<T: DeserializeOwned>(
    loaded: &mut Loaded,
    ctx: &Ctx<'_>,
    value: Value,
    errors: FieldErrors,
    template: impl Fn(&T) -> Option<(&core::PodTemplateSpec, &'static str)>,
) {
    let kind = ctx.object.split(' ').next().unwrap_or_default().to_string();
    let Some(object) = typed::<T>(loaded, ctx, value, errors.0) else { return };
    let Some((spec, field)) = template(&object) else {
        return ctx.reject(loaded, vec![FieldError::new("spec", "required: a workload needs a pod template")]);
    };
    let mut errors = FieldErrors::default();
    let pod = pod::template(spec, field, ctx.namespace, (&kind, ctx.name), &mut errors);
    if !errors.0.is_empty() {
        return ctx.reject(loaded, errors.0);
    }
    loaded.templates.push((pod, ctx.file.to_string()));
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
        let ctx =
            Ctx { file: &file, object: &object, key: None, namespace: &pod.namespace.clone(), name: &pod.name.clone() };
        ctx.accept(loaded, ObjectKind::Pod, FieldErrors::default(), pod, |l, v| l.pods.push(v));
    }
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
        for doc in documents::parse_documents(&file, &text, &mut errors) {
            flatten(&file, doc, 0, &mut errors, &mut |value| out.push(raw_object(&file, value, default_namespace)));
        }
    }
    (out, errors)
}
