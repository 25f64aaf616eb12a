//! One module per subcommand. Each `run` prints its result and returns the
//! process exit code.

pub mod check;
pub mod diff;
pub mod explain;
pub mod lint;
pub mod matrix;
pub mod reach;
pub mod report;
pub mod status;
pub mod trace;

use clap::ValueEnum;

/// Human text or machine JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    /// Readable text.
    Text,
    /// JSON.
    Json,
}

/// Exit status for a command that found invalid input: 2.
pub const EXIT_ERROR: u8 = 2;
/// Exit status for an answer that policies of kinds Palisade does not
/// evaluate (AdminNetworkPolicy, Calico's, Cilium's, ...) could change: 3.
pub const EXIT_INCOMPLETE: u8 = 3;
