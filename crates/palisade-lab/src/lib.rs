//! The lab: a real mini node on one Linux machine. Network namespaces act
//! as pods behind a node namespace that routes between them; real TCP, UDP
//! and SCTP packets cross the dataplane's rules.
//!
//! Everything the lab creates carries a unique name prefix, is removed by
//! RAII guards (also on panic) or by `palisade lab down`, and no setting of
//! the root namespace is touched.

pub mod bench;
pub mod error;
pub mod model_lab;
pub mod netns;
pub mod plan;
pub mod probe;
pub mod sctp;
pub mod serve;
pub mod session;
pub mod topology;
