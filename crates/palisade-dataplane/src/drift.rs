//! What differs between the table Palisade applied and the one the kernel
//! holds: every chain, rule, set, element and counter compared exactly, so
//! that a rule's verdict turned from `drop` to `accept`, an element swapped
//! for another address or a verdict-map element pointed at another chain
//! is found, not only a changed count.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use crate::json::ListedTable;
use crate::ruleset::Table;

/// At most this many items are named per difference.
const NAMED: usize = 3;

fn some<T: Display>(items: &[&T]) -> String {
    let named: Vec<String> = items.iter().take(NAMED).map(|i| format!("`{i}`")).collect();
    let more = items.len().saturating_sub(NAMED);
    if more == 0 { named.join(", ") } else { format!("{}, and {more} more", named.join(", ")) }
}

/// Objects present on one side only, by kind.
fn presence<'a, V>(
    kind: &str,
    expected: &'a BTreeMap<String, V>,
    found: &'a BTreeMap<String, V>,
    out: &mut Vec<String>,
) {
    for name in expected.keys().filter(|n| !found.contains_key(*n)) {
        out.push(format!("{kind} {name}: missing"));
    }
    for name in found.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(format!("{kind} {name}: not Palisade's"));
    }
}

/// Every difference between `expected` (what was applied) and `found`
/// (what the kernel lists), one line each: empty when they are equal.
#[must_use]
pub fn differences(expected: &Table, found: &ListedTable) -> Vec<String> {
    let mut out: Vec<String> = found.unreadable.iter().map(|u| format!("unreadable: {u}")).collect();
    let table = &found.table;
    presence("chain", &expected.chains, &table.chains, &mut out);
    for (name, want) in &expected.chains {
        let Some(got) = table.chains.get(name) else { continue };
        if want.base != got.base {
            out.push(format!("chain {name}: hook {:?}, expected {:?}", got.base, want.base));
        }
        if want.rules.len() != got.rules.len() {
            out.push(format!("chain {name}: {} rules, expected {}", got.rules.len(), want.rules.len()));
        }
        for (i, (w, g)) in want.rules.iter().zip(&got.rules).enumerate() {
            if w != g {
                out.push(format!("chain {name}: rule {i} is `{g}`, expected `{w}`"));
            }
        }
    }
    presence("set", &expected.sets, &table.sets, &mut out);
    for (name, want) in &expected.sets {
        let Some(got) = table.sets.get(name) else { continue };
        if want.decl != got.decl {
            out.push(format!("set {name}: declared {:?}, expected {:?}", got.decl, want.decl));
            continue;
        }
        if want.elements != got.elements {
            let missing: Vec<_> = want.elements.difference(&got.elements).collect();
            let extra: Vec<_> = got.elements.difference(&want.elements).collect();
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("{} missing ({})", missing.len(), some(&missing)));
            }
            if !extra.is_empty() {
                parts.push(format!("{} not Palisade's ({})", extra.len(), some(&extra)));
            }
            out.push(format!("set {name}: elements {}", parts.join("; ")));
        }
    }
    let (want, got): (&BTreeSet<String>, &BTreeSet<String>) = (&expected.counters, &table.counters);
    for name in want.difference(got) {
        out.push(format!("counter {name}: missing"));
    }
    for name in got.difference(want) {
        out.push(format!("counter {name}: not Palisade's"));
    }
    out
}
