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

use palisade_dataplane::render::{SPOOF_COUNTER, conntrack_rule};
use palisade_dataplane::ruleset::{Chain, Hook, Rule, Statement, Table, Verdict};
use palisade_dataplane::transaction::{Transaction, full};

fn is_spoof_rule(rule: &Rule) -> bool {
    rule.0.iter().any(|s| matches!(s, Statement::Counter(c) if c == SPOOF_COUNTER))
}

/// A table holding one base chain with the conntrack rule alone (what any
/// stateful firewall on a Kubernetes node costs): the realistic baseline.
pub(super) fn conntrack_only() -> Table {
    let mut table = Table::default();
    table.chains.insert("ct".into(), Chain { base: Some((Hook::Forward, 0)), rules: vec![conntrack_rule()] });
    table
}

/// The baseline plus `palisade`'s anti-spoofing rules and their sets.
fn with_anti_spoofing(palisade: &Table) -> Table {
    let mut table = conntrack_only();
    let spoof: Vec<Rule> = palisade
        .chains
        .get("egress")
        .map(|c| c.rules.iter().filter(|r| is_spoof_rule(r)).cloned().collect())
        .unwrap_or_default();
    for rule in &spoof {
        for s in &rule.0 {
            if let Statement::Lookup { set, .. } = s
                && let Some(found) = palisade.sets.get(set)
            {
                table.sets.insert(set.clone(), found.clone());
            }
        }
    }
    table.counters.insert(SPOOF_COUNTER.into());
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
    use palisade_dataplane::ruleset::{KeyType, Set, SetDecl};

    #[test]
    fn variants_keep_exactly_their_part() {
        let mut palisade = Table::default();
        let spoof = Rule(vec![
            Statement::lookup(vec![palisade_dataplane::ruleset::Expr::Iifname], "pod-ifaces"),
            Statement::Counter(SPOOF_COUNTER.into()),
            Statement::Verdict(Verdict::Drop),
        ]);
        palisade.sets.insert(
            "pod-ifaces".into(),
            Set { decl: SetDecl::set(vec![KeyType::Ifname], false), elements: std::collections::BTreeSet::new() },
        );
        palisade.chains.insert(
            "egress".into(),
            Chain { base: Some((Hook::Forward, -5)), rules: vec![spoof.clone(), conntrack_rule()] },
        );
        palisade
            .chains
            .insert("pod/x/a/ingress".into(), Chain { base: None, rules: vec![conntrack_rule(), conntrack_rule()] });
        let spoofing = with_anti_spoofing(&palisade);
        assert_eq!(spoofing.chains["ct"].rules, vec![spoof, conntrack_rule()]);
        assert!(spoofing.sets.contains_key("pod-ifaces") && spoofing.chains.len() == 1);
        let dispatch = dispatch_only(&palisade);
        assert_eq!(dispatch.chains["pod/x/a/ingress"].rules, vec![Rule(vec![Statement::Verdict(Verdict::Accept)])]);
        assert_eq!(dispatch.chains["egress"], palisade.chains["egress"]);
    }
}
