//! The base chain's rules for pods not programmed yet, and for TCP packets
//! that would open a connection in mid-stream.
//!
//! ```text
//! chain egress (first rules):
//!   ip  daddr != @programmed4 jump unprogrammed
//!   ip6 daddr != @programmed6 jump unprogrammed
//!   (anti-spoofing: a packet not from a programmed pod's own interface and
//!    address jumps to `spoofed`, which now also drops it when it came in on
//!    a pod interface or from the node's pod ranges)
//!   ct state established accept; ct state related jump related
//!   ct state new tcp flags & (fin|syn|rst|ack) != syn jump midstream
//! chain midstream:
//!   ip saddr @programmed4 counter name "midstream" drop
//!   … the same for daddr, and for IPv6
//! chain unprogrammed (a destination that is no programmed pod):
//!   oifname "<prefix>*" counter name "unprogrammed" drop   one per pod-interface prefix
//!   ip  daddr @gate-cidrs4 counter name "unprogrammed" drop
//!   ip6 daddr @gate-cidrs6 counter name "unprogrammed" drop
//! ```
//!
//! The gate drops a packet whose destination is no programmed pod and that
//! leaves on a pod interface or is addressed to the node's pod ranges. The
//! programmed set is tested first because every packet meets these rules,
//! established ones included: a packet to a programmed pod, the common
//! case, costs one hash lookup (the interface names and the interval set of
//! the ranges are tested only for the others).
//!
//! The mid-stream rules make revocation stick: once a connection's entry
//! is deleted, the next packet of either end is `ct state new` (with
//! `nf_conntrack_tcp_loose`, the kernel default) but no SYN. Without them
//! a packet of the end the policies still let send would create a new
//! entry for the reverse direction, and the other end's packets would ride
//! on it as replies.

use std::collections::BTreeSet;

use crate::program::Program;
use crate::ranges::v4;
use crate::render::addr_element;
use crate::ruleset::{
    AddrField, Chain, CtStates, Datum, Element, Expr, Key, KeyType, Part, Rule, Set, SetDecl, Statement, Table, Verdict,
};

/// The chain of packets to an address that is no programmed pod.
pub const UNPROGRAMMED_CHAIN: &str = "unprogrammed";
/// The counter of packets the gate dropped.
pub const UNPROGRAMMED_COUNTER: &str = "unprogrammed";
/// The counter of TCP packets dropped for opening a connection mid-stream.
pub const MIDSTREAM_COUNTER: &str = "midstream";

fn programmed_set(v6: bool) -> String {
    format!("programmed{}", if v6 { 6 } else { 4 })
}

fn cidr_set(v6: bool) -> String {
    format!("gate-cidrs{}", if v6 { 6 } else { 4 })
}

fn drop_counted(counter: &str) -> [Statement; 2] {
    [Statement::Counter(counter.into()), Statement::Verdict(Verdict::Drop)]
}

/// The sets of every local pod's addresses (`programmed4`, `programmed6`)
/// and of the gate's ranges; the rules that come before anti-spoofing.
pub(crate) fn gate_rules(program: &Program, r: &mut Table) -> Vec<Rule> {
    let mut programmed: [BTreeSet<Element>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for pod in program.pods.values() {
        for addr in &pod.addrs {
            programmed[usize::from(addr.is_ipv6())].insert(addr_element(*addr));
        }
    }
    for v6 in [false, true] {
        let elements = std::mem::take(&mut programmed[usize::from(v6)]);
        r.sets.insert(programmed_set(v6), Set { decl: SetDecl::set(vec![KeyType::addr(v6)], false), elements });
    }
    r.counters.insert(MIDSTREAM_COUNTER.into());
    let gate = &program.gate;
    if !gate.is_on() {
        return Vec::new();
    }
    r.counters.insert(UNPROGRAMMED_COUNTER.into());
    let mut chain: Vec<Rule> = gate
        .interface_prefixes
        .iter()
        .map(|prefix| {
            Rule(
                [
                    vec![Statement::IfnamePrefix { out: true, prefix: prefix.clone() }],
                    drop_counted(UNPROGRAMMED_COUNTER).to_vec(),
                ]
                .concat(),
            )
        })
        .collect();
    let mut rules = Vec::new();
    for v6 in [false, true] {
        rules.push(Rule(vec![
            Statement::Lookup { left: vec![Expr::addr(v6, AddrField::Daddr)], set: programmed_set(v6), negated: true },
            Statement::Verdict(Verdict::Jump(UNPROGRAMMED_CHAIN.into())),
        ]));
        let ranges: BTreeSet<Element> = if v6 {
            gate.cidrs
                .v6
                .iter()
                .map(|(a, b)| {
                    range(Datum::Addr(crate::ranges::v6(*a).into()), Datum::Addr(crate::ranges::v6(*b).into()))
                })
                .collect()
        } else {
            gate.cidrs.v4.iter().map(|(a, b)| range(Datum::Addr(v4(*a).into()), Datum::Addr(v4(*b).into()))).collect()
        };
        if ranges.is_empty() {
            continue;
        }
        r.sets.insert(cidr_set(v6), Set { decl: SetDecl::set(vec![KeyType::addr(v6)], true), elements: ranges });
        chain.push(Rule(
            [
                vec![Statement::lookup(vec![Expr::addr(v6, AddrField::Daddr)], cidr_set(v6))],
                drop_counted(UNPROGRAMMED_COUNTER).to_vec(),
            ]
            .concat(),
        ));
    }
    r.chains.insert(UNPROGRAMMED_CHAIN.into(), Chain { base: None, rules: chain });
    rules
}

fn range(a: Datum, b: Datum) -> Element {
    Element::key(Key::One(Part::range(a, b)))
}

/// The `spoofed` chain's rules for the gate: a packet that is not from a
/// programmed pod's own interface and address, arriving on a pod interface
/// or from the node's pod ranges.
pub(crate) fn spoofed_gate_rules(program: &Program) -> Vec<Rule> {
    let gate = &program.gate;
    let mut rules: Vec<Rule> = gate
        .interface_prefixes
        .iter()
        .map(|prefix| {
            Rule(
                [
                    vec![Statement::IfnamePrefix { out: false, prefix: prefix.clone() }],
                    drop_counted(UNPROGRAMMED_COUNTER).to_vec(),
                ]
                .concat(),
            )
        })
        .collect();
    for (v6, empty) in [(false, gate.cidrs.v4.is_empty()), (true, gate.cidrs.v6.is_empty())] {
        if !empty {
            rules.push(Rule(
                [
                    vec![Statement::lookup(vec![Expr::addr(v6, AddrField::Saddr)], cidr_set(v6))],
                    drop_counted(UNPROGRAMMED_COUNTER).to_vec(),
                ]
                .concat(),
            ));
        }
    }
    rules
}

/// The chain of TCP packets that would open a connection in mid-stream.
pub const MIDSTREAM_CHAIN: &str = "midstream";

/// The mid-stream rule, after the conntrack rules: one test for the first
/// packet of every connection (a SYN fails it at the flags), and the chain
/// that drops such a packet from or to a programmed pod.
pub(crate) fn midstream_rules(r: &mut Table) -> Vec<Rule> {
    let mut chain = Vec::new();
    for v6 in [false, true] {
        for field in [AddrField::Saddr, AddrField::Daddr] {
            chain.push(Rule(
                [
                    vec![Statement::lookup(vec![Expr::addr(v6, field)], programmed_set(v6))],
                    drop_counted(MIDSTREAM_COUNTER).to_vec(),
                ]
                .concat(),
            ));
        }
    }
    r.chains.insert(MIDSTREAM_CHAIN.into(), Chain { base: None, rules: chain });
    vec![Rule(vec![
        Statement::CtState(CtStates::NEW),
        Statement::TcpNotSyn,
        Statement::Verdict(Verdict::Jump(MIDSTREAM_CHAIN.into())),
    ])]
}

/// Whether the anti-spoofing rules must exist although no pod interface is
/// known (the gate drops unknown senders on pod interfaces).
pub(crate) fn needs_spoof_chain(program: &Program) -> bool {
    program.gate.is_on()
}
