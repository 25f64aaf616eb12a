//! Transactions on Palisade's table as typed commands: the whole table, or
//! the difference between two tables. Either is applied as one atomic
//! transaction, serialized as `nft -j` JSON (`json`) or as one nfnetlink
//! batch (`netlink`).

use std::collections::BTreeSet;
use std::fmt;

use crate::ruleset::{Chain, Element, Hook, Rule, Set, SetDecl, TABLE, Table};

/// One command of a transaction, on an object of Palisade's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `add table inet palisade` (no-op when it exists).
    AddTable,
    /// `delete table inet palisade`, with everything in it.
    DeleteTable,
    /// `add counter NAME`.
    AddCounter(String),
    /// `delete counter NAME`.
    DeleteCounter(String),
    /// `add set`/`add map`, with initial elements.
    AddSet {
        /// Name.
        name: String,
        /// Declaration.
        decl: SetDecl,
        /// Elements added with it.
        elements: Vec<Element>,
    },
    /// `delete set`/`delete map`.
    DeleteSet {
        /// Name.
        name: String,
        /// Whether it is a verdict map.
        verdict_map: bool,
    },
    /// `add chain`; a base chain with its hook and priority.
    AddChain {
        /// Name.
        name: String,
        /// `(hook, priority)` of a base chain.
        base: Option<(Hook, i32)>,
    },
    /// `delete chain` (it must be empty and unreferenced).
    DeleteChain(String),
    /// `flush chain`: removes its rules.
    FlushChain(String),
    /// `add rule` at the end of a chain.
    AddRule {
        /// The chain.
        chain: String,
        /// The rule.
        rule: Rule,
    },
    /// `add element`.
    AddElements {
        /// The set.
        set: String,
        /// Its declaration (how elements are encoded).
        decl: SetDecl,
        /// The elements.
        elements: Vec<Element>,
    },
    /// `delete element`; a verdict map's elements are deleted by key.
    DeleteElements {
        /// The set.
        set: String,
        /// Its declaration.
        decl: SetDecl,
        /// The elements.
        elements: Vec<Element>,
    },
}

/// A transaction: commands the kernel commits all together or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The commands, in order.
    pub commands: Vec<Command>,
}

impl Transaction {
    /// Number of commands.
    #[must_use]
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether there are no commands.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    fn push(&mut self, c: Command) {
        self.commands.push(c);
    }
}

/// Elements shown in a command's text, at most.
const SHOWN_ELEMENTS: usize = 3;

fn elements_text(f: &mut fmt::Formatter<'_>, elements: &[Element]) -> fmt::Result {
    f.write_str("{ ")?;
    for (i, e) in elements.iter().take(SHOWN_ELEMENTS).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    if elements.len() > SHOWN_ELEMENTS {
        write!(f, ", … ({} in all)", elements.len())?;
    }
    f.write_str(" }")
}

/// nft syntax, with long element lists cut short (for errors and logs).
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = TABLE;
        match self {
            Command::AddTable => write!(f, "add table inet {t}"),
            Command::DeleteTable => write!(f, "delete table inet {t}"),
            Command::AddCounter(c) => write!(f, "add counter inet {t} {c}"),
            Command::DeleteCounter(c) => write!(f, "delete counter inet {t} {c}"),
            Command::AddSet { name, decl, elements } => {
                let key: Vec<&str> = decl.key.iter().map(|k| k.name()).collect();
                let kind = if decl.verdict_map { "map" } else { "set" };
                write!(f, "add {kind} inet {t} {name} {{ type {}", key.join(" . "))?;
                if decl.verdict_map {
                    f.write_str(" : verdict")?;
                }
                if decl.interval {
                    f.write_str("; flags interval")?;
                }
                if !elements.is_empty() {
                    f.write_str("; elements = ")?;
                    elements_text(f, elements)?;
                }
                f.write_str(" }")
            }
            Command::DeleteSet { name, verdict_map } => {
                write!(f, "delete {} inet {t} {name}", if *verdict_map { "map" } else { "set" })
            }
            Command::AddChain { name, base: None } => write!(f, "add chain inet {t} {name}"),
            Command::AddChain { name, base: Some((Hook::Forward, prio)) } => {
                write!(f, "add chain inet {t} {name} {{ type filter hook forward priority {prio}; policy accept; }}")
            }
            Command::DeleteChain(c) => write!(f, "delete chain inet {t} {c}"),
            Command::FlushChain(c) => write!(f, "flush chain inet {t} {c}"),
            Command::AddRule { chain, rule } => write!(f, "add rule inet {t} {chain} {rule}"),
            Command::AddElements { set, elements, .. } => {
                write!(f, "add element inet {t} {set} ")?;
                elements_text(f, elements)
            }
            Command::DeleteElements { set, elements, .. } => {
                write!(f, "delete element inet {t} {set} ")?;
                elements_text(f, elements)
            }
        }
    }
}

/// Removes Palisade's table, if present, and nothing else.
#[must_use]
pub fn cleanup() -> Transaction {
    Transaction { commands: vec![Command::AddTable, Command::DeleteTable] }
}

fn add_set(name: &str, set: &Set, with_elements: bool) -> Command {
    Command::AddSet {
        name: name.to_string(),
        decl: set.decl.clone(),
        elements: if with_elements { set.elements.iter().cloned().collect() } else { Vec::new() },
    }
}

fn add_chain(name: &str, chain: &Chain) -> Command {
    Command::AddChain { name: name.to_string(), base: chain.base }
}

fn add_rules<'a>(name: &'a str, chain: &'a Chain) -> impl Iterator<Item = Command> + 'a {
    chain.rules.iter().map(move |rule| Command::AddRule { chain: name.to_string(), rule: rule.clone() })
}

/// Replaces the whole table with `table` in one transaction.
#[must_use]
pub fn full(table: &Table) -> Transaction {
    let mut tx = Transaction { commands: vec![Command::AddTable, Command::DeleteTable, Command::AddTable] };
    tx.commands.extend(table.counters.iter().map(|c| Command::AddCounter(c.clone())));
    for (name, set) in &table.sets {
        // Verdict maps get their elements after the chains they jump to exist.
        tx.push(add_set(name, set, !set.decl.verdict_map));
    }
    tx.commands.extend(table.chains.iter().map(|(name, chain)| add_chain(name, chain)));
    for (name, chain) in &table.chains {
        tx.commands.extend(add_rules(name, chain));
    }
    for (name, set) in table.sets.iter().filter(|(_, s)| s.decl.verdict_map && !s.elements.is_empty()) {
        tx.push(Command::AddElements {
            set: name.clone(),
            decl: set.decl.clone(),
            elements: set.elements.iter().cloned().collect(),
        });
    }
    tx
}

/// Elements of `a` that `b` lacks.
fn only_in(a: &Set, b: &Set) -> Vec<Element> {
    a.elements.difference(&b.elements).cloned().collect()
}

/// The commands that turn `old` into `new`, or `None` when they are equal.
/// Order: drop references (map elements, chain contents), delete what
/// went away, then add sets, elements, chains, rules and map elements.
#[must_use]
pub fn diff(old: &Table, new: &Table) -> Option<Transaction> {
    if old == new {
        return None;
    }
    let mut tx = Transaction::default();
    let kept_set = |name: &String| old.sets.get(name).zip(new.sets.get(name)).filter(|(o, n)| o.decl == n.decl);
    let elements = |tx: &mut Transaction, add: bool, name: &String, set: &Set, elements: Vec<Element>| {
        if elements.is_empty() {
            return;
        }
        let (set, decl) = (name.clone(), set.decl.clone());
        tx.push(if add {
            Command::AddElements { set, decl, elements }
        } else {
            Command::DeleteElements { set, decl, elements }
        });
    };
    // 1. Remove references: stale map elements, contents of changed or removed chains.
    for (name, o) in old.sets.iter().filter(|(_, s)| s.decl.verdict_map) {
        if let Some((_, n)) = kept_set(name) {
            elements(&mut tx, false, name, o, only_in(o, n));
        }
    }
    let changed_chains: BTreeSet<&String> = old
        .chains
        .iter()
        .filter(|(name, chain)| new.chains.get(*name).is_none_or(|n| n.rules != chain.rules))
        .map(|(n, _)| n)
        .collect();
    for name in &changed_chains {
        tx.push(Command::FlushChain((*name).clone()));
    }
    // 2. Delete what went away.
    for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
        tx.push(Command::DeleteChain(name.clone()));
    }
    for (name, o) in &old.sets {
        match kept_set(name) {
            None => tx.push(Command::DeleteSet { name: name.clone(), verdict_map: o.decl.verdict_map }),
            Some((_, n)) if !o.decl.verdict_map => elements(&mut tx, false, name, o, only_in(o, n)),
            Some(_) => {}
        }
    }
    for name in old.counters.difference(&new.counters) {
        tx.push(Command::DeleteCounter(name.clone()));
    }
    // 3. Add.
    for name in new.counters.difference(&old.counters) {
        tx.push(Command::AddCounter(name.clone()));
    }
    for (name, n) in &new.sets {
        match kept_set(name) {
            None => tx.push(add_set(name, n, !n.decl.verdict_map)),
            Some((o, _)) if !n.decl.verdict_map => elements(&mut tx, true, name, n, only_in(n, o)),
            Some(_) => {}
        }
    }
    for (name, chain) in new.chains.iter().filter(|(n, _)| !old.chains.contains_key(*n)) {
        tx.push(add_chain(name, chain));
    }
    for (name, chain) in &new.chains {
        if !old.chains.contains_key(name) || changed_chains.contains(name) {
            tx.commands.extend(add_rules(name, chain));
        }
    }
    for (name, n) in new.sets.iter().filter(|(_, s)| s.decl.verdict_map) {
        let fresh = match kept_set(name) {
            Some((o, _)) => only_in(n, o),
            None => n.elements.iter().cloned().collect(),
        };
        elements(&mut tx, true, name, n, fresh);
    }
    Some(tx)
}
