//! `palisade lab bench --attribution`: where Palisade's cost per new
//! connection goes, against the conntrack-only table. Each variant is
//! derived from the real program (the typed table), so it measures exactly
//! the part it leaves out:
//!
//! | variant | what it has |
//! |---|---|
//! | conntrack only | the baseline of every Kubernetes node |
//! | + anti-spoofing | the baseline plus Palisade's anti-spoofing rules and sets (every packet pays them) |
//! | + dispatch | Palisade's table with every pod chain accepting at once: anti-spoofing, both base chains and the verdict-map dispatch, no policy evaluated |
//! | Palisade | the whole program: the policies evaluated for each new connection |
//!
//! Rounds alternate the variants in a rotating order, each from an empty
//! conntrack table; ratios are taken within each round.

use palisade_dataplane::render::{SPOOF_CHAIN, SPOOF_COUNTER, conntrack_rule};
use palisade_dataplane::ruleset::{Chain, Hook, Rule, Statement, Table, Verdict};
use palisade_dataplane::transaction::{Transaction, full};

fn is_spoof_rule(rule: &Rule) -> bool {
    rule.0.iter().any(|s| matches!(s, Statement::Verdict(Verdict::Jump(c)) if c == SPOOF_CHAIN))
}

/// A table holding one base chain with the conntrack rule alone (what any
/// stateful firewall on a Kubernetes node costs): the realistic baseline.
pub(super) fn conntrack_only() -> Table {
    let mut table = Table::default();
    table.chains.insert("ct".into(), Chain { base: Some((Hook::Forward, 0)), rules: vec![conntrack_rule()] });
    table
}

/// The baseline plus `palisade`'s anti-spoofing rules, their chain and
/// their sets.
fn with_anti_spoofing(palisade: &Table) -> Table {
    let mut table = conntrack_only();
    let spoof: Vec<Rule> = palisade
        .chains
        .get("egress")
        .map(|c| c.rules.iter().filter(|r| is_spoof_rule(r)).cloned().collect())
        .unwrap_or_default();
    let checks = palisade.chains.get(SPOOF_CHAIN).cloned().unwrap_or_default();
    for rule in spoof.iter().chain(&checks.rules) {
        for s in &rule.0 {
            if let Statement::Lookup { set, .. } = s
                && let Some(found) = palisade.sets.get(set)
            {
                table.sets.insert(set.clone(), found.clone());
            }
        }
    }
    if !spoof.is_empty() {
        table.chains.insert(SPOOF_CHAIN.into(), checks);
        table.counters.insert(SPOOF_COUNTER.into());
    }
    let chain = table.chains.get_mut("ct").expect("the baseline's chain");
    chain.rules.splice(0..0, spoof);
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

/// The variants, baseline first, as full transactions.
pub(super) fn variants(palisade: &Table) -> Vec<(&'static str, Transaction)> {
    vec![
        ("conntrack only", full(&conntrack_only())),
        ("+ anti-spoofing", full(&with_anti_spoofing(palisade))),
        ("+ dispatch", full(&dispatch_only(palisade))),
        ("Palisade", full(palisade)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dataplane::program::{LocalPod, Program};
    use palisade_policy::ObjectKey;

    #[test]
    fn variants_keep_exactly_their_part() {
        let mut program = Program::default();
        let pod = LocalPod {
            addrs: vec!["10.0.1.1".parse().expect("ip"), "fd00::1:1".parse().expect("ip")],
            iface: Some("pv0".into()),
            ingress: Some(Vec::new()),
            egress: None,
            ..LocalPod::default()
        };
        program.pods.insert(ObjectKey::pod("x", "a"), pod);
        let palisade = palisade_dataplane::render::render(&program);
        let spoofing = with_anti_spoofing(&palisade);
        let rules = &spoofing.chains["ct"].rules;
        assert_eq!(rules.len(), 3, "one jump per family, then the conntrack rule: {rules:?}");
        assert!(rules[..2].iter().all(is_spoof_rule) && rules[2] == conntrack_rule());
        assert_eq!(spoofing.chains[SPOOF_CHAIN], palisade.chains[SPOOF_CHAIN]);
        let sets: Vec<&str> = spoofing.sets.keys().map(String::as_str).collect();
        assert_eq!(sets, ["local-addrs4", "local-addrs6", "pod-addrs4", "pod-addrs6", "pod-ifaces"]);
        assert_eq!(spoofing.chains.len(), 2, "the baseline's chain and the checks");
        let dispatch = dispatch_only(&palisade);
        assert_eq!(dispatch.chains["pod/x/a/ingress"].rules, vec![Rule(vec![Statement::Verdict(Verdict::Accept)])]);
        assert_eq!(dispatch.chains["egress"], palisade.chains["egress"]);
    }
}
