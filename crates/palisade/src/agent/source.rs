//! The manifests-directory source: turns the files of a directory into a
//! stream of object changes, keeping the last good version of anything that
//! became invalid.
//!
//! The Kubernetes API source produces the same [`Change`]s, so the index and
//! the reconcile path do not know where objects come from.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use palisade_manifests::{LoadError, load_str, manifest_files};
use palisade_policy::{ClusterIndex, Namespace, NetworkPolicy, Pod};

/// An object the index holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A namespace.
    Namespace(Namespace),
    /// A pod.
    Pod(Pod),
    /// A policy.
    Policy(NetworkPolicy),
}

/// `(kind, namespace, name)`.
pub type Key = (&'static str, String, String);

impl Object {
    /// The object's key.
    #[must_use]
    pub fn key(&self) -> Key {
        match self {
            Object::Namespace(n) => ("Namespace", String::new(), n.name.clone()),
            Object::Pod(p) => ("Pod", p.namespace.clone(), p.name.clone()),
            Object::Policy(p) => ("NetworkPolicy", p.namespace.clone(), p.name.clone()),
        }
    }
}

/// One change to apply to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add or replace an object.
    Apply(Object),
    /// Remove the object with this key.
    Delete(Key),
}

/// Applies `changes` to `index`; returns whether anything changed.
pub fn apply_changes(index: &mut ClusterIndex, changes: Vec<Change>) -> bool {
    let mut any = false;
    for change in changes {
        any |= match change {
            Change::Apply(Object::Namespace(n)) => index.apply_namespace(n),
            Change::Apply(Object::Pod(p)) => index.apply_pod(p),
            Change::Apply(Object::Policy(p)) => index.apply_policy(p),
            Change::Delete(("Namespace", _, name)) => index.delete_namespace(&name),
            Change::Delete(("Pod", ns, name)) => index.delete_pod(&ns, &name),
            Change::Delete((_, ns, name)) => index.delete_policy(&ns, &name),
        };
    }
    any
}

#[derive(Debug, Default)]
struct FileState {
    text: String,
    objects: BTreeMap<Key, Object>,
}

/// A directory of manifests, scanned on demand.
#[derive(Debug)]
pub struct ManifestSource {
    dir: PathBuf,
    default_namespace: String,
    files: BTreeMap<PathBuf, FileState>,
    current: BTreeMap<Key, Object>,
    digest: u64,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Changes since the previous scan.
    pub changes: Vec<Change>,
    /// Problems in the files read (the affected objects keep their last good state).
    pub errors: Vec<LoadError>,
    /// Files read because they changed.
    pub files_read: usize,
}

/// FNV-1a over the relative paths and contents of manifest files, in path
/// order: what `lab` compares to know the agent enforces a given directory.
#[must_use]
pub fn digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in files {
        for b in name.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The digest of a directory's manifest files as they are on disk now.
#[must_use]
pub fn dir_digest(dir: &Path) -> u64 {
    let paths = manifest_files(dir);
    let texts: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| Some((p.strip_prefix(dir).ok()?.display().to_string(), fs::read_to_string(p).ok()?)))
        .collect();
    digest(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())))
}

impl ManifestSource {
    /// A source over `dir`; nothing is read until [`ManifestSource::scan`].
    #[must_use]
    pub fn new(dir: &Path, default_namespace: &str) -> Self {
        ManifestSource {
            dir: dir.to_path_buf(),
            default_namespace: default_namespace.to_string(),
            files: BTreeMap::new(),
            current: BTreeMap::new(),
            digest: 0,
        }
    }

    /// Digest of the files as last scanned.
    #[must_use]
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Re-reads what changed and returns the object changes.
    pub fn scan(&mut self) -> Scan {
        let mut scan = Scan::default();
        let paths = manifest_files(&self.dir);
        self.files.retain(|p, _| paths.contains(p));
        for path in &paths {
            let Ok(text) = fs::read_to_string(path) else { continue };
            if self.files.get(path).is_some_and(|f| f.text == text) {
                continue;
            }
            scan.files_read += 1;
            let name = path.display().to_string();
            let loaded = load_str(&name, &text, &self.default_namespace);
            let previous = self.files.remove(path).unwrap_or_default();
            let mut objects: BTreeMap<Key, Object> = BTreeMap::new();
            let fresh = loaded
                .namespaces
                .into_iter()
                .map(Object::Namespace)
                .chain(loaded.pods.into_iter().map(Object::Pod))
                .chain(loaded.policies.into_iter().map(Object::Policy));
            for object in fresh {
                objects.insert(object.key(), object);
            }
            let broken_file =
                loaded.errors.iter().any(|e| matches!(e, LoadError::Syntax { .. } | LoadError::Read { .. }));
            if broken_file {
                // A file that no longer parses keeps everything it had.
                objects = previous.objects.clone();
            } else {
                // An invalid object keeps its last good version from this file.
                for e in &loaded.errors {
                    if let LoadError::Invalid { object, .. } = e {
                        for (key, old) in &previous.objects {
                            if object_label(key) == *object {
                                objects.entry(key.clone()).or_insert_with(|| old.clone());
                            }
                        }
                    }
                }
            }
            scan.errors.extend(loaded.errors);
            self.files.insert(path.clone(), FileState { text, objects });
        }
        self.digest = digest(
            self.files.iter().filter_map(|(p, f)| Some((p.strip_prefix(&self.dir).ok()?.to_str()?, f.text.as_str()))),
        );
        let mut desired: BTreeMap<Key, Object> = BTreeMap::new();
        for state in self.files.values() {
            for (key, object) in &state.objects {
                desired.entry(key.clone()).or_insert_with(|| object.clone());
            }
        }
        for (key, object) in &desired {
            if self.current.get(key) != Some(object) {
                scan.changes.push(Change::Apply(object.clone()));
            }
        }
        for key in self.current.keys() {
            if !desired.contains_key(key) {
                scan.changes.push(Change::Delete(key.clone()));
            }
        }
        // Namespaces first on apply, policies and pods first on delete.
        scan.changes.sort_by_key(|c| match c {
            Change::Apply(Object::Namespace(_)) => 0,
            Change::Apply(_) => 1,
            Change::Delete(("Namespace", ..)) => 3,
            Change::Delete(_) => 2,
        });
        self.current = desired;
        scan
    }
}

/// `Kind namespace/name` as load errors name objects.
fn object_label(key: &Key) -> String {
    if key.0 == "Namespace" { format!("Namespace {}", key.2) } else { format!("{} {}/{}", key.0, key.1, key.2) }
}
