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
/// entries skipped), in walk order, within `limits`, and what was refused.
#[must_use]
pub fn manifest_files(dir: &Path, limits: WalkLimits) -> Walk {
    walk(dir, false, limits)
}

/// Splits `text` into JSON values: JSON when it starts with `{` or `[`,
/// otherwise multi-document YAML. A syntax error stops that file.
pub fn parse_documents(file: &str, text: &str, errors: &mut Vec<LoadError>) -> Vec<Value> {
    let mut docs = Vec::new();
    each_document(file, text, errors, |doc| docs.push(doc));
    docs
}

/// [`parse_documents`] one document at a time: each goes to `f` before the
/// next is parsed, so only one document's tree is in memory at once.
pub fn each_document(file: &str, text: &str, errors: &mut Vec<LoadError>, mut f: impl FnMut(Value)) {
    if text.trim_start().starts_with(['{', '[']) {
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match value {
                Ok(v) => f(v),
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
        return;
    }
    for document in serde_norway::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(v) => f(v),
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
}

/// Parser messages end with " at line L column C", which the error already carries.
fn without_location(message: &str) -> String {
    message.find(" at line ").map_or(message, |i| &message[..i]).to_string()
}
