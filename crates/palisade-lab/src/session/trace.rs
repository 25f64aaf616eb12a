//! `palisade lab trace`: one generated packet of a flow followed through
//! the lab node's chains, mapped back to policies and rules, beside the
//! engine's verdict.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use palisade_dataplane::trace::{TraceMatch, trace_once};
use palisade_dataplane::trace_explain::{TraceReport, explain};
use palisade_dataplane::{NodeScope, compile};
use palisade_manifests::{Input, load};
use palisade_policy::{Flow, Protocol};

use super::state::LabState;
use crate::bail;
use crate::error::{Context as _, Result};
use crate::netns;

/// An end of the traced flow: its network namespace and address.
fn end(state: &LabState, name: &str, family: Option<bool>) -> Result<(String, IpAddr)> {
    if let Some(pod) = state.pods.get(name) {
        let addr = pod.plan.addrs.iter().find(|a| family.is_none_or(|v6| a.is_ipv6() == v6));
        let Some(addr) = addr else { bail!("pod {name} has no address of that family") };
        return Ok((pod.netns.clone(), *addr));
    }
    if let Ok(addr) = name.parse::<IpAddr>() {
        if let Some(ext) = state.external.as_ref().filter(|e| e.addrs.contains(&addr)) {
            return Ok((ext.netns.clone(), addr));
        }
        if let Some(pod) = state.pods.values().find(|p| p.plan.addrs.contains(&addr)) {
            return Ok((pod.netns.clone(), addr));
        }
        bail!("{addr} is neither a lab pod's nor a lab external address");
    }
    bail!("{name} is not a lab pod (namespace/name) or address")
}

/// One packet of the flow: a TCP connection attempt or a UDP datagram,
/// from `netns` (bounded: one attempt, 500 ms).
fn send(netns: &str, to: SocketAddr, protocol: Protocol) {
    netns::run_in(netns, move || {
        if protocol == Protocol::Tcp {
            drop(std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)));
        } else {
            let bind = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            if let Ok(socket) = std::net::UdpSocket::bind(bind) {
                let _ = socket.send_to(b"palisade trace", to);
            }
        }
    });
}

/// Traces one packet from `from` to `to` on `port`/`protocol`; prints the
/// path (or JSON); exit 0 when the kernel and the engine agree, 1 when
/// they do not, 2 when nothing was traced.
///
/// # Errors
/// No lab, an unknown end, SCTP, or tracing could not start.
pub fn trace(from: &str, to: &str, port: u16, protocol: Protocol, json: bool) -> Result<u8> {
    let Some(state) = LabState::load()? else { bail!("no lab is up (palisade lab up -f DIR)") };
    if protocol == Protocol::Sctp {
        bail!("lab trace sends TCP or UDP packets (this kernel's SCTP sockets are not used by the lab)");
    }
    let (_, dst) = end(&state, to, None)?;
    let (src_ns, src) = end(&state, from, Some(dst.is_ipv6()))?;
    let node = format!("{}node", state.prefix);
    let flow = TraceMatch { src, dst, protocol, port };
    let target = SocketAddr::new(dst, port);
    let traced =
        netns::run_in(&node, move || trace_once(&flow, || send(&src_ns, target, protocol), Duration::from_secs(3)))
            .context("tracing in the lab's node")?;
    let loaded = load(&[Input::parse(&state.manifests().display().to_string())], "default");
    let index = loaded.index();
    let program = compile(&index, &NodeScope::All, &BTreeMap::new());
    let engine_flow = Flow { src: index.endpoint_at(src), dst: index.endpoint_at(dst), port, protocol };
    let report: TraceReport = explain(&traced.events, &traced.positions, &program, &index, &engine_flow);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).context("report")?);
    } else {
        println!("TRACE {from} ({src}) -> {to} ({dst}) {protocol}/{port}");
        print!("{}", report.text());
    }
    Ok(match report.agrees {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    })
}
