//! A kernel in memory, for tests without root: it applies transactions to a
//! table as nf_tables does (all or nothing; deleting what is not there,
//! creating a set again with another type, or referring to a missing chain
//! or set fails), records every transaction, keeps a ruleset generation,
//! and lets the test tamper with the table, set the pod interfaces, or make the next applies fail.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use palisade_dataplane::conntrack::{ConntrackError, Deleted, Entry, Sides};
use palisade_dataplane::json::ListedTable;
use palisade_dataplane::nft::NftError;
use palisade_dataplane::ruleset::{Chain, Set, Statement, Table, Verdict};
use palisade_dataplane::transaction::{Command, Transaction};

use crate::kernel::{Kernel, KernelTable};

/// What the fake kernel holds; shared between the kernel and the test.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Palisade's table; `None` when it does not exist.
    pub table: Option<Table>,
    /// Every transaction applied, in order (refused ones are not kept).
    pub applied: Vec<Transaction>,
    /// Applies to refuse before accepting again.
    pub fail_next: usize,
    /// Transactions refused.
    pub refused: usize,
    /// What `pod_interfaces` answers.
    pub interfaces: BTreeMap<IpAddr, String>,
    /// The ruleset generation: one more with every transaction applied and
    /// every [`FakeKernel::tamper`].
    pub generation: u32,
    /// Whole-table reads (listings) so far.
    pub reads: usize,
    /// The connection tracking table.
    pub connections: Vec<Entry>,
    /// Every entry deleted from it, in order.
    pub revoked: Vec<Entry>,
    /// What `node_addresses` answers.
    pub node_addresses: BTreeSet<IpAddr>,
}

/// The fake kernel; clones share one state.
#[derive(Clone, Debug, Default)]
pub struct FakeKernel {
    state: Arc<Mutex<FakeState>>,
}

impl FakeKernel {
    /// A kernel with no table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, to inspect or tamper with.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the table behind the agent's back, as another process's
    /// committed transaction would (the generation moves on).
    pub fn tamper(&self, f: impl FnOnce(&mut Option<Table>)) {
        let mut state = self.state();
        f(&mut state.table);
        state.generation = state.generation.wrapping_add(1);
    }

    /// A copy of the table as it stands.
    #[must_use]
    pub fn table(&self) -> Option<Table> {
        self.state().table.clone()
    }
}

fn fail(errno: Errno, index: usize, command: &Command) -> NftError {
    NftError::Kernel { errno, seq: 0, index: Some(index), command: command.to_string() }
}

/// Applies one command to `table`, or says why the kernel would refuse it.
fn command(table: &mut Option<Table>, c: &Command, i: usize) -> Result<(), NftError> {
    let missing = || fail(Errno::ENOENT, i, c);
    if let Command::AddTable = c {
        table.get_or_insert_with(Table::default);
        return Ok(());
    }
    if let Command::DeleteTable = c {
        return table.take().map(drop).ok_or_else(missing);
    }
    let t = table.as_mut().ok_or_else(missing)?;
    match c {
        Command::AddTable | Command::DeleteTable => unreachable!("handled above"),
        Command::AddCounter(name) => {
            t.counters.insert(name.clone());
        }
        Command::DeleteCounter(name) => {
            if !t.counters.remove(name) {
                return Err(missing());
            }
        }
        Command::AddSet { name, decl, elements } => {
            let set = t
                .sets
                .entry(name.clone())
                .or_insert_with(|| Set { decl: decl.clone(), elements: std::collections::BTreeSet::new() });
            if set.decl != *decl {
                return Err(fail(Errno::EEXIST, i, c));
            }
            set.elements.extend(elements.iter().cloned());
        }
        Command::DeleteSet { name, .. } => {
            let referenced = t.chains.values().flat_map(|ch| &ch.rules).any(|r| {
                r.0.iter().any(
                    |s| matches!(s, Statement::Lookup { set, .. } | Statement::Vmap { map: set, .. } if set == name),
                )
            });
            if referenced {
                return Err(fail(Errno::EBUSY, i, c));
            }
            t.sets.remove(name).ok_or_else(missing)?;
        }
        Command::AddChain { name, base } => {
            let chain = t.chains.entry(name.clone()).or_insert_with(|| Chain { base: *base, rules: Vec::new() });
            chain.base = *base;
        }
        Command::DeleteChain(name) => {
            let jumped_to =
                t.chains.values().flat_map(|ch| &ch.rules).any(|r| {
                    r.0.iter().any(|s| matches!(s, Statement::Verdict(Verdict::Jump(target)) if target == name))
                }) || t
                    .sets
                    .values()
                    .flat_map(|s| &s.elements)
                    .any(|e| matches!(&e.verdict, Some(Verdict::Jump(target)) if target == name));
            let chain = t.chains.get(name).ok_or_else(missing)?;
            if jumped_to || !chain.rules.is_empty() {
                return Err(fail(Errno::EBUSY, i, c));
            }
            t.chains.remove(name);
        }
        Command::FlushChain(name) => t.chains.get_mut(name).ok_or_else(missing)?.rules.clear(),
        Command::AddRule { chain, rule } => {
            for s in &rule.0 {
                let refers = match s {
                    Statement::Lookup { set, .. } | Statement::Vmap { map: set, .. } => t.sets.contains_key(set),
                    Statement::Verdict(Verdict::Jump(target)) => t.chains.contains_key(target),
                    Statement::Counter(name) => t.counters.contains(name),
                    _ => true,
                };
                if !refers {
                    return Err(missing());
                }
            }
            t.chains.get_mut(chain).ok_or_else(missing)?.rules.push(rule.clone());
        }
        Command::AddElements { set, elements, .. } => {
            let targets_exist = elements.iter().all(|e| match &e.verdict {
                Some(Verdict::Jump(target)) => t.chains.contains_key(target),
                _ => true,
            });
            if !targets_exist {
                return Err(missing());
            }
            let s = t.sets.get_mut(set).ok_or_else(missing)?;
            if elements.iter().any(|e| !e.fits(&s.decl)) {
                return Err(fail(Errno::EINVAL, i, c));
            }
            s.elements.extend(elements.iter().cloned());
        }
        Command::DeleteElements { set, elements, .. } => {
            let s = t.sets.get_mut(set).ok_or_else(missing)?;
            for e in elements {
                // Map elements are deleted by key.
                let present = s.elements.iter().find(|have| have.key == e.key).cloned();
                s.elements.remove(&present.ok_or_else(missing)?);
            }
        }
    }
    Ok(())
}

impl Kernel for FakeKernel {
    fn apply(&mut self, transaction: &Transaction, _table: &Table) -> Result<(), NftError> {
        let mut state = self.state();
        if state.fail_next > 0 {
            state.fail_next -= 1;
            state.refused += 1;
            return Err(NftError::Io { what: "send", errno: Errno::ENOBUFS });
        }
        // All or nothing: the commands run on a copy that replaces the table
        // only when every one of them succeeded.
        let mut table = state.table.clone();
        for (i, c) in transaction.commands.iter().enumerate() {
            if let Err(e) = command(&mut table, c, i) {
                state.refused += 1;
                return Err(e);
            }
        }
        state.table = table;
        state.generation = state.generation.wrapping_add(1);
        state.applied.push(transaction.clone());
        Ok(())
    }

    fn read(&mut self) -> Result<Option<KernelTable>, NftError> {
        let mut state = self.state();
        state.reads += 1;
        Ok(state.table.as_ref().map(|t| KernelTable {
            listed: ListedTable { table: t.clone(), unreadable: Vec::new() },
            counters: t.counters.iter().map(|c| (c.clone(), 0)).collect(),
        }))
    }

    fn read_counters(&mut self) -> Result<Vec<(String, u64)>, NftError> {
        Ok(self.state().table.iter().flat_map(|t| t.counters.iter().map(|c| (c.clone(), 0))).collect())
    }

    fn generation(&mut self) -> Option<u32> {
        Some(self.state().generation)
    }

    fn pod_interfaces(&mut self) -> BTreeMap<IpAddr, String> {
        self.state().interfaces.clone()
    }

    fn node_addresses(&mut self) -> BTreeSet<IpAddr> {
        self.state().node_addresses.clone()
    }

    fn connections(&mut self, addrs: &BTreeMap<IpAddr, Sides>) -> Result<Vec<Entry>, ConntrackError> {
        let state = self.state();
        let mine = |a: &IpAddr, e: &Entry| addrs.get(a).is_some_and(|s| s.selects(*a, e));
        Ok(state.connections.iter().filter(|e| mine(&e.orig.src, e) || mine(&e.reply.src, e)).copied().collect())
    }

    fn delete_connections(&mut self, entries: &[Entry]) -> Result<Deleted, ConntrackError> {
        let mut state = self.state();
        let mut report = Deleted::default();
        for e in entries {
            if let Some(at) = state.connections.iter().position(|have| have == e) {
                state.connections.remove(at);
                state.revoked.push(*e);
                report.deleted += 1;
            } else {
                report.gone += 1;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dataplane::ruleset::{Element, Key, KeyType, SetDecl};
    use palisade_dataplane::transaction::{cleanup, diff, full};

    fn table(addrs: &[&str]) -> Table {
        let mut t = Table::default();
        t.chains.insert("c".into(), Chain::default());
        let elements =
            addrs.iter().map(|a| Element::mapping(Key::addr(a.parse().expect("ip")), Verdict::Jump("c".into())));
        t.sets.insert("m".into(), Set { decl: SetDecl::verdict_map(KeyType::Ipv4Addr), elements: elements.collect() });
        t
    }

    #[test]
    fn transactions_reach_their_table_and_a_refused_one_changes_nothing() {
        let mut kernel = FakeKernel::new();
        let (a, b) = (table(&["10.0.0.1", "10.0.0.2"]), table(&["10.0.0.2", "10.0.0.3"]));
        kernel.apply(&full(&a), &a).expect("full");
        assert_eq!(kernel.table(), Some(a.clone()));
        kernel.apply(&diff(&a, &b).expect("a change"), &b).expect("diff");
        assert_eq!(kernel.table(), Some(b.clone()));
        // The diff from a again: its deletion of 10.0.0.1 fails, so its
        // addition of 10.0.0.2 does not happen either.
        assert!(kernel.apply(&diff(&a, &b).expect("a change"), &b).is_err());
        assert_eq!(kernel.table(), Some(b.clone()));
        assert_eq!(kernel.state().applied.len(), 2);
        kernel.apply(&cleanup(), &Table::default()).expect("cleanup");
        assert_eq!(kernel.table(), None);
    }
}
