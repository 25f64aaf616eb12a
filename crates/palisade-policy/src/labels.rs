//! Interned labels and compiled selectors: matching without string compares.
//!
//! Every label key and value the index sees is interned to a [`Sym`]. Label
//! sets become short sorted slices of `(key, value)` symbols and selectors
//! become slices of symbol tests, so matching a selector is a handful of
//! integer comparisons.

use rustc_hash::FxHashMap;

use crate::model::{LabelSelector, Labels, Operator};

/// An interned string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(u32);

impl Sym {
    /// A symbol no interned string has: a value the index has never seen.
    pub const UNKNOWN: Sym = Sym(u32::MAX);
}

/// String interner for label keys and values.
#[derive(Debug, Default)]
pub struct Interner {
    ids: FxHashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
}

impl Interner {
    /// The symbol for `s`, interning it if new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.ids.get(s) {
            return sym;
        }
        let sym = Sym(u32::try_from(self.names.len()).expect("fewer than 2^32 distinct label strings"));
        self.names.push(s.into());
        self.ids.insert(s.into(), sym);
        sym
    }

    /// The symbol for `s` if it was interned.
    #[must_use]
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    /// The string behind `sym`.
    #[must_use]
    pub fn resolve(&self, sym: Sym) -> &str {
        self.names.get(sym.0 as usize).map_or("", |s| s)
    }
}

/// A compiled label set: `(key, value)` symbols sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CompiledLabels(Box<[(Sym, Sym)]>);

impl CompiledLabels {
    /// Interns and compiles `labels`.
    pub fn compile(labels: &Labels, interner: &mut Interner) -> Self {
        let mut pairs: Vec<(Sym, Sym)> = labels.iter().map(|(k, v)| (interner.intern(k), interner.intern(v))).collect();
        pairs.sort_unstable();
        CompiledLabels(pairs.into_boxed_slice())
    }

    /// Compiles `labels` without interning: keys never interned are dropped
    /// (no selector can name them) and unseen values become [`Sym::UNKNOWN`].
    #[must_use]
    pub fn lookup(labels: &Labels, interner: &Interner) -> Self {
        let mut pairs: Vec<(Sym, Sym)> = labels
            .iter()
            .filter_map(|(k, v)| Some((interner.get(k)?, interner.get(v).unwrap_or(Sym::UNKNOWN))))
            .collect();
        pairs.sort_unstable();
        CompiledLabels(pairs.into_boxed_slice())
    }

    /// The `(key, value)` pairs.
    #[must_use]
    pub fn pairs(&self) -> &[(Sym, Sym)] {
        &self.0
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: Sym) -> Option<Sym> {
        // Label sets are small: a linear scan beats a binary search here.
        self.0.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

/// One compiled `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CompiledRequirement {
    In(Sym, Box<[Sym]>),
    NotIn(Sym, Box<[Sym]>),
    Exists(Sym),
    DoesNotExist(Sym),
}

/// A compiled label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledSelector {
    labels: Box<[(Sym, Sym)]>,
    exprs: Box<[CompiledRequirement]>,
}

impl CompiledSelector {
    /// Interns and compiles `selector`.
    pub fn compile(selector: &LabelSelector, interner: &mut Interner) -> Self {
        let labels = selector.match_labels.iter().map(|(k, v)| (interner.intern(k), interner.intern(v))).collect();
        let exprs = selector
            .match_expressions
            .iter()
            .map(|r| {
                let key = interner.intern(&r.key);
                let mut values = || r.values.iter().map(|v| interner.intern(v)).collect::<Box<[Sym]>>();
                match r.operator {
                    Operator::In => CompiledRequirement::In(key, values()),
                    Operator::NotIn => CompiledRequirement::NotIn(key, values()),
                    Operator::Exists => CompiledRequirement::Exists(key),
                    Operator::DoesNotExist => CompiledRequirement::DoesNotExist(key),
                }
            })
            .collect();
        CompiledSelector { labels, exprs }
    }

    /// True when the selector selects everything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.exprs.is_empty()
    }

    /// Whether `labels` satisfy the selector.
    #[must_use]
    pub fn matches(&self, labels: &CompiledLabels) -> bool {
        self.labels.iter().all(|&(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|req| match req {
                CompiledRequirement::In(k, vs) => labels.get(*k).is_some_and(|v| vs.contains(&v)),
                CompiledRequirement::NotIn(k, vs) => labels.get(*k).is_none_or(|v| !vs.contains(&v)),
                CompiledRequirement::Exists(k) => labels.get(*k).is_some(),
                CompiledRequirement::DoesNotExist(k) => labels.get(*k).is_none(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Requirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement { key: key.into(), operator, values: values.iter().map(|v| (*v).to_string()).collect() }
    }

    #[test]
    fn compiled_selector_agrees_with_the_definition() {
        // (selector, labels, expected, why) — expected values from the
        // Kubernetes label selector documentation.
        let cases: Vec<(LabelSelector, Labels, bool, &str)> = vec![
            (LabelSelector::default(), labels(&[]), true, "empty selector selects everything"),
            (
                LabelSelector { match_labels: labels(&[("app", "a")]), ..Default::default() },
                labels(&[("app", "a"), ("x", "y")]),
                true,
                "matchLabels subset",
            ),
            (
                LabelSelector { match_labels: labels(&[("app", "a")]), ..Default::default() },
                labels(&[("app", "b")]),
                false,
                "matchLabels wrong value",
            ),
            (
                LabelSelector { match_expressions: vec![req("env", Operator::In, &["a", "b"])], ..Default::default() },
                labels(&[("env", "b")]),
                true,
                "In matches a listed value",
            ),
            (
                LabelSelector { match_expressions: vec![req("env", Operator::In, &["a"])], ..Default::default() },
                labels(&[]),
                false,
                "In needs the key",
            ),
            (
                LabelSelector { match_expressions: vec![req("env", Operator::NotIn, &["a"])], ..Default::default() },
                labels(&[]),
                true,
                "NotIn matches an absent key",
            ),
            (
                LabelSelector { match_expressions: vec![req("env", Operator::NotIn, &["a"])], ..Default::default() },
                labels(&[("env", "a")]),
                false,
                "NotIn rejects a listed value",
            ),
            (
                LabelSelector { match_expressions: vec![req("env", Operator::Exists, &[])], ..Default::default() },
                labels(&[("env", "")]),
                true,
                "Exists with empty value",
            ),
            (
                LabelSelector {
                    match_expressions: vec![req("env", Operator::DoesNotExist, &[])],
                    ..Default::default()
                },
                labels(&[("env", "x")]),
                false,
                "DoesNotExist with the key present",
            ),
        ];
        for (selector, pod_labels, expected, why) in cases {
            let mut interner = Interner::default();
            let compiled = CompiledSelector::compile(&selector, &mut interner);
            let plain = selector.matches(&pod_labels);
            assert_eq!(plain, expected, "uncompiled: {why}");
            assert_eq!(
                compiled.matches(&CompiledLabels::compile(&pod_labels, &mut interner)),
                expected,
                "compiled: {why}"
            );
            assert_eq!(compiled.matches(&CompiledLabels::lookup(&pod_labels, &interner)), expected, "lookup: {why}");
        }
    }
}
