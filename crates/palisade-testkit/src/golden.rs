//! Golden files: what a test produced, compared with a file kept in the
//! repository. `BLESS=1 cargo test …` rewrites the files instead; review
//! the diff before committing.

use std::path::Path;

/// Asserts `actual` equals the file at `path` (with `BLESS` set, writes it).
///
/// # Panics
/// When they differ, or the file is missing and `BLESS` is not set.
#[track_caller]
pub fn golden(path: &Path, actual: &str) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("missing golden file {}; run with BLESS=1", path.display()));
    assert!(
        expected == actual,
        "{} differs from its golden file (BLESS=1 to rewrite it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
