//! The `palisade` command line: offline analysis of NetworkPolicies.
//!
//! ```text
//! -f inputs --load--> Loaded --index--> ClusterIndex --> check | explain | matrix | query | lint | diff
//! (no -f: the Kubernetes API's list pages, same loader)
//! ```
//!
//! Every command shares the loader and the engine; only rendering differs.

pub mod commands;
pub mod endpoint;
pub mod inputs;
pub mod live;
pub mod query;
pub mod query_line;
pub mod style;
pub mod verdict_text;
