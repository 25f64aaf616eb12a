//! Finding manifest files and splitting them into documents.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use crate::error::LoadError;
use crate::walk::{Walk, WalkLimits, walk};

/// Where manifests come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file, or a directory searched recursively for .yaml, .yml and .json.
    Path(PathBuf),
    /// Standard input (`-f -`).
    Stdin,
}

impl Input {
    /// `-` is stdin; anything else a path.
    #[must_use]
    pub fn parse(arg: &str) -> Input {
        if arg == "-" { Input::Stdin } else { Input::Path(PathBuf::from(arg)) }
    }
}

/// Expands `inputs` into (display name, text) pairs, in a stable order:
/// inputs as given, directory entries sorted by path.
pub fn read_inputs(inputs: &[Input], errors: &mut Vec<LoadError>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin => {
                let mut text = String::new();
                match std::io::stdin().read_to_string(&mut text) {
                    Ok(_) => out.push(("<stdin>".to_string(), text)),
                    Err(e) => errors.push(LoadError::Read { file: "<stdin>".into(), message: e.to_string() }),
                }
            }
            Input::Path(path) => {
                let found = walk(path, true, WalkLimits::ANALYZER);
                errors.extend(found.refused);
                for file in found.files {
                    match read_bounded(&file, STREAM_LIMIT) {
                        Ok(text) => out.push((file.display().to_string(), text)),
                        Err(message) => errors.push(LoadError::Read { file: file.display().to_string(), message }),
                    }
                }
            }
        }
    }
    out
}

/// The most read from one file or stream: a pipe or device named on the
/// command line has no size to check first.
const STREAM_LIMIT: u64 = 1 << 30;

/// Reads `path` as UTF-8, at most `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> Result<String, String> {
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    // A regular file's size sizes the buffer at once (growing it by
    // doubling copied a 157 MB dump about twice over); a pipe says 0.
    let size = file.metadata().map_or(0, |m| if m.is_file() { m.len() } else { 0 }).min(limit);
    let size = usize::try_from(size).map_err(|e| e.to_string())?;
    let mut bytes = if size >= READ_IN_PARTS_FROM {
        let bytes = read_in_parts(&file, size).map_err(|e| format!("{e} (did the file change while it was read?)"))?;
        file.seek(SeekFrom::Start(size as u64)).map_err(|e| e.to_string())?;
        bytes
    } else {
        Vec::with_capacity(size.saturating_add(1))
    };
    // All of a pipe, the rest of a growing file.
    file.take((limit + 1).saturating_sub(bytes.len() as u64)).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes: not read"));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
}

/// From this size on, a file is read in parts, one per core, at once:
/// the copy and the first touch of the buffer's pages then run in
/// parallel (a 157 MB dump: 85 ms in one part, 50 ms in two).
const READ_IN_PARTS_FROM: usize = 8 << 20;

/// The first `size` bytes of `file`, read in parts on up to one thread per core.
fn read_in_parts(file: &fs::File, size: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(4);
    let mut bytes = vec![0u8; size];
    let part = size.div_ceil(cores);
    std::thread::scope(|s| {
        let reads: Vec<_> = bytes
            .chunks_mut(part)
            .enumerate()
            .map(|(i, chunk)| s.spawn(move || file.read_exact_at(chunk, (i * part) as u64)))
            .collect();
        reads.into_iter().try_for_each(|r| r.join().unwrap_or_else(|_| Err(std::io::Error::other("a read failed"))))
    })?;
    Ok(bytes)
}

/// The manifest files under `dir` (.yaml, .yml, .json; recursive, hidden
/// entries skipped), in walk order, within `limits`, and what was refused.
#[must_use]
pub fn manifest_files(dir: &Path, limits: WalkLimits) -> Walk {
    walk(dir, false, limits)
}

/// `text` without a leading UTF-8 byte-order mark (which kubectl accepts,
/// and editors on Windows write).
pub(crate) fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A syntax error at `line`:`column` of `file`.
pub(crate) fn syntax(file: &str, line: usize, column: usize, message: &str) -> LoadError {
    LoadError::Syntax { file: file.into(), line, column, message: without_location(message) }
}

/// The documents of a YAML text as JSON text (`None` for an empty
/// document), in order, or the syntax error that ends them; lines are
/// counted from `first_line`.
///
/// A document in the block YAML that kubectl writes is read by
/// [`crate::block_yaml`], which leaves anything else to serde_norway.
/// Each other document is transcoded straight to JSON text, in the document's
/// key order, without building a value tree (which, with its map nodes and
/// key strings, was most of the allocation on this path). A document with
/// merge keys (`<<: *anchor`) is resolved on a YAML value first, and any
/// error is reported by [`yaml_values`], which knows its line and column.
pub(crate) fn yaml_documents(file: &str, text: &str, first_line: usize) -> Vec<Result<Option<String>, LoadError>> {
    if text.contains("<<") {
        return yaml_values(file, text, first_line);
    }
    if let Some(json) = crate::block_yaml::to_json(text) {
        return vec![Ok(Some(json))];
    }
    let mut out = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let mut json = Vec::with_capacity(text.len() + 64);
        if serde_transcode::transcode(document, &mut serde_json::Serializer::new(&mut json)).is_err() {
            return yaml_values(file, text, first_line);
        }
        // serde_json writes only UTF-8.
        let json = String::from_utf8(json).unwrap_or_default();
        out.push(Ok((json != "null").then_some(json)));
    }
    out
}

/// [`yaml_documents`] through a value tree: merge keys, and the precise
/// location of an error.
fn yaml_values(file: &str, text: &str, first_line: usize) -> Vec<Result<Option<String>, LoadError>> {
    let mut out = Vec::new();
    let merges = text.contains("<<");
    for document in serde_norway::Deserializer::from_str(text) {
        let value = if merges {
            serde_norway::Value::deserialize(document).and_then(|mut v| {
                v.apply_merge()?;
                serde_json::to_value(v).map_err(serde::de::Error::custom)
            })
        } else {
            Value::deserialize(document)
        };
        match value {
            Ok(Value::Null) => out.push(Ok(None)),
            Ok(v) => out.push(Ok(Some(v.to_string()))),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line() + first_line - 1, l.column()));
                out.push(Err(syntax(file, line, column, &e.to_string())));
                break;
            }
        }
    }
    out
}

/// Parser messages end with " at line L column C", which the error already carries.
pub(crate) fn without_location(message: &str) -> String {
    message.find(" at line ").map_or(message, |i| &message[..i]).to_string()
}

#[cfg(test)]
mod tests {
    use super::{READ_IN_PARTS_FROM, read_bounded};

    #[test]
    fn a_large_file_read_in_parts_is_read_whole_and_checked_as_utf8() {
        let dir = palisade_testkit::temp::TempDir::new("read-parts");
        let path = dir.path().join("big.json");
        // Characters of 1 to 4 bytes, so that parts end inside characters.
        let text: String = "aé€😀".repeat(READ_IN_PARTS_FROM / 10 + 3);
        assert!(text.len() > READ_IN_PARTS_FROM);
        std::fs::write(&path, &text).unwrap();
        assert!(read_bounded(&path, u64::MAX >> 1).unwrap() == text, "the text read differs");
        assert_eq!(read_bounded(&path, 1_000).unwrap_err(), "larger than 1000 bytes: not read");
        // A byte that is not UTF-8, late in the file, is found and placed.
        let mut bytes = text.into_bytes();
        let at = bytes.len() - 7;
        bytes[at] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let error = read_bounded(&path, u64::MAX >> 1).unwrap_err();
        assert!(error.starts_with("not UTF-8 text (byte "), "{error}");
        let byte: usize = error.trim_start_matches("not UTF-8 text (byte ").trim_end_matches(')').parse().unwrap();
        assert!(byte <= at && at - byte < 4, "{error} for a bad byte at {at}");
    }
}
