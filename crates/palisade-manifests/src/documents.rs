//! Finding manifest files and splitting them into documents.

use std::fs;
use std::io::Read as _;
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
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    // A regular file's size sizes the buffer at once (growing it by
    // doubling copied a 157 MB dump about twice over); a pipe says 0.
    let size = file.metadata().map_or(0, |m| m.len()).min(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(size).map_or(0, |s| s.saturating_add(1)));
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes: not read"));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
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
/// Each document is transcoded straight to JSON text, in the document's
/// key order, without building a value tree (which, with its map nodes and
/// key strings, was most of the allocation on this path). A document with
/// merge keys (`<<: *anchor`) is resolved on a YAML value first, and any
/// error is reported by [`yaml_values`], which knows its line and column.
pub(crate) fn yaml_documents(file: &str, text: &str, first_line: usize) -> Vec<Result<Option<String>, LoadError>> {
    if text.contains("<<") {
        return yaml_values(file, text, first_line);
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
