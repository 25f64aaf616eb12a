//! Palisade's dataplane: the policies for one node's pods as an nftables
//! program.
//!
//! ```text
//! ClusterIndex --compile(node)--> Program (pure data)
//!                                   |  render (pure)
//!                                   v
//!                              ruleset::Table (typed nftables objects)
//!                                   |  transaction: full, or the diff between two tables
//!                                   v
//!                              Transaction (typed commands)
//!                               /                    \
//!            json: `nft -j` JSON (goldens,       netlink: one nfnetlink batch
//!            logs, `nft` in other namespaces)    (the agent's writer) --> kernel
//! ```
//!
//! [`Incremental`] does the same per change: it recompiles and re-renders only
//! the parts of the table a change can affect, and yields their difference.
//!
//! See `render` for the nftables layout and why it keeps per-packet cost
//! independent of the cluster's size.

pub mod compile;
mod compile_tiers;
pub mod conntrack;
pub mod drift;
pub mod incremental;
pub mod json;
mod members;
pub mod program;
pub mod ranges;

pub use compile::{NodeScope, compile};
pub use incremental::{Incremental, UpdateStats};
pub use program::{
    FlowLog, LocalPod, NodeOptions, PodGate, PolicyProgram, PortSet, Program, ProgramStats, RuleProgram, TierProgram,
};
pub mod netlink;
pub mod nflog;
pub mod nft;
mod patch;
pub mod render;
pub mod render_gate;
pub mod render_tiers;
pub mod ruleset;
pub mod trace;
pub mod trace_explain;
pub mod transaction;
