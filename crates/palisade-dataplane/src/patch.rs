//! Patching a policy's pod-dependent sets in place: when a recompiled
//! policy keeps the shape of its rules (only peer pods or named-port
//! destinations moved), its chains are unchanged and only elements of its
//! shared `pods4/6` and `named4/6` sets differ (a set shared with other
//! rules holds the same elements for all of them, so patching it once or
//! once per rule leaves the same set). Those differences are found on the
//! compiled data (sorted lists, one merge) and only they are rendered, so a
//! pod entering or leaving a set of thousands costs a few elements, not a
//! re-render of the set.

use std::net::IpAddr;

use palisade_policy::Direction;

use crate::members::NamedEntry;
use crate::program::{PolicyProgram, RuleProgram};
use crate::render::{addr_element, named_element, named_set, pods_set};
use crate::ruleset::{Element, Set, Table};

/// Elements only in `old` and only in `new`; both sorted.
fn delta<T: Ord + Copy>(old: &[T], new: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut gone, mut fresh) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => {
                gone.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                gone.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                fresh.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (gone, fresh)
}

/// Whether two compiled rules render to the same chain rules and sets
/// except for the elements of their pod and named-port sets.
fn same_shape(a: &RuleProgram, b: &RuleProgram) -> bool {
    let peers = match (&a.peers, &b.peers) {
        (None, None) => true,
        (Some(p), Some(q)) => p.pods.is_some() == q.pods.is_some() && p.pods_id == q.pods_id && p.blocks == q.blocks,
        _ => false,
    };
    let ports = match (&a.ports, &b.ports) {
        (None, None) => true,
        (Some(p), Some(q)) => p.numeric == q.numeric && p.has_named == q.has_named && p.named_id == q.named_id,
        _ => false,
    };
    peers && ports
}

/// The element changes of one set (which `table` has), recorded into the
/// before/after parts of the transaction and applied to `table`.
pub(crate) fn patch_set(
    table: &mut Table,
    name: &str,
    gone: Vec<Element>,
    fresh: Vec<Element>,
    before: &mut Table,
    after: &mut Table,
) {
    let Some(set) = table.sets.get_mut(name) else { return };
    let part = |elements: Vec<Element>| Set { decl: set.decl.clone(), elements: elements.into_iter().collect() };
    let (old, new) = (part(gone), part(fresh));
    for e in &old.elements {
        set.elements.remove(e);
    }
    set.elements.extend(new.elements.iter().cloned());
    before.sets.insert(name.to_string(), old);
    after.sets.insert(name.to_string(), new);
}

/// Patches policy `name` from `old` to `new` in `table`, adding the element
/// changes to `before`/`after` (the parts a diff turns into the
/// transaction). Returns `false`, touching nothing, when the shape changed
/// (the caller re-renders the policy then).
pub(crate) fn patch_policy(
    table: &mut Table,
    old: &PolicyProgram,
    new: &PolicyProgram,
    before: &mut Table,
    after: &mut Table,
) -> bool {
    let shaped = Direction::BOTH.iter().all(|dir| {
        let (a, b) = (old.rules(*dir), new.rules(*dir));
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y))
    });
    if !shaped {
        return false;
    }
    // Collect first, then check every set is there, then apply: a surprise
    // leaves everything untouched.
    let mut patches: Vec<(String, Vec<Element>, Vec<Element>)> = Vec::new();
    for dir in Direction::BOTH {
        for (x, y) in old.rules(dir).iter().zip(new.rules(dir)) {
            for v6 in [false, true] {
                let pods = |r: &RuleProgram| -> Option<Vec<IpAddr>> {
                    let ips = r.peers.as_ref()?.pods.as_deref()?;
                    Some(ips.iter().copied().filter(|a| a.is_ipv6() == v6).collect())
                };
                if let (Some(p), Some(q)) = (pods(x), pods(y)) {
                    let (gone, fresh) = delta(&p, &q);
                    if !gone.is_empty() || !fresh.is_empty() {
                        let render = |v: Vec<IpAddr>| v.into_iter().map(addr_element).collect();
                        let id = &y.peers.as_ref().map(|p| p.pods_id.as_str()).unwrap_or_default();
                        patches.push((pods_set(id, v6), render(gone), render(fresh)));
                    }
                }
                let named = |r: &RuleProgram| -> Option<Vec<NamedEntry>> {
                    Some(r.ports.as_ref()?.named.iter().copied().filter(|e| e.0.is_ipv6() == v6).collect())
                };
                if let (Some(p), Some(q)) = (named(x), named(y)) {
                    let (gone, fresh) = delta(&p, &q);
                    if !gone.is_empty() || !fresh.is_empty() {
                        let render = |v: Vec<NamedEntry>| v.into_iter().map(named_element).collect();
                        let id = &y.ports.as_ref().map(|p| p.named_id.as_str()).unwrap_or_default();
                        patches.push((named_set(id, v6), render(gone), render(fresh)));
                    }
                }
            }
        }
    }
    if !patches.iter().all(|(set, ..)| table.sets.contains_key(set)) {
        return false;
    }
    for (set, gone, fresh) in patches {
        patch_set(table, &set, gone, fresh, before, after);
    }
    true
}
