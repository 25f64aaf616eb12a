//! `lab run SCENARIO`: up with the scenario's base, each step applied and
//! probed, then down, whatever happens (errors, panics, Ctrl-C).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context as _, Result};
use crate::plan::ProbeRow;
use palisade_manifests::RawObject;
use serde::Serialize;
use serde_json::Value;

use super::measure::{ProbeArgs, probe_rows, probe_table};
use super::state::LabState;
use super::{DELETE_ANNOTATION, apply_raw, down_quiet, object_key, raw_from_state, read_raw, up};

/// A scenario: `base/` then each file of `steps/` in name order.
#[derive(Debug, Serialize)]
struct StepReport {
    step: String,
    applied_ms: u128,
    probes: Vec<ProbeRow>,
    mismatches: usize,
}

fn merge_step(state: &LabState, step: &Path) -> Result<Vec<RawObject>> {
    let mut objects: BTreeMap<String, RawObject> =
        raw_from_state(state).into_iter().map(|o| (object_key(&o.kind, &o.namespace, &o.name), o)).collect();
    for o in read_raw(&[step.to_path_buf()])? {
        let key = object_key(&o.kind, &o.namespace, &o.name);
        let delete =
            o.value.pointer("/metadata/annotations").and_then(|a| a.get(DELETE_ANNOTATION)).and_then(Value::as_str)
                == Some("true");
        if delete {
            objects.remove(&key);
        } else {
            objects.insert(key, o);
        }
    }
    Ok(objects.into_values().collect())
}

/// `lab run SCENARIO`: up with the base, each step applied and probed, then down.
pub fn run(scenario: &Path, external: &[IpAddr], args: &ProbeArgs, json: bool) -> Result<u8> {
    let base = scenario.join("base");
    let base = if base.is_dir() {
        base
    } else {
        bail!("{}: a scenario needs a base/ directory (and optionally steps/)", scenario.display())
    };
    let mut steps: Vec<PathBuf> = std::fs::read_dir(scenario.join("steps"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
                .collect()
        })
        .unwrap_or_default();
    steps.sort();
    // Ctrl-C or SIGTERM: take the lab down and exit.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            down_quiet();
            std::process::exit(130);
        }
    });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<StepReport>> {
        let mut reports = Vec::new();
        let start = Instant::now();
        let line = up(std::slice::from_ref(&base), external)?;
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        let state = LabState::load()?.context("lab state")?;
        let probes = probe_rows(&state, args)?;
        reports.push(report("base", start.elapsed(), probes, json));
        for step in &steps {
            let mut state = LabState::load()?.context("lab state")?;
            let raw = merge_step(&state, step)?;
            let took = apply_raw(&mut state, &raw)?;
            let name = step.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let probes = probe_rows(&state, args)?;
            reports.push(report(&name, took, probes, json));
        }
        Ok(reports)
    }));
    down_quiet();
    let reports = match outcome {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let total: usize = reports.iter().map(|r| r.mismatches).sum();
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"steps": reports, "mismatches": total}))?);
    } else {
        println!("scenario {}: {} steps, {total} mismatches", scenario.display(), reports.len());
    }
    Ok(u8::from(total > 0))
}

fn report(step: &str, took: Duration, probes: Vec<ProbeRow>, json: bool) -> StepReport {
    let mismatches = probes.iter().filter(|r| r.measured != r.expected).count();
    if !json {
        println!("=== {step} (enforced {} ms after the manifests were written)", took.as_millis());
        print!("{}", probe_table(&probes));
        println!();
    }
    StepReport { step: step.to_string(), applied_ms: took.as_millis(), probes, mismatches }
}
