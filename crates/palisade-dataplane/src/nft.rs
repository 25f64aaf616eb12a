//! Writing kernel state: Palisade's own netlink path ([`crate::netlink`])
//! in the agent's namespace, and the `nft` tool's JSON interface for
//! listings, for tools that work on another namespace (`ip netns exec`),
//! and as the reference the netlink path is tested against. Both are
//! reached only through the [`Nft`] trait.
//!
//! A transaction is typed data ([`Transaction`]); the netlink path encodes
//! it straight into one nfnetlink batch, the `nft` path serializes it as
//! `nft -j` JSON (`json`). Why not hand every change to `nft`: a spawn, a
//! read-back of the table and a close that waits for an RCU grace period
//! cost 20-40 ms per change, where the kernel needs well under one (see
//! `netlink`'s docs).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::json::Listing;
use crate::netlink::Socket;
use crate::ruleset::{TABLE, Table};
use crate::transaction::Transaction;

/// Why a transaction or listing failed. Whatever failed, the kernel
/// applied nothing of the transaction. Each message includes its cause
/// (logs print messages); none is repeated as a `source()`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started or fed.
    #[error("cannot run {program}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `nft` rejected the transaction.
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
    /// A command cannot be encoded as nf_tables messages.
    #[error("cannot encode command {index} ({command}): {reason}")]
    Encode {
        /// Its index in the transaction.
        index: usize,
        /// The command, in nft syntax (long element lists cut short).
        command: String,
        /// Why.
        reason: EncodeError,
    },
    /// The kernel rejected the batch at one of its messages.
    #[error("the kernel rejected {} of the batch: {errno}", describe(*.index, command, *.seq))]
    Kernel {
        /// The kernel's error.
        errno: nix::errno::Errno,
        /// Sequence number of the rejected message.
        seq: u32,
        /// Index of the command it encodes, when it encodes one.
        index: Option<usize>,
        /// That command, in nft syntax.
        command: String,
    },
    /// The netlink socket failed.
    #[error("netlink {what}: {errno}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        errno: nix::Error,
    },
    /// The kernel's answer was not what the protocol says.
    #[error("netlink: {0}")]
    Protocol(String),
}

fn describe(index: Option<usize>, command: &str, seq: u32) -> String {
    match index {
        Some(i) => format!("command {i} ({command})"),
        None => format!("message {seq}"),
    }
}

/// Why a command cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The transaction has no commands.
    #[error("the transaction is empty")]
    Empty,
    /// An element does not fit its set's declaration.
    #[error("element {element} does not fit set {set}")]
    Element {
        /// The set.
        set: String,
        /// The element.
        element: String,
    },
    /// A rule looks up a set the table does not have.
    #[error("set {0} is not in the table")]
    UnknownSet(String),
    /// A rule uses a set as a verdict map, or a verdict map as a set.
    #[error("{set} is {} verdict map", if *.verdict_map { "a" } else { "not a" })]
    SetKind {
        /// The set.
        set: String,
        /// Whether it is a verdict map.
        verdict_map: bool,
    },
    /// A log prefix longer than the kernel takes (127 bytes) or with a NUL.
    #[error("log prefix too long or with a NUL: {0}…")]
    LogPrefix(String),
    /// An object name longer than the kernel takes (255 bytes) or with a NUL.
    #[error("name too long or with a NUL: {0}…")]
    Name(String),
    /// An interface name prefix that is empty, longer than an interface
    /// name (15 bytes) or with a NUL.
    #[error("interface name prefix empty, over 15 bytes or with a NUL: {0:?}")]
    Ifname(String),
}

/// Something that applies transactions to Palisade's table and lists it.
pub trait Nft {
    /// Applies `transaction`, which brings the table to `table`, atomically.
    fn apply(&self, transaction: &Transaction, table: &Table) -> Result<(), NftError>;
    /// `nft -j list table inet palisade`; `None` when the table does not exist.
    fn list_table(&self) -> Result<Option<Listing>, NftError>;
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
        let spawn = |error| NftError::Spawn { program: "nft".into(), error };
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

    /// The ruleset generation of this process's namespace (see
    /// [`crate::netlink::generation`]); `None` for a named namespace.
    #[must_use]
    pub fn generation(&self) -> Option<Result<u32, NftError>> {
        self.netns.is_none().then(|| crate::netlink::generation(&self.socket))
    }

    /// Packet counts of Palisade's named counters, sorted by name; empty
    /// when there is no table. In this process's namespace one netlink
    /// dump ([`crate::netlink::counters`]), else `nft -j list counters`.
    pub fn list_counters(&self) -> Result<Vec<(String, u64)>, NftError> {
        if self.netns.is_none() {
            return crate::netlink::counters(&self.socket);
        }
        match self.run(&["-j", "list", "counters", "table", "inet", TABLE], None) {
            Ok(text) => Listing::parse(&text).map(|l| l.counters()).map_err(|e| NftError::Output(e.to_string())),
            Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Runs an nft script (`nft -f -`), for tables other than Palisade's
    /// (the trace marker).
    pub fn script(&self, text: &str) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(text)).map(|_| ())
    }

    /// Palisade's rules by handle: their chain and position in it.
    pub fn rule_positions(&self) -> Result<std::collections::BTreeMap<u64, (String, usize)>, NftError> {
        let text = self.run(&["-j", "-a", "list", "table", "inet", TABLE], None)?;
        Listing::parse(&text).map(|l| l.rule_positions()).map_err(|e| NftError::Output(e.to_string()))
    }

    /// Applies `transaction` through `nft -j` (the reference path).
    pub fn apply_json(&self, transaction: &Transaction) -> Result<(), NftError> {
        self.run(&["-j", "-f", "-"], Some(&crate::json::transaction(transaction).to_string())).map(|_| ())
    }
}

impl Nft for NftCli {
    /// In this process's namespace, one netlink batch (see
    /// [`crate::netlink`]); with `ip netns exec`, `nft -j`.
    fn apply(&self, transaction: &Transaction, table: &Table) -> Result<(), NftError> {
        if self.netns.is_some() {
            return self.apply_json(transaction);
        }
        crate::netlink::apply(transaction, table, &self.socket)
    }

    fn list_table(&self) -> Result<Option<Listing>, NftError> {
        match self.run(&["-j", "list", "table", "inet", TABLE], None) {
            Ok(text) => Listing::parse(&text).map(Some).map_err(|e| NftError::Output(e.to_string())),
            Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
