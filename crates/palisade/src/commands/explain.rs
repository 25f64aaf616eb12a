//! `palisade explain`: the net effect of all policies on one pod.

use std::fmt::Write as _;

use palisade_policy::PodState;
use palisade_policy::explain::{DirectionSummary, Explanation};

use super::{EXIT_ERROR, TextOrJson};
use crate::endpoint::{Named, resolve};
use crate::inputs::State;
use crate::style::Style;

/// Runs `explain` for `pod` (`namespace/name`).
#[must_use]
pub fn run(state: &State, pod: &str, output: TextOrJson, style: Style) -> u8 {
    let id = match resolve(&state.index, pod) {
        Ok(Named::Pod(id) | Named::HostNetwork(id)) => id,
        Ok(Named::Address(ip)) => {
            if let Some(id) = state.index.pod_by_ip(ip) {
                id
            } else {
                eprintln!("error: no pod has address {ip}");
                return EXIT_ERROR;
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let explanation = state.index.explain(id);
    let namespace = Some(state.index.pod(id).pod().namespace.as_str());
    // Policies of other kinds in the pod's namespace, or cluster-wide ones,
    // could change what it may send and receive.
    let could_change: Vec<String> = state.could_change(namespace, namespace).iter().map(|p| p.label()).collect();
    match output {
        TextOrJson::Json => println!("{}", state.json(&explanation)),
        TextOrJson::Text => {
            if !could_change.is_empty() {
                println!(
                    "{}: {} could change what this pod may send and receive (kinds Palisade does not evaluate)",
                    style.warn("INCOMPLETE"),
                    could_change.join(", ")
                );
            }
            print!("{}", text(&explanation, style));
        }
    }
    state.exit(0, !could_change.is_empty())
}

/// The human report.
#[must_use]
pub fn text(e: &Explanation, style: Style) -> String {
    let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ips: Vec<String> = e.ips.iter().map(ToString::to_string).collect();
    let mut out = format!("{} {}\n", style.strong("Pod"), style.strong(&e.pod));
    let _ = writeln!(out, "  labels: {}", if labels.is_empty() { "(none)".into() } else { labels.join(", ") });
    let state = match &e.state {
        PodState::Active => format!("active, IPs {}", ips.join(", ")),
        PodState::Planned => "planned (no IP: ipBlock peers cannot match it)".into(),
        PodState::Excluded(reason) => format!("not a policy endpoint: {reason}"),
    };
    let _ = writeln!(out, "  state: {state}");
    if let Some(w) = &e.workload {
        let _ = writeln!(out, "  stands for the pods of {w}");
    }
    if !e.cluster_policies.is_empty() {
        let _ = writeln!(out, "  cluster policies: {}", e.cluster_policies.join(", "));
    }
    if e.selected_by.is_empty() {
        out.push_str("  selected by no policy\n");
    } else {
        out.push_str("  selected by:\n");
        for p in &e.selected_by {
            let dirs: Vec<&str> = p.isolates.iter().map(|d| d.as_str()).collect();
            let _ = writeln!(out, "    - {} ({})", p.policy, dirs.join(", "));
        }
    }
    section(&mut out, "Ingress", &e.ingress, style);
    section(&mut out, "Egress", &e.egress, style);
    out
}

fn section(out: &mut String, title: &str, s: &DirectionSummary, style: Style) {
    if s.admin.is_empty() && s.baseline.is_empty() {
        network_policy_section(out, title, s, style);
        return;
    }
    let _ = writeln!(out, "{}:", style.strong(title));
    tier_lines(out, "admin tier (first: Accept and Deny decide, Pass goes on to the NetworkPolicies)", &s.admin);
    if s.isolated {
        out.push_str("  ");
        network_policy_section(out, "NetworkPolicy", s, style);
    } else {
        out.push_str("  NetworkPolicy: none isolates the pod\n");
    }
    if !s.baseline.is_empty() {
        tier_lines(out, "baseline tier (as no NetworkPolicy isolates the pod)", &s.baseline);
        out.push_str("  then: everything else allowed\n");
    }
}

fn tier_lines(out: &mut String, heading: &str, lines: &[palisade_policy::explain::TierRuleLine]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {heading}:");
    for l in lines {
        let _ = writeln!(out, "    - {}\n      [{}]", l.text, l.source);
    }
}

fn network_policy_section(out: &mut String, title: &str, s: &DirectionSummary, style: Style) {
    if !s.isolated {
        let _ = writeln!(out, "{}: not isolated: {}", style.strong(title), style.good("all traffic allowed"));
        return;
    }
    if s.allowed.is_empty() {
        let _ = writeln!(out, "{}: isolated: {}", style.strong(title), style.bad("nothing allowed"));
        return;
    }
    let summary =
        if s.allows_everything { style.good("everything allowed (a rule admits all)") } else { "allowed only:".into() };
    let _ = writeln!(out, "{}: isolated: {summary}", style.strong(title));
    for a in &s.allowed {
        let matching = a.matching_pods.map(|n| format!(" — matches {n} pod(s) now")).unwrap_or_default();
        let _ = write!(out, "  - {}{matching}\n    [{}]\n", a.text, a.sources.join("; "));
    }
}
