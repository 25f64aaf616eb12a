//! Finding manifest files under a directory, within bounds: each directory
//! is read at most once (by device and inode, so symlinks back up the tree
//! cannot make the walk exponential), and depth, file count and total size
//! are capped. What is refused is reported, never silently dropped.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use crate::error::LoadError;

/// Bounds of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkLimits {
    /// Directories nested deeper than this are not read.
    pub max_depth: usize,
    /// Manifest files beyond this many are not read.
    pub max_files: usize,
    /// Files that would bring the total size above this are not read.
    pub max_bytes: u64,
}

impl WalkLimits {
    /// What the agent reads from its manifests directory: a node agent's
    /// memory and CPU must stay bounded whatever is put there.
    pub const AGENT: WalkLimits = WalkLimits { max_depth: 16, max_files: 10_000, max_bytes: 256 << 20 };
    /// What the analyzer reads from the paths it is given (cluster dumps
    /// can be large; loops are still cut).
    pub const ANALYZER: WalkLimits = WalkLimits { max_depth: 32, max_files: 1_000_000, max_bytes: 16 << 30 };
}

/// What a walk found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// Manifest files (`.yaml`, `.yml`, `.json`; a path given explicitly
    /// whatever its name), in walk order: sorted within each directory.
    pub files: Vec<PathBuf>,
    /// What was not read, and why (each names the path).
    pub refused: Vec<LoadError>,
}

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

struct Walker {
    limits: WalkLimits,
    seen: HashSet<(u64, u64)>,
    bytes: u64,
    out: Walk,
    files_refused: bool,
}

impl Walker {
    fn refuse(&mut self, path: &Path, message: impl Into<String>) {
        self.out.refused.push(LoadError::Read { file: path.display().to_string(), message: message.into() });
    }

    fn visit(&mut self, path: &Path, depth: usize, explicit: bool) {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.refuse(path, e.to_string()),
        };
        if meta.is_file() {
            // A file named explicitly is read whatever its extension.
            if !(explicit || is_manifest(path)) {
                return;
            }
            if self.out.files.len() >= self.limits.max_files {
                if !self.files_refused {
                    self.files_refused = true;
                    let max = self.limits.max_files;
                    self.refuse(path, format!("more than {max} manifest files: this one and the rest were not read"));
                }
                return;
            }
            if self.bytes.saturating_add(meta.len()) > self.limits.max_bytes {
                let max = self.limits.max_bytes;
                return self.refuse(path, format!("not read: the files would exceed {max} bytes in all"));
            }
            self.bytes += meta.len();
            self.out.files.push(path.to_path_buf());
            return;
        }
        if explicit && (meta.file_type().is_fifo() || meta.file_type().is_char_device()) {
            // A pipe or terminal the user named (`-f /dev/stdin`, a shell's
            // `<(...)`): read like a file, within the size bound.
            self.out.files.push(path.to_path_buf());
            return;
        }
        if !meta.is_dir() {
            // Sockets, FIFOs, devices found in a directory: never read (a
            // FIFO would block).
            if explicit || is_manifest(path) {
                self.refuse(path, "not a regular file");
            }
            return;
        }
        if !self.seen.insert((meta.dev(), meta.ino())) {
            return self.refuse(path, "directory already read (a symlink loop, or another link to it): skipped");
        }
        if depth > self.limits.max_depth {
            let max = self.limits.max_depth;
            return self.refuse(path, format!("nested deeper than {max} directories: skipped"));
        }
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => return self.refuse(path, e.to_string()),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            let hidden = child.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
            if !hidden {
                self.visit(&child, depth + 1, false);
            }
        }
    }
}

/// Walks `path` (a file, or a directory searched recursively; hidden
/// entries skipped) within `limits`; `explicit` marks a path the user
/// named, which is read whatever its extension.
#[must_use]
pub fn walk(path: &Path, explicit: bool, limits: WalkLimits) -> Walk {
    let mut walker = Walker { limits, seen: HashSet::new(), bytes: 0, out: Walk::default(), files_refused: false };
    walker.visit(path, 0, explicit);
    walker.out
}

#[cfg(test)]
mod tests {
    use super::*;

    use palisade_testkit::temp::TempDir;

    /// `ln -s . loop; ln -s . loop2` made the old walk read 2^32 paths.
    #[test]
    fn symlink_loops_are_read_once_and_reported() {
        let temp = TempDir::new("walk-loops");
        let dir = temp.path().to_path_buf();
        fs::write(dir.join("a.yaml"), "kind: Namespace\n").expect("write");
        fs::create_dir(dir.join("sub")).expect("dir");
        fs::write(dir.join("sub/b.yaml"), "kind: Namespace\n").expect("write");
        std::os::unix::fs::symlink(".", dir.join("loop")).expect("symlink");
        std::os::unix::fs::symlink(".", dir.join("loop2")).expect("symlink");
        std::os::unix::fs::symlink("..", dir.join("sub/up")).expect("symlink");
        let found = walk(&dir, false, WalkLimits::AGENT);
        assert_eq!(found.files, [dir.join("a.yaml"), dir.join("sub/b.yaml")]);
        let refused: Vec<String> = found.refused.iter().map(ToString::to_string).collect();
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused.iter().all(|r| r.contains("directory already read")), "{refused:?}");
    }

    #[test]
    fn depth_count_and_size_are_bounded() {
        let temp = TempDir::new("walk-bounds");
        let dir = temp.path().to_path_buf();
        let mut deep = dir.clone();
        for i in 0..5 {
            deep = deep.join(format!("d{i}"));
        }
        fs::create_dir_all(&deep).expect("dirs");
        fs::write(deep.join("deep.yaml"), "x").expect("write");
        for i in 0..5 {
            fs::write(dir.join(format!("f{i}.yaml")), "0123456789").expect("write");
        }
        let limits = WalkLimits { max_depth: 3, max_files: 3, max_bytes: 25 };
        let found = walk(&dir, false, limits);
        assert_eq!(found.files, [dir.join("f0.yaml"), dir.join("f1.yaml")], "25 bytes hold two files of 10");
        let refused: Vec<String> = found.refused.iter().map(ToString::to_string).collect();
        assert!(refused.iter().any(|r| r.contains("deeper than 3")), "{refused:?}");
        assert!(refused.iter().any(|r| r.contains("f2.yaml") && r.contains("exceed 25 bytes")), "{refused:?}");
        let limits = WalkLimits { max_files: 3, ..WalkLimits::AGENT };
        let found = walk(&dir, false, limits);
        assert_eq!(found.files.len(), 3);
        assert_eq!(found.refused.iter().filter(|r| r.to_string().contains("more than 3")).count(), 1);
    }

    #[test]
    fn special_files_are_never_read() {
        let temp = TempDir::new("walk-special");
        let dir = temp.path().to_path_buf();
        nix::unistd::mkfifo(&dir.join("pipe.yaml"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).expect("symlink");
        let found = walk(&dir, false, WalkLimits::AGENT);
        assert!(found.files.is_empty());
        assert_eq!(found.refused.len(), 2, "{:?}", found.refused);
    }
}
