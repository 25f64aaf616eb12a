//! `lab probe`: every pod to every pod (and the external hosts) with real
//! packets, beside the engine's verdict for each; the measured truth table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bail;
use crate::error::{Context as _, Result};
use crate::plan::{Family, ProbeRow, plan};
use crate::probe::run_all;
use palisade_manifests::{Input, load};
use palisade_policy::Protocol;
use serde::Serialize;

use super::state::LabState;
use super::topology;

/// Probe options.
#[derive(Debug, Clone)]
pub struct ProbeArgs {
    /// Ports (default: every declared TCP/UDP port).
    pub ports: Vec<u16>,
    /// Protocols.
    pub protocols: Vec<Protocol>,
    /// Address families (empty: every family the lab's pods have).
    pub families: Vec<Family>,
}

#[derive(Debug, Serialize)]
struct ProbeJson {
    probes: Vec<ProbeRow>,
    mismatches: usize,
}

/// Runs the probes of the current lab; returns the rows.
pub fn probe_rows(state: &LabState, args: &ProbeArgs) -> Result<Vec<ProbeRow>> {
    let loaded = load(&[Input::Path(state.manifests())], "default");
    let index = loaded.index();
    let topo = topology(state);
    let ports: Vec<u16> = if args.ports.is_empty() {
        let mut p: Vec<u16> = state
            .pods
            .values()
            .flat_map(|r| r.plan.tcp.iter().chain(&r.plan.udp).chain(&r.plan.sctp).copied())
            .collect();
        p.sort_unstable();
        p.dedup();
        if p.is_empty() { vec![80] } else { p }
    } else {
        args.ports.clone()
    };
    let families: Vec<Family> = if args.families.is_empty() {
        let present: std::collections::BTreeSet<Family> =
            state.pods.values().flat_map(|p| p.plan.addrs.iter().map(|a| Family::of(*a))).collect();
        present.into_iter().collect()
    } else {
        args.families.clone()
    };
    let mut rows = Vec::new();
    for family in &families {
        let (probes, mut planned) = plan(&index, &topo, &ports, &args.protocols, *family);
        let expected: Vec<bool> = planned.iter().map(|r| r.expected).collect();
        let results = run_all(&probes, &expected, 64, Duration::from_millis(250), Duration::from_secs(2));
        for (row, result) in planned.iter_mut().zip(results) {
            row.measured =
                result.with_context(|| format!("probe {} -> {} {}/{}", row.from, row.to, row.protocol, row.port))?;
        }
        rows.extend(planned);
    }
    topo.keep();
    Ok(rows)
}

/// Renders probe rows as tables (measured; `*` marks a disagreement with the engine).
#[must_use]
pub fn probe_table(rows: &[ProbeRow]) -> String {
    let mut out = String::new();
    let mut cases: Vec<(Family, Protocol, u16)> = rows.iter().map(|r| (r.family, r.protocol, r.port)).collect();
    cases.sort();
    cases.dedup();
    let families = cases.iter().map(|c| c.0).collect::<std::collections::BTreeSet<_>>().len();
    let mut names: Vec<&str> = rows.iter().flat_map(|r| [r.from.as_str(), r.to.as_str()]).collect();
    names.sort_unstable();
    names.dedup();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(8);
    for (family, protocol, port) in cases {
        let title = if families > 1 { format!("{protocol}/{port} {family}") } else { format!("{protocol}/{port}") };
        let _ = write!(out, "{title:<width$} ");
        for n in &names {
            let _ = write!(out, "{n:<width$} ");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        for from in &names {
            let _ = write!(out, "{from:<width$} ");
            for to in &names {
                let cell = rows.iter().find(|r| {
                    r.from == *from && r.to == *to && r.family == family && r.protocol == protocol && r.port == port
                });
                let text = match cell {
                    None if from == to => ".".to_string(),
                    None => "-".to_string(),
                    Some(r) => format!(
                        "{}{}",
                        if r.measured { "." } else { "X" },
                        if r.measured == r.expected { "" } else { "*" }
                    ),
                };
                let _ = write!(out, "{text:<width$} ");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(". connected, X blocked (measured with real packets); * the engine disagrees; - not probed\n");
    let mismatches: Vec<&ProbeRow> = rows.iter().filter(|r| r.measured != r.expected).collect();
    let _ = writeln!(out, "{} probes, {} mismatches", rows.len(), mismatches.len());
    for r in mismatches {
        let _ = writeln!(
            out,
            "  MISMATCH {} ({}) -> {} ({}) {}/{}: measured {}, engine {}",
            r.from,
            r.from_addr,
            r.to,
            r.to_addr,
            r.protocol,
            r.port,
            verdict(r.measured),
            verdict(r.expected)
        );
    }
    out
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// `lab probe`: exit status 1 on any mismatch.
pub fn probe(args: &ProbeArgs, json: bool) -> Result<u8> {
    let state = LabState::load()?.context("no lab is up; run `palisade lab up -f DIR`")?;
    let rows = probe_rows(&state, args)?;
    if rows.is_empty() {
        bail!(
            "nothing was probed: no two ends of the lab share an address family among {:?}, or no ports",
            if args.families.is_empty() { "the pods' families".to_string() } else { format!("{:?}", args.families) }
        );
    }
    let mismatches = rows.iter().filter(|r| r.measured != r.expected).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&ProbeJson { probes: rows, mismatches })?);
    } else {
        print!("{}", probe_table(&rows));
    }
    Ok(u8::from(mismatches > 0))
}
