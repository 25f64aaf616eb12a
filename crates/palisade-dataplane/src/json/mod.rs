//! `nft -j` JSON (libnftables-json(5)): the serializer of typed
//! transactions, golden-tested and readable in logs, and the reader of
//! `nft -j list table` listings. The only place in the dataplane where
//! JSON is built or read.

mod read;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::ruleset::{
    AddrField, Datum, Element, Expr, Hook, Key, Part, Rule, SetDecl, Statement, TABLE, Table, Verdict,
};
use crate::transaction::{Command, Transaction};

pub use read::ListedTable;

fn one(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    Value::Object(map)
}

fn named(kind: &str, name: &str) -> Value {
    one(kind, json!({"family": "inet", "table": TABLE, "name": name}))
}

fn datum(d: &Datum) -> Value {
    match d {
        Datum::Addr(a) => Value::String(a.to_string()),
        Datum::Proto(p) => Value::String(crate::ruleset::l4proto(*p).to_string()),
        Datum::Port(p) => Value::from(*p),
        Datum::Ifname(i) => Value::String(i.to_string()),
    }
}

fn part(p: &Part) -> Value {
    match p {
        Part::One(d) => datum(d),
        Part::Range(a, b) => json!({"range": [datum(a), datum(b)]}),
    }
}

fn key(k: &Key) -> Value {
    match k {
        Key::One(p) => part(p),
        Key::Concat(parts) => json!({"concat": parts.iter().map(part).collect::<Vec<_>>()}),
    }
}

fn verdict(v: &Verdict) -> Value {
    match v {
        Verdict::Accept => json!({"accept": null}),
        Verdict::Drop => json!({"drop": null}),
        Verdict::Jump(chain) => json!({"jump": {"target": chain}}),
        Verdict::Return => json!({"return": null}),
    }
}

/// An element; `with_verdict: false` gives a map element's key alone (how
/// map elements are deleted).
fn element(e: &Element, with_verdict: bool) -> Value {
    match (&e.verdict, with_verdict) {
        (Some(v), true) => json!([key(&e.key), verdict(v)]),
        _ => key(&e.key),
    }
}

fn set_type(decl: &SetDecl) -> Value {
    match decl.key.as_slice() {
        [one] => json!(one.name()),
        many => json!(many.iter().map(|k| k.name()).collect::<Vec<_>>()),
    }
}

fn expr(e: Expr) -> Value {
    match e {
        Expr::Iifname => json!({"meta": {"key": "iifname"}}),
        Expr::L4proto => json!({"meta": {"key": "l4proto"}}),
        Expr::Oifname => json!({"meta": {"key": "oifname"}}),
        Expr::Addr { v6, field } => json!({"payload": {
            "protocol": if v6 { "ip6" } else { "ip" },
            "field": if field == AddrField::Saddr { "saddr" } else { "daddr" },
        }}),
        Expr::Dport => json!({"payload": {"protocol": "th", "field": "dport"}}),
        Expr::CtSaddr { v6, dir } => {
            json!({"ct": {"key": if v6 { "ip6 saddr" } else { "ip saddr" }, "dir": dir.name()}})
        }
    }
}

fn statement(s: &Statement) -> Value {
    match s {
        Statement::CtState(states) => json!({"match": {
            "op": "in",
            "left": {"ct": {"key": "state"}},
            "right": states.names().collect::<Vec<_>>(),
        }}),
        Statement::Lookup { left, set, negated } => {
            let left = match left.as_slice() {
                [one] => expr(*one),
                many => json!({"concat": many.iter().map(|e| expr(*e)).collect::<Vec<_>>()}),
            };
            json!({"match": {"op": if *negated { "!=" } else { "==" }, "left": left, "right": format!("@{set}")}})
        }
        Statement::Vmap { key, map } => json!({"vmap": {"key": expr(*key), "data": format!("@{map}")}}),
        Statement::Limit { per_second, burst } => {
            json!({"limit": {"rate": per_second, "per": "second", "burst": burst}})
        }
        Statement::Log { prefix, group: None } => json!({"log": {"prefix": prefix}}),
        Statement::Log { prefix, group: Some(group) } => json!({"log": {"prefix": prefix, "group": group}}),
        Statement::Counter(name) => json!({"counter": name}),
        Statement::Verdict(v) => verdict(v),
        Statement::ProtoIs(p) => {
            json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": crate::ruleset::l4proto(*p)}})
        }
        Statement::Prefix { field, net, len } => {
            let full = if net.is_ipv6() { 128 } else { 32 };
            let right = if *len == full {
                json!(net.to_string())
            } else {
                json!({"prefix": {"addr": net.to_string(), "len": len}})
            };
            json!({"match": {"op": "==", "left": expr(Expr::addr(net.is_ipv6(), *field)), "right": right}})
        }
        Statement::IfnamePrefix { out, prefix } => json!({"match": {
            "op": "==",
            "left": {"meta": {"key": if *out { "oifname" } else { "iifname" }}},
            "right": format!("{prefix}*"),
        }}),
        Statement::TcpNotSyn => json!({"match": {
            "op": "!=",
            "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["fin", "syn", "rst", "ack"]]},
            "right": "syn",
        }}),
        Statement::PortIs(p, port) => json!({"match": {
            "op": "==",
            "left": {"payload": {"protocol": crate::ruleset::l4proto(*p), "field": "dport"}},
            "right": port,
        }}),
    }
}

/// A rule's statements as `nft -j` expressions.
#[must_use]
pub fn rule(r: &Rule) -> Value {
    Value::Array(r.0.iter().map(statement).collect())
}

fn elements(set: &str, elements: &[Element], with_verdict: bool) -> Value {
    one(
        "element",
        json!({"family": "inet", "table": TABLE, "name": set,
               "elem": elements.iter().map(|e| element(e, with_verdict)).collect::<Vec<_>>()}),
    )
}

fn command(c: &Command) -> Value {
    let table = || json!({"table": {"family": "inet", "name": TABLE}});
    match c {
        Command::AddTable => one("add", table()),
        Command::DeleteTable => one("delete", table()),
        Command::AddCounter(name) => one("add", named("counter", name)),
        Command::DeleteCounter(name) => one("delete", named("counter", name)),
        Command::AddSet { name, decl, elements } => {
            let mut body = json!({"family": "inet", "table": TABLE, "name": name, "type": set_type(decl)});
            if decl.verdict_map {
                body["map"] = json!("verdict");
            }
            if decl.interval {
                body["flags"] = json!(["interval"]);
            }
            if !elements.is_empty() {
                body["elem"] = elements.iter().map(|e| element(e, true)).collect();
            }
            one("add", one(if decl.verdict_map { "map" } else { "set" }, body))
        }
        Command::DeleteSet { name, verdict_map } => {
            one("delete", named(if *verdict_map { "map" } else { "set" }, name))
        }
        Command::AddChain { name, base } => {
            let mut body = json!({"family": "inet", "table": TABLE, "name": name});
            if let Some((Hook::Forward, prio)) = base {
                body["type"] = json!("filter");
                body["hook"] = json!("forward");
                body["prio"] = json!(prio);
                body["policy"] = json!("accept");
            }
            one("add", one("chain", body))
        }
        Command::DeleteChain(name) => one("delete", named("chain", name)),
        Command::FlushChain(name) => one("flush", named("chain", name)),
        Command::AddRule { chain, rule: r } => {
            one("add", json!({"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": rule(r)}}))
        }
        Command::AddElements { set, elements: e, .. } => one("add", elements(set, e, true)),
        Command::DeleteElements { set, elements: e, .. } => one("delete", elements(set, e, false)),
    }
}

/// The transaction as `nft -j` input.
#[must_use]
pub fn transaction(tx: &Transaction) -> Value {
    one("nftables", Value::Array(tx.commands.iter().map(command).collect()))
}

/// What `nft -j list table inet palisade` printed.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    value: Value,
}

/// What the kernel holds, reduced to what drift detection compares:
/// chain names with rule counts, set names with element counts, counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSummary {
    /// `(chain, rules)`.
    pub chains: Vec<(String, usize)>,
    /// `(set or map, elements)`.
    pub sets: Vec<(String, usize)>,
    /// Counter names.
    pub counters: Vec<String>,
}

impl TableSummary {
    /// The summary a correct kernel table has for `table`.
    #[must_use]
    pub fn of(table: &Table) -> TableSummary {
        TableSummary {
            chains: table.chains.iter().map(|(n, c)| (n.clone(), c.rules.len())).collect(),
            sets: table.sets.iter().map(|(n, s)| (n.clone(), s.elements.len())).collect(),
            counters: table.counters.iter().cloned().collect(),
        }
    }
}

impl Listing {
    /// Parses `nft -j` output.
    pub fn parse(text: &str) -> Result<Listing, serde_json::Error> {
        serde_json::from_str(text).map(|value| Listing { value })
    }

    /// The listing as JSON.
    #[must_use]
    pub fn json(&self) -> &Value {
        &self.value
    }

    fn items(&self) -> impl Iterator<Item = &Value> {
        self.value.get("nftables").and_then(Value::as_array).into_iter().flatten()
    }

    /// Each rule's handle (as `nft -j -a` lists it), with its chain and
    /// its position in the chain (from 0).
    #[must_use]
    pub fn rule_positions(&self) -> BTreeMap<u64, (String, usize)> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for rule in self.items().filter_map(|item| item.get("rule")) {
            let (Some(chain), Some(handle)) =
                (rule.get("chain").and_then(Value::as_str), rule.get("handle").and_then(Value::as_u64))
            else {
                continue;
            };
            let position = seen.entry(chain.to_string()).or_default();
            out.insert(handle, (chain.to_string(), *position));
            *position += 1;
        }
        out
    }

    /// Packet counts of named counters, sorted by name.
    #[must_use]
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .items()
            .filter_map(|item| {
                let c = item.get("counter")?;
                Some((c.get("name")?.as_str()?.to_string(), c.get("packets")?.as_u64()?))
            })
            .collect();
        out.sort();
        out
    }

    /// The listing's summary.
    #[must_use]
    pub fn summary(&self) -> TableSummary {
        let mut s = TableSummary::default();
        let mut rules: BTreeMap<String, usize> = BTreeMap::new();
        for item in self.items() {
            if let Some(chain) = item.get("chain").and_then(|c| c.get("name")).and_then(Value::as_str) {
                rules.entry(chain.to_string()).or_default();
            }
            if let Some(chain) = item.get("rule").and_then(|r| r.get("chain")).and_then(Value::as_str) {
                *rules.entry(chain.to_string()).or_default() += 1;
            }
            for kind in ["set", "map"] {
                if let Some(set) = item.get(kind) {
                    let name = set.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    let n = set.get("elem").and_then(Value::as_array).map_or(0, Vec::len);
                    s.sets.push((name, n));
                }
            }
            if let Some(name) = item.get("counter").and_then(|c| c.get("name")).and_then(Value::as_str) {
                s.counters.push(name.to_string());
            }
        }
        s.chains = rules.into_iter().collect();
        s.sets.sort();
        s.counters.sort();
        s
    }
}
