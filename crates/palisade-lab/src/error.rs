//! Why a lab command failed, with the context it failed in: each step adds
//! what it was doing (`starting the agent: …`), as the CLI prints it.

use std::fmt;

use palisade_dataplane::nft::NftError;

use crate::netns::NetNsError;

/// A lab failure.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A namespace operation failed.
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    /// nftables refused or could not be reached.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// A file, process or socket operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Connection tracking (ctnetlink) failed.
    #[error(transparent)]
    Conntrack(#[from] palisade_dataplane::conntrack::ConntrackError),
    /// Tracing a packet failed.
    #[error(transparent)]
    Trace(#[from] palisade_dataplane::trace::TraceError),
    /// A state or status file is not the JSON expected.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An address did not parse.
    #[error(transparent)]
    Addr(#[from] std::net::AddrParseError),
    /// The lab is not in a state the command can work with.
    #[error("{0}")]
    Failed(String),
    /// What was being done when `cause` happened (the message includes
    /// the cause; it is not repeated as a `source()`).
    #[error("{what}: {cause}")]
    Context {
        /// The step.
        what: String,
        /// What went wrong in it.
        cause: Box<LabError>,
    },
}

/// A lab result.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Adds what was being done to an error (or to a missing value).
pub trait Context<T> {
    /// `what` went wrong.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// `what()` went wrong (computed only on error).
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<LabError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| LabError::Context { what: what.to_string(), cause: Box::new(e.into()) })
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| LabError::Context { what: what().to_string(), cause: Box::new(e.into()) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| LabError::Failed(what.to_string()))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| LabError::Failed(what().to_string()))
    }
}

/// Returns a [`LabError::Failed`] with a formatted message.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::LabError::Failed(format!($($arg)*)))
    };
}

/// Returns a [`LabError::Failed`] unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message carries the whole chain once: no cause is repeated by
    /// a `source()` that a reporter (anyhow's `{:#}`) would print again.
    #[test]
    fn a_cause_is_printed_once() {
        let e = Err::<(), _>(std::io::Error::other("disk gone")).context("writing the state").unwrap_err();
        let e = Err::<(), _>(e).context("lab up").unwrap_err();
        assert_eq!(e.to_string(), "lab up: writing the state: disk gone");
        let mut chain = Vec::new();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        assert!(chain.iter().all(|c| !c.contains("disk gone")), "{chain:?}");
    }
}
