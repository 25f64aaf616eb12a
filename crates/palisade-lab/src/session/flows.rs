//! `palisade lab flows`: the lab agent's flow records.

use std::fmt::Write as _;

use serde_json::Value;

use super::state::LabState;
use crate::bail;
use crate::error::{Context as _, Result};

/// The lab agent's flow records so far, oldest first.
///
/// # Errors
/// No lab is up, or its flow log cannot be read.
pub fn read_flows() -> Result<Vec<Value>> {
    let Some(state) = LabState::load()? else { bail!("no lab is up (palisade lab up -f DIR)") };
    let text = match std::fs::read_to_string(state.flow_log()) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context("reading the flow log"),
    };
    // A line being written is skipped, not an error.
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// Prints the records: JSON lines as the agent wrote them, or one line
/// each in words. Returns the exit status (0).
///
/// # Errors
/// As [`read_flows`].
pub fn flows(json: bool) -> Result<u8> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for record in read_flows()? {
        let line = if json { record.to_string() } else { flow_line(&record) };
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(0)
}

fn end(v: &Value) -> String {
    let addr = v["addr"].as_str().unwrap_or("?");
    match v["pod"].as_str() {
        Some(pod) => format!("{pod} ({addr})"),
        None => addr.to_string(),
    }
}

/// Why, on the side that logged.
fn reason(side: &Value) -> String {
    let names = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect()
    };
    if let Some(rule) = side.get("decided_by") {
        return format!(
            "{} {} {} rule {}: {}",
            rule["tier"].as_str().unwrap_or("?"),
            rule["kind"].as_str().unwrap_or("?"),
            rule["policy"].as_str().unwrap_or("?"),
            rule["rule"],
            rule["action"].as_str().unwrap_or("?")
        );
    }
    if let Some(rule) = side.get("allowed_by").filter(|r| !r.is_null()) {
        return format!(
            "admitted by {} {} rule {}",
            rule["policy"].as_str().unwrap_or("?"),
            rule["direction"].as_str().unwrap_or("?"),
            rule["rule"]
        );
    }
    let mut out = format!("isolated by {}, no rule admits it", names(&side["isolated_by"]).join(", "));
    let audit = names(&side["audit"]);
    if !audit.is_empty() {
        let _ = write!(out, " (audit: {})", audit.join(", "));
    }
    out
}

/// One record in words: `05:40:01.123456 DENY ingress y/b (10.0.1.2) -> x/a (10.0.0.1) TCP 40000->80: isolated by x/deny-all, no rule admits it`.
#[must_use]
pub fn flow_line(r: &Value) -> String {
    let time = r["time"].as_str().unwrap_or_default();
    let time = time.split_once('T').map_or(time, |(_, t)| t.trim_end_matches('Z'));
    let verdict = r["verdict"].as_str().unwrap_or("?").to_uppercase();
    let direction = r["direction"].as_str().unwrap_or("?");
    let ports = match (r["sport"].as_u64(), r["dport"].as_u64()) {
        (Some(s), Some(d)) => format!(" {s}->{d}"),
        _ => String::new(),
    };
    format!(
        "{time} {verdict} {direction} {} -> {} {}{ports}: {}",
        end(&r["src"]),
        end(&r["dst"]),
        r["protocol"].as_str().unwrap_or("?"),
        reason(&r[direction])
    )
}
