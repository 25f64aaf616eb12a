//! `palisade check`: is one connection allowed, and why.

use std::fmt::Write as _;
use std::net::IpAddr;

use palisade_policy::{Direction, Flow, Protocol, SideVerdict};
use serde::Serialize;

use super::{EXIT_ERROR, TextOrJson};
use crate::endpoint::{Named, describe_named, flow, name_and_address, namespace_of, resolve, shared_node};
use crate::inputs::{IncompleteJson, State};
use crate::style::Style;
use crate::verdict_text::{rule_ref, tier_ref, tier_rules};
use palisade_policy::AuditPolicies;
use palisade_policy::attribution::{SideAttribution, isolating_names, side_attribution};

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
struct CheckJson<'a> {
    allowed: bool,
    /// The pod's `namespace/name`, or the address.
    from: String,
    /// The source address the verdict is for (absent for a pod without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    from_addr: Option<IpAddr>,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_addr: Option<IpAddr>,
    port: u16,
    protocol: Protocol,
    egress: SideAttribution,
    ingress: SideAttribution,
    #[serde(skip_serializing_if = "Option::is_none")]
    incomplete: Option<IncompleteCheck<'a>>,
    /// The node both ends are on when one is a hostNetwork pod: allowed,
    /// whatever the policies say (traffic between a pod and its own node
    /// is not filtered).
    #[serde(skip_serializing_if = "Option::is_none")]
    same_node: Option<&'a str>,
}

/// What in the input could change this verdict without Palisade knowing.
#[derive(Serialize)]
struct IncompleteCheck<'a> {
    #[serde(flatten)]
    input: IncompleteJson<'a>,
    /// Ignored policies that could select either end (`Kind (group) ns/name`).
    could_change: Vec<String>,
}

/// Runs `check`: exit 0 allowed, 1 denied, 2 error, 3 when policies of
/// kinds Palisade does not evaluate could change the verdict.
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
    let mut verdict = index.evaluate(&flow);
    let node = shared_node(index, &from, &to);
    if node.is_some() {
        verdict.allowed = true;
    }
    let could_change: Vec<String> = state
        .could_change(namespace_of(index, flow.src), namespace_of(index, flow.dst))
        .iter()
        .map(|p| p.label())
        .collect();
    match output {
        TextOrJson::Json => {
            let machine = |named: &Named, end| match named {
                Named::HostNetwork(id) => (index.pod_name(*id).to_string(), name_and_address(index, end).1),
                _ => name_and_address(index, end),
            };
            let (from, from_addr) = machine(&from, flow.src);
            let (to, to_addr) = machine(&to, flow.dst);
            let incomplete =
                state.incomplete_json().map(|input| IncompleteCheck { input, could_change: could_change.clone() });
            let json = CheckJson {
                allowed: verdict.allowed,
                from,
                from_addr,
                to,
                to_addr,
                incomplete,
                same_node: node,
                port: flow.port,
                protocol: flow.protocol,
                egress: side_attribution(index, &flow, Direction::Egress, &verdict, AuditPolicies::Include),
                ingress: side_attribution(index, &flow, Direction::Ingress, &verdict, AuditPolicies::Include),
            };
            println!("{}", serde_json::to_string_pretty(&json).expect("plain data serializes"));
        }
        TextOrJson::Text => {
            print!("{}", text(state, &flow, (&from, &to), style));
            if !could_change.is_empty() {
                println!(
                    "  {}: {} could change this verdict (kinds Palisade does not evaluate)",
                    style.warn("INCOMPLETE"),
                    could_change.join(", ")
                );
            }
        }
    }
    state.exit(u8::from(!verdict.allowed), !could_change.is_empty())
}

/// The human report; `ends` as named, which tells a hostNetwork pod from
/// its node's address.
#[must_use]
pub fn text(state: &State, flow: &Flow, ends: (&Named, &Named), style: Style) -> String {
    let index = &state.index;
    let verdict = index.evaluate(flow);
    let node = shared_node(index, ends.0, ends.1);
    let allowed = verdict.allowed || node.is_some();
    let head = if allowed { style.good("ALLOW") } else { style.bad("DENY") };
    let mut out = format!(
        "{head} {} -> {} {}/{}\n",
        describe_named(index, ends.0, flow.src),
        describe_named(index, ends.1, flow.dst),
        flow.protocol,
        flow.port
    );
    if let Some(node) = node {
        let _ = writeln!(
            out,
            "  same node {node}: traffic between a pod and its own node is never filtered \
             (it is not forwarded; the policies below do not apply to it)"
        );
    }
    if verdict.egress == SideVerdict::SamePod {
        out.push_str("  a pod can always reach itself\n");
        return out;
    }
    for (dir, side, end, named) in
        [(Direction::Egress, verdict.egress, flow.src, ends.0), (Direction::Ingress, verdict.ingress, flow.dst, ends.1)]
    {
        let who = describe_named(index, named, end);
        if let Some(pass) = verdict.pass(dir) {
            let _ = writeln!(out, "  {dir:<7} {who}: {}, evaluation goes on in the next tier", tier_ref(index, &pass));
        }
        let line = match side {
            SideVerdict::Tier(r) => {
                let policy = index.cluster_policy(r.policy).policy();
                let rule = &policy.rules(dir)[r.rule];
                let outcome =
                    if r.action == palisade_policy::Action::Deny { style.bad("denied") } else { "allowed".into() };
                let mut detail = format!("{outcome} by {}", tier_ref(index, &r));
                let _ = write!(
                    detail,
                    "\n          peer: {}",
                    palisade_policy::describe::cluster_peer(&rule.peers[r.peer])
                );
                if let (Some(p), Some(ports)) = (r.port, &rule.ports) {
                    let _ = write!(detail, "\n          port: {}", palisade_policy::describe::cluster_port(&ports[p]));
                }
                format!("{dir:<7} {who}: {detail}")
            }
            SideVerdict::NotAPod => format!("{dir:<7} {who}: outside the cluster, no policy applies"),
            SideVerdict::SamePod => unreachable!("handled above"),
            SideVerdict::NotIsolated if verdict.pass(dir).is_none() && tier_rules(index, flow, dir) => format!(
                "{dir:<7} {who}: allowed: no cluster policy rule matches, and no NetworkPolicy of type {} selects it",
                capitalized(dir)
            ),
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
