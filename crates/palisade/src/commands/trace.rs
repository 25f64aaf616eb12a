//! `palisade trace`: the next real packet of a flow followed through this
//! node's chains (the node's network namespace, as root), mapped back to
//! policies and rules beside the engine's verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_dataplane::trace::{TraceMatch, trace_once};
use palisade_dataplane::trace_explain::explain;
use palisade_dataplane::{NodeScope, compile};

use super::check::CheckArgs;
use super::{EXIT_ERROR, TextOrJson};
use crate::endpoint::{flow, name_and_address, resolve};
use crate::inputs::State;

/// What to trace.
#[derive(Debug)]
pub struct TraceArgs<'a> {
    /// The flow.
    pub flow: CheckArgs<'a>,
    /// The node whose pods the agent programs (`None`: every pod).
    pub node: Option<&'a str>,
    /// How long to wait for a packet.
    pub timeout: Duration,
}

/// Runs `trace`: exit 0 when the kernel and the engine agree, 1 when they
/// do not, 2 on error or when no packet came.
#[must_use]
pub fn run(state: &State, args: &TraceArgs<'_>, output: TextOrJson) -> u8 {
    let index = &state.index;
    let ends = resolve(index, args.flow.from).and_then(|f| Ok((f, resolve(index, args.flow.to)?)));
    let (from, to) = match ends {
        Ok(ends) => ends,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let flow = flow(index, &from, &to, args.flow.port, args.flow.protocol);
    let (from_name, src) = name_and_address(index, flow.src);
    let (to_name, dst) = name_and_address(index, flow.dst);
    let (Some(src), Some(dst)) = (src, dst) else {
        eprintln!("error: both ends need an address to match packets by");
        return EXIT_ERROR;
    };
    let marked = TraceMatch { src, dst, protocol: args.flow.protocol, port: args.flow.port };
    eprintln!(
        "waiting up to {} s for a packet of {from_name} -> {to_name} {}/{}",
        args.timeout.as_secs(),
        args.flow.protocol,
        args.flow.port
    );
    let traced = match trace_once(&marked, || {}, args.timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e} (trace needs root and nft, in the node's network namespace)");
            return EXIT_ERROR;
        }
    };
    let scope = args.node.map_or(NodeScope::All, |n| NodeScope::Node(n.to_string()));
    let program = compile(index, &scope, &BTreeMap::new());
    let report = explain(&traced.events, &traced.positions, &program, index, &flow);
    match output {
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&report).expect("plain data serializes")),
        TextOrJson::Text => {
            println!("TRACE {from_name} ({src}) -> {to_name} ({dst}) {}/{}", args.flow.protocol, args.flow.port);
            print!("{}", report.text());
        }
    }
    match report.agrees {
        Some(true) => 0,
        Some(false) => 1,
        None => EXIT_ERROR,
    }
}
