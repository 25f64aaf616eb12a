//! Palisade's dataplane: the policies for one node's pods as an nftables
//! program.
//!
//! ```text
//! ClusterIndex --compile(node)--> Program (pure data)
//!                                   |  render (pure): full, or the diff between two programs
//!                                   v
//!                             nft JSON transaction --apply (the only writer)--> kernel
//! ```
//!
//! See `render` for the nftables layout and why it keeps per-packet cost
//! independent of the cluster's size.

pub mod compile;
pub mod program;
pub mod ranges;

pub use compile::{NodeScope, compile};
pub use program::{LocalPod, PolicyProgram, PortSet, Program, ProgramStats, RuleProgram};
pub mod nft;
pub mod render;
pub mod transaction;
