//! What Palisade's tests share, in one place:
//!
//! - [`e2e`]: the upstream e2e network-policy model (namespaces x, y, z;
//!   pods a, b, c) and the hand-written truth tables every layer is checked
//!   against (the engine in `palisade-policy`, real packets in `palisade-lab`);
//! - [`strategy`]: proptest strategies for policies over that model, so a
//!   failing property shrinks to a small policy set;
//! - [`golden`]: golden files, rewritten with `BLESS=1`;
//! - [`temp`]: scratch directories removed on drop;
//! - [`fixtures`]: small clusters as manifests;
//! - [`memory`]: the process's resident memory;
//! - [`big`]: one large manifest, for the large-change measurements, and
//!   synthetic clusters written as files;
//! - [`command`]: running a program as a user would;
//! - [`kube_mock`]: a mock Kubernetes API server in the wire format.

pub mod big;
pub mod command;
pub mod e2e;
pub mod fixtures;
pub mod golden;
pub mod kube_mock;
pub mod memory;
pub mod strategy;
pub mod temp;
