//! Writing kernel state: Palisade's own netlink path ([`crate::netlink`])
//! in the agent's namespace, and the `nft` tool's JSON interface for
//! listings, for tools that work on another namespace (`ip netns exec`),
//! and as the reference the netlink path is tested against. Both are
//! reached only through the [`Nft`] trait.
//!
//! Every transaction is first rendered as `nft -j` JSON (documented in
//! libnftables-json(5), golden-tested, readable in logs); the netlink path
//! translates that same JSON into one nfnetlink batch. Why not hand it to
//! `nft`: a spawn, a read-back of the table and a close that waits for an
//! RCU grace period cost 20-40 ms per change, where the kernel needs well
//! under one (see `netlink`'s docs).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;

use crate::netlink::{Batch, Socket};
use crate::render::{Rendered, TABLE};

/// Why a call to nft failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `nft` rejected the transaction; nothing was applied.
    #[error("nft failed ({status}): {stderr}")]
    Failed {
        /// Exit status.
        status: String,
        /// What nft printed.
        stderr: String,
    },
    /// `nft` printed something that is not the JSON expected.
    #[error("unexpected nft output: {0}")]
    Output(String),
    /// The netlink path failed; nothing of its batch was applied.
    #[error("netlink: {0}")]
    Netlink(String),
}

/// Something that applies nft JSON transactions and lists Palisade's table.
pub trait Nft {
    /// Applies one transaction atomically.
    fn apply(&self, transaction: &Value) -> Result<(), NftError>;
    /// Applies one transaction that brings the table to `table`; an
    /// implementation may take a faster path when the transaction only
    /// changes elements of `table`'s hash sets and maps.
    fn apply_to(&self, transaction: &Value, table: &Rendered) -> Result<(), NftError> {
        let _ = table;
        self.apply(transaction)
    }
    /// `nft -j list table inet palisade`; `None` when the table does not exist.
    fn list_table(&self) -> Result<Option<Value>, NftError>;
}

/// Palisade's writer and reader of its table: in this process's namespace,
/// transactions go over a netlink socket kept open between them (see
/// [`crate::netlink::Socket`]); listings, and everything when a namespace
/// is named (`ip netns exec`), go through the `nft` command.
#[derive(Clone, Debug, Default)]
pub struct NftCli {
    netns: Option<String>,
    socket: Arc<Socket>,
}

impl NftCli {
    /// `nft` run inside `ip netns exec NAME`.
    #[must_use]
    pub fn in_netns(name: &str) -> Self {
        Self { netns: Some(name.to_string()), socket: Arc::default() }
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        }
    }

    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn = |source| NftError::Spawn { program: "nft".into(), source };
        let mut child = cmd.spawn().map_err(spawn)?;
        if let Some(input) = input {
            child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).map_err(spawn)?;
        }
        let out = child.wait_with_output().map_err(spawn)?;
        if !out.status.success() {
            return Err(NftError::Failed {
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Nft for NftCli {
    fn apply(&self, transaction: &Value) -> Result<(), NftError> {
        self.run(&["-j", "-f", "-"], Some(&transaction.to_string())).map(|_| ())
    }

    /// In this process's namespace, one netlink batch (see
    /// [`crate::netlink`]); with `ip netns exec`, `nft -j`.
    fn apply_to(&self, transaction: &Value, table: &Rendered) -> Result<(), NftError> {
        if self.netns.is_some() {
            return self.apply(transaction);
        }
        Batch::for_transaction(transaction, table).map_err(NftError::Netlink)?.apply(&self.socket)
    }

    fn list_table(&self) -> Result<Option<Value>, NftError> {
        match self.run(&["-j", "list", "table", "inet", TABLE], None) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| NftError::Output(e.to_string())),
            Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What the kernel holds, reduced to what drift detection compares:
/// chain names with rule counts, set names with element counts, counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSummary {
    /// `(chain, rules)`.
    pub chains: Vec<(String, usize)>,
    /// `(set or map, elements)`.
    pub sets: Vec<(String, usize)>,
    /// Counter names.
    pub counters: Vec<String>,
}

/// Packet counts of named counters, from `nft -j list table` output.
#[must_use]
pub fn counters(listing: &Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = items(listing)
        .filter_map(|item| {
            let c = item.get("counter")?;
            Some((c.get("name")?.as_str()?.to_string(), c.get("packets")?.as_u64()?))
        })
        .collect();
    out.sort();
    out
}

fn items(listing: &Value) -> impl Iterator<Item = &Value> {
    listing.get("nftables").and_then(Value::as_array).into_iter().flatten()
}

/// Summarizes a `nft -j list table` listing.
#[must_use]
pub fn summarize_listing(listing: &Value) -> TableSummary {
    let mut s = TableSummary::default();
    let mut rules: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for item in items(listing) {
        if let Some(chain) = item.get("chain").and_then(|c| c.get("name")).and_then(Value::as_str) {
            rules.entry(chain.to_string()).or_default();
        }
        if let Some(chain) = item.get("rule").and_then(|r| r.get("chain")).and_then(Value::as_str) {
            *rules.entry(chain.to_string()).or_default() += 1;
        }
        for kind in ["set", "map"] {
            if let Some(set) = item.get(kind) {
                let name = set.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                let n = set.get("elem").and_then(Value::as_array).map_or(0, Vec::len);
                s.sets.push((name, n));
            }
        }
        if let Some(name) = item.get("counter").and_then(|c| c.get("name")).and_then(Value::as_str) {
            s.counters.push(name.to_string());
        }
    }
    s.chains = rules.into_iter().collect();
    s.sets.sort();
    s.counters.sort();
    s
}

/// The summary a correct kernel table has for `r`.
#[must_use]
pub fn summarize_rendered(r: &crate::render::Rendered) -> TableSummary {
    TableSummary {
        chains: r.chains.iter().map(|(n, d)| (n.clone(), d.rules.len())).collect(),
        sets: r.sets.iter().map(|(n, d)| (n.clone(), d.elements.len())).collect(),
        counters: r.counters.iter().cloned().collect(),
    }
}
