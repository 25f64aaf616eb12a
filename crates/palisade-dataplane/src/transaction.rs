//! `nft -j` transactions: the whole table, or the difference between two
//! rendered states. Either is applied as one atomic transaction.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::render::{ChainDef, Rendered, SetDef, TABLE};

fn table() -> Value {
    json!({"table": {"family": "inet", "name": TABLE}})
}

fn named(kind: &str, name: &str) -> Value {
    json!({kind: {"family": "inet", "table": TABLE, "name": name}})
}

fn set_object(name: &str, def: &SetDef, with_elements: bool) -> Value {
    let mut body = json!({"family": "inet", "table": TABLE, "name": name, "type": def.kind});
    if let Some(map) = def.map {
        body["map"] = json!(map);
    }
    if def.interval {
        body["flags"] = json!(["interval"]);
    }
    if with_elements && !def.elements.is_empty() {
        body["elem"] = Value::Array(def.elements.values().cloned().collect());
    }
    json!({if def.map.is_some() { "map" } else { "set" }: body})
}

fn element(set: &str, elems: Vec<Value>) -> Value {
    let mut body = json!({"family": "inet", "table": TABLE, "name": set});
    body["elem"] = Value::Array(elems);
    one("element", body)
}

/// `{key: value}`, moving `value`.
fn one(key: &str, value: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(key.to_string(), value);
    Value::Object(map)
}

fn chain_object(name: &str, def: &ChainDef) -> Value {
    let mut body = json!({"family": "inet", "table": TABLE, "name": name});
    if let Some((hook, prio)) = def.base {
        body["type"] = json!("filter");
        body["hook"] = json!(hook);
        body["prio"] = json!(prio);
        body["policy"] = json!("accept");
    }
    json!({"chain": body})
}

fn rule(chain: &str, expr: &Value) -> Value {
    json!({"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": expr}})
}

fn add(v: Value) -> Value {
    one("add", v)
}

fn delete(v: Value) -> Value {
    one("delete", v)
}

fn wrap(commands: Vec<Value>) -> Value {
    one("nftables", Value::Array(commands))
}

/// Removes Palisade's table, if present, and nothing else.
#[must_use]
pub fn cleanup() -> Value {
    wrap(vec![add(table()), delete(table())])
}

/// Replaces the whole table with `r` in one transaction.
#[must_use]
pub fn full(r: &Rendered) -> Value {
    let mut cmds = vec![add(table()), delete(table()), add(table())];
    cmds.extend(r.counters.iter().map(|c| add(named("counter", c))));
    for (name, def) in &r.sets {
        // Verdict maps get their elements after the chains they jump to exist.
        cmds.push(add(set_object(name, def, def.map.is_none())));
    }
    cmds.extend(r.chains.iter().map(|(name, def)| add(chain_object(name, def))));
    for (name, def) in &r.chains {
        cmds.extend(def.rules.iter().map(|expr| add(rule(name, expr))));
    }
    for (name, def) in r.sets.iter().filter(|(_, d)| d.map.is_some() && !d.elements.is_empty()) {
        cmds.push(add(element(name, def.elements.values().cloned().collect())));
    }
    wrap(cmds)
}

/// The element's key: a verdict map element `[key, verdict]` is deleted by key.
fn key_of(def: &SetDef, v: &Value) -> Value {
    match (def.map, v) {
        (Some(_), Value::Array(pair)) => pair[0].clone(),
        _ => v.clone(),
    }
}

/// Elements of `a` that `b` lacks.
fn only_in<'a>(a: &'a SetDef, b: &SetDef) -> impl Iterator<Item = &'a Value> {
    a.elements.iter().filter(|(k, _)| !b.elements.contains_key(*k)).map(|(_, v)| v)
}

fn same_shape(a: &SetDef, b: &SetDef) -> bool {
    a.kind == b.kind && a.map == b.map && a.interval == b.interval
}

/// The commands that turn `old` into `new`, or `None` when they are equal.
/// Order: drop references (map elements, chain contents), delete what
/// went away, then add sets, elements, chains, rules and map elements.
#[must_use]
pub fn diff(old: &Rendered, new: &Rendered) -> Option<Value> {
    if old == new {
        return None;
    }
    let mut cmds = Vec::new();
    let kept_set = |name: &String| old.sets.get(name).zip(new.sets.get(name)).filter(|(o, n)| same_shape(o, n));
    // 1. Remove references: stale map elements, contents of changed or removed chains.
    for (name, o) in old.sets.iter().filter(|(_, d)| d.map.is_some()) {
        if let Some((_, n)) = kept_set(name) {
            let gone: Vec<Value> = only_in(o, n).map(|v| key_of(o, v)).collect();
            if !gone.is_empty() {
                cmds.push(delete(element(name, gone)));
            }
        }
    }
    let changed_chains: BTreeSet<&String> = old
        .chains
        .iter()
        .filter(|(name, def)| new.chains.get(*name).is_none_or(|n| n.rules != def.rules))
        .map(|(n, _)| n)
        .collect();
    for name in &changed_chains {
        cmds.push(json!({"flush": named("chain", name)}));
    }
    // 2. Delete what went away.
    for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
        cmds.push(delete(named("chain", name)));
    }
    for (name, o) in &old.sets {
        match kept_set(name) {
            None => cmds.push(delete(named(if o.map.is_some() { "map" } else { "set" }, name))),
            Some((_, n)) if o.map.is_none() => {
                let gone: Vec<Value> = only_in(o, n).cloned().collect();
                if !gone.is_empty() {
                    cmds.push(delete(element(name, gone)));
                }
            }
            Some(_) => {}
        }
    }
    for name in old.counters.difference(&new.counters) {
        cmds.push(delete(named("counter", name)));
    }
    // 3. Add.
    for name in new.counters.difference(&old.counters) {
        cmds.push(add(named("counter", name)));
    }
    for (name, n) in &new.sets {
        match kept_set(name) {
            None => cmds.push(add(set_object(name, n, n.map.is_none()))),
            Some((o, _)) if n.map.is_none() => {
                let fresh: Vec<Value> = only_in(n, o).cloned().collect();
                if !fresh.is_empty() {
                    cmds.push(add(element(name, fresh)));
                }
            }
            Some(_) => {}
        }
    }
    for (name, def) in new.chains.iter().filter(|(n, _)| !old.chains.contains_key(*n)) {
        cmds.push(add(chain_object(name, def)));
    }
    for (name, def) in &new.chains {
        if !old.chains.contains_key(name) || changed_chains.contains(name) {
            cmds.extend(def.rules.iter().map(|expr| add(rule(name, expr))));
        }
    }
    for (name, n) in new.sets.iter().filter(|(_, d)| d.map.is_some()) {
        let fresh: Vec<Value> = match kept_set(name) {
            Some((o, _)) => only_in(n, o).cloned().collect(),
            None => n.elements.values().cloned().collect(),
        };
        if !fresh.is_empty() {
            cmds.push(add(element(name, fresh)));
        }
    }
    Some(wrap(cmds))
}
