//! `palisade lab bench --attribution`: where Palisade's cost per new
//! connection goes, against the conntrack-only table. Each variant is
//! derived from the real program (the typed table), so it measures exactly
//! the part it leaves out:
//!
//! | variant | what it has |
//! |---|---|
//! | conntrack only | the baseline of every Kubernetes node |
//! | + anti-spoofing | the baseline plus Palisade's anti-spoofing rules, chain and sets (every packet pays them) |
//! | + new-pod gate | and the gate's rules, chain and sets (every packet pays them too) |
//! | + dispatch | Palisade's table with every pod chain accepting at once: anti-spoofing, the gate, both base chains and the verdict-map dispatch, no policy evaluated |
//! | Palisade | the whole program: the policies evaluated for each new connection |
//!
//! Rounds alternate the variants in a rotating order, each from an empty
//! conntrack table; ratios are taken within each round.

use std::collections::BTreeSet;

use palisade_dataplane::render::{SPOOF_CHAIN, conntrack_rule};
use palisade_dataplane::render_gate::UNPROGRAMMED_CHAIN;
use palisade_dataplane::ruleset::{Chain, Hook, Rule, Statement, Table, Verdict};
use palisade_dataplane::transaction::{Transaction, full};

/// Whether `rule` jumps to `chain`.
fn jumps_to(rule: &Rule, chain: &str) -> bool {
    rule.0.iter().any(|s| matches!(s, Statement::Verdict(Verdict::Jump(c)) if c == chain))
}

fn is_spoof_rule(rule: &Rule) -> bool {
    jumps_to(rule, SPOOF_CHAIN)
}

fn is_gate_rule(rule: &Rule) -> bool {
    jumps_to(rule, UNPROGRAMMED_CHAIN)
}

/// A table holding one base chain with the conntrack rule alone (what any
/// stateful firewall on a Kubernetes node costs): the realistic baseline.
pub(super) fn conntrack_only() -> Table {
    let mut table = Table::default();
    table.chains.insert("ct".into(), Chain { base: Some((Hook::Forward, 0)), rules: vec![conntrack_rule()] });
    table
}

/// The baseline plus the rules of `palisade`'s egress base chain that
/// `keep` picks (in their order, before the conntrack rule), with the
/// chains they jump to and every set and counter those rules name.
fn baseline_plus(palisade: &Table, keep: impl Fn(&Rule) -> bool) -> Table {
    let mut table = conntrack_only();
    let picked: Vec<Rule> = palisade
        .chains
        .get("egress")
        .map(|c| c.rules.iter().filter(|r| keep(r)).cloned().collect())
        .unwrap_or_default();
    let jumped: BTreeSet<&String> = picked
        .iter()
        .flat_map(|r| &r.0)
        .filter_map(|s| match s {
            Statement::Verdict(Verdict::Jump(c)) => Some(c),
            _ => None,
        })
        .collect();
    let reached: Vec<&Rule> = picked
        .iter()
        .chain(jumped.iter().filter_map(|name| palisade.chains.get(*name)).flat_map(|c| &c.rules))
        .collect();
    for s in reached.iter().flat_map(|r| &r.0) {
        match s {
            Statement::Lookup { set, .. } => {
                if let Some(found) = palisade.sets.get(set) {
                    table.sets.insert(set.clone(), found.clone());
                }
            }
            Statement::Counter(name) => {
                table.counters.insert(name.clone());
            }
            _ => {}
        }
    }
    for name in jumped {
        if let Some(chain) = palisade.chains.get(name) {
            table.chains.insert(name.clone(), chain.clone());
        }
    }
    let chain = table.chains.get_mut("ct").expect("the baseline's chain");
    chain.rules.splice(0..0, picked);
    table
}

/// `palisade` with every pod chain accepting at once: everything but the
/// policies' evaluation.
fn dispatch_only(palisade: &Table) -> Table {
    let mut table = palisade.clone();
    for (name, chain) in &mut table.chains {
        if name.starts_with("pod/") {
            chain.rules = vec![Rule(vec![Statement::Verdict(Verdict::Accept)])];
        }
    }
    table
}

/// The variants, baseline first, as full transactions. The gate's step is
/// left out when the program has no gate.
pub(super) fn variants(palisade: &Table) -> Vec<(&'static str, Transaction)> {
    let mut variants = vec![
        ("conntrack only", full(&conntrack_only())),
        ("+ anti-spoofing", full(&baseline_plus(palisade, is_spoof_rule))),
    ];
    if palisade.chains.contains_key(UNPROGRAMMED_CHAIN) {
        variants.push(("+ new-pod gate", full(&baseline_plus(palisade, |r| is_spoof_rule(r) || is_gate_rule(r)))));
    }
    variants.push(("+ dispatch", full(&dispatch_only(palisade))));
    variants.push(("Palisade", full(palisade)));
    variants
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dataplane::program::{LocalPod, PodGate, Program};
    use palisade_dataplane::render::SPOOF_COUNTER;
    use palisade_dataplane::render_gate::UNPROGRAMMED_COUNTER;
    use palisade_policy::ObjectKey;

    fn program(gate: bool) -> Table {
        let mut program = Program::default();
        let pod = LocalPod {
            addrs: vec!["10.0.1.1".parse().expect("ip"), "fd00::1:1".parse().expect("ip")],
            iface: Some("pv0".into()),
            ingress: Some(Vec::new()),
            egress: None,
            ..LocalPod::default()
        };
        program.pods.insert(ObjectKey::pod("x", "a"), pod);
        if gate {
            program.gate = PodGate { interface_prefixes: vec!["pv".into()], ..PodGate::default() };
        }
        palisade_dataplane::render::render(&program)
    }

    /// Every chain a rule jumps to, and every set and counter it names,
    /// is in the table (else the kernel refuses the variant).
    fn assert_self_contained(table: &Table) {
        for s in table.chains.values().flat_map(|c| &c.rules).flat_map(|r| &r.0) {
            match s {
                Statement::Verdict(Verdict::Jump(c)) => assert!(table.chains.contains_key(c), "chain {c}"),
                Statement::Lookup { set, .. } => assert!(table.sets.contains_key(set), "set {set}"),
                Statement::Counter(c) => assert!(table.counters.contains(c), "counter {c}"),
                _ => {}
            }
        }
    }

    #[test]
    fn variants_keep_exactly_their_part() {
        let palisade = program(false);
        let spoofing = baseline_plus(&palisade, is_spoof_rule);
        let rules = &spoofing.chains["ct"].rules;
        assert_eq!(rules.len(), 3, "one jump per family, then the conntrack rule: {rules:?}");
        assert!(rules[..2].iter().all(is_spoof_rule) && rules[2] == conntrack_rule());
        assert_eq!(spoofing.chains[SPOOF_CHAIN], palisade.chains[SPOOF_CHAIN]);
        let sets: Vec<&str> = spoofing.sets.keys().map(String::as_str).collect();
        assert_eq!(sets, ["local-addrs4", "local-addrs6", "pod-addrs4", "pod-addrs6", "pod-ifaces"]);
        assert_eq!(spoofing.chains.len(), 2, "the baseline's chain and the checks");
        assert_self_contained(&spoofing);
        let dispatch = dispatch_only(&palisade);
        assert_eq!(dispatch.chains["pod/x/a/ingress"].rules, vec![Rule(vec![Statement::Verdict(Verdict::Accept)])]);
        assert_eq!(dispatch.chains["egress"], palisade.chains["egress"]);
        let names: Vec<&str> = variants(&palisade).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["conntrack only", "+ anti-spoofing", "+ dispatch", "Palisade"]);
    }

    /// With the gate on (the agent's default), the anti-spoofing chain
    /// counts gate drops too: its counter comes along (the variant was
    /// refused by the kernel without it), and the gate is a step of its own.
    #[test]
    fn with_the_gate_each_variant_is_whole_and_the_gate_is_a_step() {
        let palisade = program(true);
        let spoofing = baseline_plus(&palisade, is_spoof_rule);
        assert_self_contained(&spoofing);
        assert!(spoofing.counters.contains(SPOOF_COUNTER) && spoofing.counters.contains(UNPROGRAMMED_COUNTER));
        assert!(!spoofing.chains.contains_key(UNPROGRAMMED_CHAIN));
        let gated = baseline_plus(&palisade, |r| is_spoof_rule(r) || is_gate_rule(r));
        assert_self_contained(&gated);
        assert_eq!(gated.chains[UNPROGRAMMED_CHAIN], palisade.chains[UNPROGRAMMED_CHAIN]);
        let egress: Vec<&Rule> =
            palisade.chains["egress"].rules.iter().filter(|r| is_spoof_rule(r) || is_gate_rule(r)).collect();
        assert_eq!(gated.chains["ct"].rules.iter().take(egress.len()).collect::<Vec<_>>(), egress, "in their order");
        assert_eq!(gated.chains["ct"].rules.last(), Some(&conntrack_rule()));
        let names: Vec<&str> = variants(&palisade).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["conntrack only", "+ anti-spoofing", "+ new-pod gate", "+ dispatch", "Palisade"]);
    }
}
