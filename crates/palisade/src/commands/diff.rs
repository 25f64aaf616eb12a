//! `palisade diff`: which connections a change opens and closes.

use palisade_policy::Protocol;
use palisade_policy::diff::{diff, interesting_cases};
use palisade_policy::matrix::Case;

use super::{EXIT_ERROR, TextOrJson};
use crate::inputs::State;
use crate::style::Style;

/// Runs `diff`: exit 0 no change, 1 connections changed, 2 invalid input,
/// 3 when either side holds policies of kinds Palisade does not evaluate.
#[must_use]
pub fn run(
    before: &State,
    after: &State,
    ports: &[u16],
    protocols: &[Protocol],
    output: TextOrJson,
    style: Style,
) -> u8 {
    let cases: Vec<Case> = if ports.is_empty() {
        interesting_cases(&[&before.index, &after.index])
            .into_iter()
            .filter(|c| protocols.is_empty() || protocols.contains(&c.protocol))
            .collect()
    } else {
        let protocols = if protocols.is_empty() { vec![Protocol::Tcp] } else { protocols.to_vec() };
        protocols
            .iter()
            .flat_map(|protocol| ports.iter().map(|port| Case { port: *port, protocol: *protocol }))
            .collect()
    };
    let d = diff(&before.index, &after.index, &cases);
    // Either side's policies of other kinds make the comparison partial.
    let incomplete = if after.incomplete() { after } else { before };
    match output {
        TextOrJson::Json => println!("{}", incomplete.json(&d)),
        TextOrJson::Text => {
            if let Some(line) = incomplete.incomplete_line() {
                println!("{}", style.warn(&line));
            }
            let cases: Vec<String> = d.cases.iter().map(|c| format!("{}/{}", c.protocol, c.port)).collect();
            println!(
                "compared {} on the pods present before and after: {} opened, {} closed",
                if cases.is_empty() { "no ports".into() } else { cases.join(", ") },
                d.opened.len(),
                d.closed.len()
            );
            if !d.summary.is_empty() {
                println!("by namespace (from -> to: opened, closed):");
                for p in &d.summary {
                    println!("  {} -> {}: +{} -{}", p.from_namespace, p.to_namespace, p.opened, p.closed);
                }
            }
            for (title, list) in [("opened", &d.opened), ("closed", &d.closed)] {
                println!("{} ({}):", if title == "opened" { style.good(title) } else { style.bad(title) }, list.len());
                for c in list {
                    println!("  {} -> {} {}/{}", c.from, c.to, c.protocol, c.port);
                }
            }
            for (title, list) in [("pods added", &d.pods_added), ("pods removed", &d.pods_removed)] {
                if !list.is_empty() {
                    println!("{title}: {}", list.join(", "));
                }
            }
        }
    }
    if before.had_errors() || after.had_errors() {
        EXIT_ERROR
    } else {
        incomplete.exit(u8::from(!d.opened.is_empty() || !d.closed.is_empty()), incomplete.incomplete())
    }
}
