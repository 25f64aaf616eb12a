//! Load errors: each names the file, and the object and field where known.

use std::fmt;

use palisade_policy::ObjectKey;

/// Why part of the input could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{file}: {message}")]
    Read {
        /// The path as given.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// A document is not well-formed YAML or JSON.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// An object is invalid; it was rejected whole.
    #[error("{file}: {object}: {field}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// `Kind namespace/name`.
        object: String,
        /// The object's key, for the kinds Palisade holds (Namespace, Pod,
        /// NetworkPolicy); `None` for other kinds (workloads).
        key: Option<ObjectKey>,
        /// Field path inside the object, e.g. `spec.ingress[0].from[1].ipBlock.except[0]`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// One invalid field of an object being converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A field error at `field`.
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        FieldError { field: field.into(), message: message.to_string() }
    }
}

/// Collects field errors while an object is converted.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Records an error at `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl fmt::Display) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records `result`'s error, if any, at `field`.
    pub fn check(&mut self, field: impl FnOnce() -> String, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(field(), message);
        }
    }
}
