//! Finding manifest files and splitting them into documents.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use crate::error::LoadError;

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

/// Directories nested deeper than this are not searched (guards symlink loops).
const MAX_DEPTH: usize = 32;

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
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
                let mut files = Vec::new();
                collect_files(path, 0, true, &mut files, errors);
                for file in files {
                    match fs::read_to_string(&file) {
                        Ok(text) => out.push((file.display().to_string(), text)),
                        Err(e) => {
                            errors.push(LoadError::Read { file: file.display().to_string(), message: e.to_string() });
                        }
                    }
                }
            }
        }
    }
    out
}

/// The manifest files under `dir` (.yaml, .yml, .json; recursive, hidden
/// entries skipped), sorted by path.
#[must_use]
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect_files(dir, 0, false, &mut out, &mut Vec::new());
    out.sort();
    out
}

fn collect_files(path: &Path, depth: usize, explicit: bool, out: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let read_error = |e: std::io::Error| LoadError::Read { file: path.display().to_string(), message: e.to_string() };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return errors.push(read_error(e)),
    };
    if meta.is_file() {
        // A file named explicitly is read whatever its extension.
        if explicit || is_manifest(path) {
            out.push(path.to_path_buf());
        }
        return;
    }
    if !meta.is_dir() || depth > MAX_DEPTH {
        return;
    }
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => return errors.push(read_error(e)),
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let hidden = child.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if !hidden {
            collect_files(&child, depth + 1, false, out, errors);
        }
    }
}

/// Splits `text` into JSON values: JSON when it starts with `{` or `[`,
/// otherwise multi-document YAML. A syntax error stops that file.
pub fn parse_documents(file: &str, text: &str, errors: &mut Vec<LoadError>) -> Vec<Value> {
    let mut docs = Vec::new();
    if text.trim_start().starts_with(['{', '[']) {
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match value {
                Ok(v) => docs.push(v),
                Err(e) => {
                    errors.push(LoadError::Syntax {
                        file: file.into(),
                        line: e.line(),
                        column: e.column(),
                        message: without_location(&e.to_string()),
                    });
                    break;
                }
            }
        }
        return docs;
    }
    for document in serde_norway::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(v) => docs.push(v),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                errors.push(LoadError::Syntax {
                    file: file.into(),
                    line,
                    column,
                    message: without_location(&e.to_string()),
                });
                break;
            }
        }
    }
    docs
}

/// Parser messages end with " at line L column C", which the error already carries.
fn without_location(message: &str) -> String {
    message.find(" at line ").map_or(message, |i| &message[..i]).to_string()
}
