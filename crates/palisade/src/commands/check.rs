//! `palisade check`: is one connection allowed, and why.

use std::fmt::Write as _;

use palisade_policy::{Direction, Flow, Protocol, SideVerdict};
use serde::Serialize;

use super::{EXIT_ERROR, TextOrJson};
use crate::endpoint::{describe, flow, resolve};
use crate::inputs::State;
use crate::style::Style;
use crate::verdict_text::{SideJson, isolating_names, rule_ref, side_json};

/// What to check.
#[derive(Debug)]
pub struct CheckArgs<'a> {
    /// `namespace/pod` or an IP.
    pub from: &'a str,
    /// `namespace/pod` or an IP.
    pub to: &'a str,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

#[derive(Serialize)]
struct CheckJson {
    allowed: bool,
    from: String,
    to: String,
    port: u16,
    protocol: Protocol,
    egress: SideJson,
    ingress: SideJson,
}

/// Runs `check`: exit 0 allowed, 1 denied, 2 error.
#[must_use]
pub fn run(state: &State, args: &CheckArgs<'_>, output: TextOrJson, style: Style) -> u8 {
    let index = &state.index;
    let ends = resolve(index, args.from).and_then(|f| Ok((f, resolve(index, args.to)?)));
    let (from, to) = match ends {
        Ok(ends) => ends,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let flow = flow(index, &from, &to, args.port, args.protocol);
    let verdict = index.evaluate(&flow);
    match output {
        TextOrJson::Json => {
            let json = CheckJson {
                allowed: verdict.allowed,
                from: describe(index, flow.src),
                to: describe(index, flow.dst),
                port: flow.port,
                protocol: flow.protocol,
                egress: side_json(index, &flow, Direction::Egress, verdict.egress),
                ingress: side_json(index, &flow, Direction::Ingress, verdict.ingress),
            };
            println!("{}", serde_json::to_string_pretty(&json).expect("plain data serializes"));
        }
        TextOrJson::Text => print!("{}", text(state, &flow, style)),
    }
    if state.had_errors() { EXIT_ERROR } else { u8::from(!verdict.allowed) }
}

/// The human report.
#[must_use]
pub fn text(state: &State, flow: &Flow, style: Style) -> String {
    let index = &state.index;
    let verdict = index.evaluate(flow);
    let head = if verdict.allowed { style.good("ALLOW") } else { style.bad("DENY") };
    let mut out = format!(
        "{head} {} -> {} {}/{}\n",
        describe(index, flow.src),
        describe(index, flow.dst),
        flow.protocol,
        flow.port
    );
    if verdict.egress == SideVerdict::SamePod {
        out.push_str("  a pod can always reach itself\n");
        return out;
    }
    for (dir, side, end) in
        [(Direction::Egress, verdict.egress, flow.src), (Direction::Ingress, verdict.ingress, flow.dst)]
    {
        let who = describe(index, end);
        let line = match side {
            SideVerdict::NotAPod => format!("{dir:<7} {who}: outside the cluster, no policy applies"),
            SideVerdict::SamePod => unreachable!("handled above"),
            SideVerdict::NotIsolated => {
                format!("{dir:<7} {who}: not isolated (no policy of type {} selects it)", capitalized(dir))
            }
            SideVerdict::Allowed(r) => {
                let policy = index.policy(r.policy).policy();
                let rule = &policy.rules(dir)[r.rule];
                let mut detail = format!("allowed by {}", rule_ref(index, &r));
                if let Some(p) = r.peer {
                    let _ = write!(
                        detail,
                        "\n          peer: {}",
                        palisade_policy::describe::peer(&rule.peers[p], &policy.namespace)
                    );
                }
                if let Some(p) = r.port {
                    let _ = write!(detail, "\n          port: {}", palisade_policy::describe::port(&rule.ports[p]));
                }
                format!(
                    "{dir:<7} {who}: isolated by {}\n          {detail}",
                    isolating_names(&state.index, flow, dir).join(", ")
                )
            }
            SideVerdict::Denied => format!(
                "{dir:<7} {who}: isolated by {}\n          {}",
                isolating_names(&state.index, flow, dir).join(", "),
                style.bad("no rule of these policies admits this connection")
            ),
        };
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn capitalized(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    }
}
