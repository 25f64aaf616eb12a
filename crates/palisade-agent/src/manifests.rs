//! The manifests-directory source: turns the files of a directory into
//! batches of object changes, keeping the last good version of anything
//! that became invalid. [`ManifestsDir`] watches the directory with inotify
//! and feeds the driver; [`ManifestSource`] is the scanning itself.
//!
//! Nothing in the directory can wedge the agent: the walk reads each
//! directory once and is bounded in depth, file count and bytes
//! ([`WalkLimits::AGENT`]); a file that cannot be read, is not UTF-8, does
//! not parse, or became empty after holding objects (a writer truncated
//! it and has not finished) keeps its objects' last good state until it
//! parses again or is removed, and every such file, and everything the
//! walk refused, is logged and listed in the status. Writers should write
//! a temporary file in the directory (hidden, or not ending in `.yaml`,
//! `.yml` or `.json`) and rename it into place: the rename is atomic, so
//! the agent never reads half a file. Only each file's digest and its
//! converted objects are kept, never its text.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use palisade_manifests::{LoadError, WalkLimits, load_str, manifest_files};
use palisade_policy::ObjectKey;
use sha2::{Digest as _, Sha256};
use tracing::error;

use crate::Source;
use crate::change::{Change, Object};
use crate::driver::{Batch, Message};

#[derive(Debug, Default)]
struct FileState {
    /// [`file_hash`] of the contents last read.
    hash: Digest,
    /// The objects it defines (its last good ones when it is broken).
    objects: BTreeMap<ObjectKey, Arc<Object>>,
}

/// A directory of manifests, scanned on demand.
#[derive(Debug)]
pub struct ManifestSource {
    dir: PathBuf,
    default_namespace: String,
    files: BTreeMap<PathBuf, FileState>,
    /// Files that define each object, in path order (the first one wins).
    owners: BTreeMap<ObjectKey, BTreeSet<PathBuf>>,
    current: BTreeMap<ObjectKey, Arc<Object>>,
    digest: Digest,
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
    /// Bytes of the files read.
    pub bytes_read: u64,
}

/// A SHA-256 digest: collision-resistant, so equal digests mean equal
/// contents (a 64-bit hash would not: anyone who writes manifests could
/// make two directory states look alike).
pub type Digest = [u8; 32];

/// SHA-256 of one file's contents.
#[must_use]
pub fn file_hash(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// SHA-256 over the relative paths and [`file_hash`]es of manifest files,
/// in path order: what `lab` compares to know the agent enforces a given
/// directory.
#[must_use]
pub fn digest<'a>(files: impl IntoIterator<Item = (&'a str, Digest)>) -> Digest {
    let mut hasher = Sha256::new();
    for (name, hash) in files {
        // A name cannot hold a NUL: the pairs are unambiguous.
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(hash);
    }
    hasher.finalize().into()
}

/// A digest as lowercase hex (the status file's form).
#[must_use]
pub fn hex(digest: &Digest) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The digest of a directory's manifest files as they are on disk now
/// (those the agent's walk reads).
#[must_use]
pub fn dir_digest(dir: &Path) -> Digest {
    let walk = manifest_files(dir, WalkLimits::AGENT);
    let hashes: Vec<(String, Digest)> = walk
        .files
        .iter()
        .filter_map(|p| Some((p.strip_prefix(dir).ok()?.display().to_string(), file_hash(&fs::read(p).ok()?))))
        .collect();
    digest(hashes.iter().map(|(n, h)| (n.as_str(), *h)))
}

/// Whether `text` holds no document at all: only blank lines, comments
/// and document markers (what a truncated file being rewritten holds).
fn is_blank(text: &str) -> bool {
    text.lines().map(str::trim).all(|l| l.is_empty() || l.starts_with('#') || l == "---" || l == "...")
}

/// Why a file's new contents cannot replace its objects, if they cannot.
fn broken(loaded_errors: &[LoadError], blank: bool, had_objects: usize) -> Option<String> {
    if loaded_errors.iter().any(|e| matches!(e, LoadError::Syntax { .. } | LoadError::Read { .. })) {
        return Some(String::new());
    }
    (blank && had_objects > 0).then(|| {
        format!(
            "empty (truncated while being rewritten?): its {had_objects} objects stay as they were until it holds \
             objects again or is removed; write a temporary file and rename it into place"
        )
    })
}

impl ManifestSource {
    /// A source over `dir`; nothing is read until [`ManifestSource::scan`].
    #[must_use]
    pub fn new(dir: &Path, default_namespace: &str) -> Self {
        ManifestSource {
            dir: dir.to_path_buf(),
            default_namespace: default_namespace.to_string(),
            files: BTreeMap::new(),
            owners: BTreeMap::new(),
            current: BTreeMap::new(),
            digest: digest([]),
        }
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Digest of the files as last scanned.
    #[must_use]
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Re-reads what changed and returns the object changes.
    pub fn scan(&mut self) -> Scan {
        let mut scan = Scan::default();
        let walk = manifest_files(&self.dir, WalkLimits::AGENT);
        scan.errors.extend(walk.refused);
        let paths: BTreeSet<PathBuf> = walk.files.into_iter().collect();
        let mut touched: BTreeSet<ObjectKey> = BTreeSet::new();
        let gone: Vec<PathBuf> = self.files.keys().filter(|p| !paths.contains(*p)).cloned().collect();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                for key in state.objects.into_keys() {
                    self.disown(&key, &path);
                    touched.insert(key);
                }
            }
        }
        for path in &paths {
            self.read_file(path, &mut scan, &mut touched);
        }
        self.digest =
            digest(self.files.iter().filter_map(|(p, f)| Some((p.strip_prefix(&self.dir).ok()?.to_str()?, f.hash))));
        // Only objects of files that changed can change: the first file (in
        // path order) that defines an object decides its state.
        for key in touched {
            let desired = self
                .owners
                .get(&key)
                .and_then(|files| files.first())
                .and_then(|path| self.files.get(path))
                .and_then(|f| f.objects.get(&key));
            match desired {
                Some(object) if self.current.get(&key) != Some(object) => {
                    scan.changes.push(Change::Apply(Object::clone(object)));
                    self.current.insert(key, Arc::clone(object));
                }
                Some(_) => {}
                None => {
                    if self.current.remove(&key).is_some() {
                        scan.changes.push(Change::Delete(key));
                    }
                }
            }
        }
        // Namespaces first on apply, policies and pods first on delete.
        scan.changes.sort_by_key(|c| match c {
            Change::Apply(Object::Namespace(_)) => 0,
            Change::Apply(_) => 1,
            Change::Delete(_) | Change::Relisted(..) if c.kind() == palisade_policy::ObjectKind::Namespace => 3,
            Change::Delete(_) | Change::Relisted(..) => 2,
        });
        if scan.bytes_read >= crate::memory::LARGE_BYTES {
            crate::memory::trim();
        }
        scan
    }

    /// Reads `path` if its contents changed, recording its objects (or,
    /// when it is broken, keeping its last good ones) and the keys touched.
    fn read_file(&mut self, path: &Path, scan: &mut Scan, touched: &mut BTreeSet<ObjectKey>) {
        let name = path.display().to_string();
        let read = fs::read(path);
        let hash = read.as_ref().map(|bytes| file_hash(bytes)).ok();
        if hash.is_some() && self.files.get(path).map(|f| f.hash) == hash {
            return;
        }
        scan.files_read += 1;
        let previous = self.files.remove(path).unwrap_or_default();
        let text = read.map_err(|e| e.to_string()).and_then(|bytes| {
            scan.bytes_read += bytes.len() as u64;
            String::from_utf8(bytes).map_err(|e| format!("not UTF-8 (at byte {})", e.utf8_error().valid_up_to()))
        });
        let (mut loaded, blank) = match &text {
            Ok(text) => (load_str(&name, text, &self.default_namespace), is_blank(text)),
            Err(message) => {
                let mut loaded = palisade_manifests::Loaded::default();
                loaded.errors.push(LoadError::Read { file: name.clone(), message: message.clone() });
                (loaded, false)
            }
        };
        drop(text);
        let mut objects: BTreeMap<ObjectKey, Arc<Object>> = BTreeMap::new();
        for object in crate::change::take_loaded(&mut loaded) {
            objects.insert(object.key(), Arc::new(object));
        }
        let mut errors = loaded.errors;
        match broken(&errors, blank, previous.objects.len()) {
            Some(reason) => {
                // A file that cannot be read or parsed, or that was emptied,
                // keeps everything it had.
                if !reason.is_empty() {
                    errors.push(LoadError::Read { file: name, message: reason });
                }
                objects.clone_from(&previous.objects);
            }
            None => {
                // An invalid object keeps its last good version from this file.
                for e in &errors {
                    if let LoadError::Invalid { key: Some(key), .. } = e
                        && let Some(old) = previous.objects.get(key)
                    {
                        objects.entry(key.clone()).or_insert_with(|| Arc::clone(old));
                    }
                }
            }
        }
        scan.errors.extend(errors);
        for key in previous.objects.keys() {
            self.disown(key, path);
            touched.insert(key.clone());
        }
        for key in objects.keys() {
            self.owners.entry(key.clone()).or_default().insert(path.to_path_buf());
            touched.insert(key.clone());
        }
        let hash = hash.unwrap_or(previous.hash);
        self.files.insert(path.to_path_buf(), FileState { hash, objects });
    }

    fn disown(&mut self, key: &ObjectKey, path: &Path) {
        if let Some(files) = self.owners.get_mut(key) {
            files.remove(path);
            if files.is_empty() {
                self.owners.remove(key);
            }
        }
    }
}

/// The manifests directory as a [`Source`]: scans on inotify events, and
/// every `recheck` compares the directory's digest with what was read, so
/// an edit whose event was missed is still applied.
#[derive(Debug)]
pub struct ManifestsDir {
    source: ManifestSource,
    inotify: Inotify,
    recheck: Duration,
}

impl ManifestsDir {
    /// Watches `dir` (objects without a namespace go to `default_namespace`).
    pub fn new(dir: &Path, default_namespace: &str, recheck: Duration) -> std::io::Result<Self> {
        let inotify = Inotify::init()?;
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::CREATE;
        inotify.watches().add(dir, mask)?;
        Ok(ManifestsDir { source: ManifestSource::new(dir, default_namespace), inotify, recheck })
    }
}

/// How often a quiet source looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

impl Source for ManifestsDir {
    fn run(self: Box<Self>, driver: Sender<Message>, stop: Arc<AtomicBool>) {
        let ManifestsDir { mut source, mut inotify, recheck } = *self;
        let mut buffer = [0u8; 16 * 1024];
        let mut dirty = true; // the first scan lists the whole directory
        let mut last_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if dirty {
                dirty = false;
                let scan = source.scan();
                for e in &scan.errors {
                    error!(error = %e, "invalid manifest skipped; its last good state stays enforced");
                }
                let problems = if !scan.errors.is_empty() || scan.files_read > 0 {
                    Some(scan.errors.iter().map(ToString::to_string).collect())
                } else {
                    None
                };
                let batch =
                    Batch { changes: scan.changes, synced: true, revision: Some(hex(&source.digest())), problems };
                if driver.send(Message::Batch(batch)).is_err() {
                    return;
                }
            }
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(STOP_CHECK.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            if poll(&mut fds, timeout).unwrap_or(0) > 0 {
                // Drain this burst of events; one scan covers them all.
                while inotify.read_events(&mut buffer).is_ok_and(|mut e| e.next().is_some()) {}
                dirty = true;
            }
            if last_check.elapsed() >= recheck {
                last_check = Instant::now();
                // Files edited without an event (or missed) are caught here.
                dirty |= dir_digest(source.dir()) != source.digest();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, port: u16) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: x}}\n\
             spec: {{podSelector: {{}}, ingress: [{{ports: [{{port: {port}}}]}}]}}\n"
        )
    }

    fn port_of(change: &Change) -> Option<(String, String)> {
        match change {
            Change::Apply(Object::Policy(p)) => Some((p.name.clone(), format!("{:?}", p.ingress[0].ports[0].target))),
            Change::Delete(key) => Some((key.name.clone(), "deleted".into())),
            Change::Apply(_) | Change::Relisted(..) => None,
        }
    }

    fn changes(source: &mut ManifestSource) -> Vec<(String, String)> {
        source.scan().changes.iter().filter_map(port_of).collect()
    }

    use palisade_testkit::temp::TempDir;

    /// Issue #11: `ln -s . loop; ln -s . loop2` wedged the agent (2^32
    /// paths); now each directory is read once and the rest reported.
    #[test]
    fn a_looping_directory_is_read_once_and_what_was_refused_is_reported() {
        let temp = TempDir::new("source-loops");
        let dir = temp.path().to_path_buf();
        fs::write(dir.join("a.yaml"), policy("p", 80)).expect("write");
        std::os::unix::fs::symlink(".", dir.join("loop")).expect("symlink");
        std::os::unix::fs::symlink(".", dir.join("loop2")).expect("symlink");
        let mut source = ManifestSource::new(&dir, "default");
        let scan = source.scan();
        assert_eq!(scan.changes.len(), 1, "{:?}", scan.changes);
        let errors: Vec<String> = scan.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e.contains("loop") && e.contains("directory already read")), "{errors:?}");
    }

    /// Issue #11: a file truncated and rewritten slowly was applied as
    /// empty (its policy deleted), and a file that could not be read was
    /// skipped with no word. Both now keep the last good objects and say so.
    #[test]
    fn a_truncated_or_unreadable_file_keeps_its_objects_and_is_reported() {
        let temp = TempDir::new("source-broken");
        let dir = temp.path().to_path_buf();
        let file = dir.join("a.yaml");
        fs::write(&file, policy("p", 80)).expect("write");
        let mut source = ManifestSource::new(&dir, "default");
        assert_eq!(changes(&mut source).len(), 1);
        // Truncated (a writer that has not finished): nothing changes.
        fs::write(&file, "").expect("truncate");
        let scan = source.scan();
        assert!(scan.changes.is_empty(), "{:?}", scan.changes);
        assert!(scan.errors.iter().any(|e| e.to_string().contains("empty")), "{:?}", scan.errors);
        // Invalid UTF-8 appended to the file: nothing changes, and it is said.
        let mut bytes = policy("p", 81).into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        fs::write(&file, &bytes).expect("write");
        let scan = source.scan();
        assert!(scan.changes.is_empty(), "{:?}", scan.changes);
        assert!(scan.errors.iter().any(|e| e.to_string().contains("not UTF-8")), "{:?}", scan.errors);
        // A new file that cannot be read is reported too.
        fs::write(dir.join("b.yaml"), [0xc3, 0x28]).expect("write");
        let scan = source.scan();
        assert!(scan.errors.iter().any(|e| e.to_string().contains("b.yaml: not UTF-8")), "{:?}", scan.errors);
        // Written whole again: applied.
        fs::write(&file, policy("p", 82)).expect("write");
        assert_eq!(changes(&mut source), vec![("p".to_string(), "Range { start: 82, end: 82 }".to_string())]);
        // Removed: deleted.
        fs::remove_file(&file).expect("remove");
        assert_eq!(changes(&mut source), vec![("p".to_string(), "deleted".to_string())]);
        // A file that never held objects may be empty.
        fs::write(dir.join("c.yaml"), "# nothing yet\n---\n").expect("write");
        assert!(source.scan().errors.iter().all(|e| !e.to_string().contains("c.yaml")));
    }

    #[test]
    fn only_what_changed_is_reported_and_the_first_file_wins() {
        let temp = TempDir::new("source");
        let dir = temp.path().to_path_buf();
        fs::write(dir.join("a.yaml"), policy("p", 80)).expect("write");
        fs::write(dir.join("b.yaml"), policy("q", 81)).expect("write");
        let mut source = ManifestSource::new(&dir, "default");
        let first = changes(&mut source);
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(changes(&mut source).is_empty(), "nothing changed");
        assert_eq!(source.digest(), dir_digest(&dir), "digest of what was read equals the directory's");

        // A second definition of p in a later file does not win; removing the first does.
        fs::write(dir.join("c.yaml"), policy("p", 90)).expect("write");
        assert!(changes(&mut source).is_empty(), "the first file still defines p");
        fs::remove_file(dir.join("a.yaml")).expect("remove");
        assert_eq!(changes(&mut source), vec![("p".to_string(), "Range { start: 90, end: 90 }".to_string())]);
        // An invalid edit keeps the last good state; a valid one applies.
        fs::write(dir.join("b.yaml"), policy("q", 0)).expect("write");
        let scan = source.scan();
        assert!(scan.changes.is_empty() && !scan.errors.is_empty(), "{scan:?}");
        fs::write(dir.join("b.yaml"), policy("q", 82)).expect("write");
        assert_eq!(changes(&mut source), vec![("q".to_string(), "Range { start: 82, end: 82 }".to_string())]);
        fs::remove_file(dir.join("c.yaml")).expect("remove");
        assert_eq!(changes(&mut source), vec![("p".to_string(), "deleted".to_string())]);
        assert_eq!(source.digest(), dir_digest(&dir));
    }
}
