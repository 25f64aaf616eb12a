//! `palisade query`: JSON Lines in, one JSON line out per query, same order.
//!
//! Input: `{"from":"x/a","to":"y/b","port":80,"protocol":"TCP"}`; `from`/`to`
//! are `namespace/pod` or an IP address; `protocol` defaults to TCP (any
//! letter case); an optional `id` (any JSON value) is echoed. Output echoes
//! the query and adds `allowed` and `reason`. A bad line yields
//! `{"error":"…","line":N}` in its place. Blank lines are skipped. Output is
//! flushed whenever no more input is buffered, so the command can be driven
//! interactively over a pipe.

use std::io::{self, BufRead as _, BufReader, Read, Write};

use palisade_policy::{ClusterIndex, Flow, Protocol, Verdict};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::endpoint::{flow, resolve};
use crate::query_line::{QueryIn, parse};
use crate::verdict_text::{push_number, write_reason};

/// Appends `s` as a JSON string: copied as is when nothing needs escaping
/// (the common case: pod names, addresses, reasons), else via serde_json.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if crate::query_line::needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Appends one answer line (without the newline): the query echoed, then
/// `allowed` and `reason`.
fn push_answer(out: &mut Vec<u8>, ready: &Ready<'_>, allowed: bool, reason: &str) {
    out.push(b'{');
    if let Some(id) = ready.query.id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"from\":");
    push_json_str(out, &ready.query.from);
    out.extend_from_slice(b",\"to\":");
    push_json_str(out, &ready.query.to);
    out.extend_from_slice(b",\"port\":");
    let mut number = String::new();
    push_number(&mut number, usize::from(ready.port));
    out.extend_from_slice(number.as_bytes());
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(ready.protocol.as_str().as_bytes());
    out.extend_from_slice(if allowed {
        b"\",\"allowed\":true,\"reason\":"
    } else {
        b"\",\"allowed\":false,\"reason\":"
    });
    push_json_str(out, reason);
    out.push(b'}');
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    error: &'a str,
    line: usize,
}

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Queries answered.
    pub answered: usize,
    /// Lines that got an error.
    pub errors: usize,
}

/// A parsed and resolved query, ready to evaluate.
struct Ready<'a> {
    query: QueryIn<'a>,
    flow: Flow,
    port: u16,
    protocol: Protocol,
}

/// Parses and resolves one line; `Err` carries the message for the error object.
fn prepare<'a>(index: &ClusterIndex, line: &'a str) -> Result<Ready<'a>, (Option<&'a str>, String)> {
    let query = parse(line).map_err(|e| (None, e))?;
    let fail = |message: String| (query.id, message);
    let port = u16::try_from(query.port)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| fail(format!("port {} is not in 1-65535", query.port)))?;
    let protocol = match query.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse_loose(p).ok_or_else(|| fail(format!("protocol {p:?} is not TCP, UDP or SCTP")))?,
    };
    let from = resolve(index, &query.from).map_err(|e| fail(format!("from: {e}")))?;
    let to = resolve(index, &query.to).map_err(|e| fail(format!("to: {e}")))?;
    let flow = flow(index, &from, &to, port, protocol);
    Ok(Ready { query, flow, port, protocol })
}

/// Lines answered together: each phase (parse and resolve, evaluate, write)
/// runs over the whole batch, so the memory accesses of different queries
/// overlap instead of queueing behind each other.
const BATCH: usize = 512;

/// Runs the query loop until end of input.
pub fn run<R: Read, W: Write>(index: &ClusterIndex, reader: &mut BufReader<R>, writer: &mut W) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut text = String::new();
    let mut lines: Vec<(usize, std::ops::Range<usize>)> = Vec::with_capacity(BATCH);
    let mut reason = String::new();
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut number = 0usize;
    loop {
        // Take what is available now (up to BATCH lines) without waiting for more.
        text.clear();
        lines.clear();
        let mut eof = false;
        while lines.len() < BATCH {
            let start = text.len();
            if reader.read_line(&mut text)? == 0 {
                eof = true;
                break;
            }
            number += 1;
            if !text[start..].trim().is_empty() {
                lines.push((number, start..text.len()));
            }
            if reader.buffer().is_empty() {
                break;
            }
        }
        let prepared: Vec<_> = lines.iter().map(|(_, range)| prepare(index, &text[range.clone()])).collect();
        let verdicts: Vec<Option<Verdict>> =
            prepared.iter().map(|p| p.as_ref().ok().map(|r| index.evaluate(&r.flow))).collect();
        for ((line, _), (prepared, verdict)) in lines.iter().zip(prepared.iter().zip(verdicts)) {
            match (prepared, verdict) {
                (Ok(r), Some(verdict)) => {
                    write_reason(&mut reason, index, &r.flow, &verdict);
                    push_answer(&mut out, r, verdict.allowed, &reason);
                    stats.answered += 1;
                }
                (Err((id, error)), _) => {
                    let id = id.and_then(|raw| serde_json::from_str::<&RawValue>(raw).ok());
                    serde_json::to_writer(&mut out, &ErrorOut { id, error, line: *line })?;
                    stats.errors += 1;
                }
                (Ok(_), None) => unreachable!("every prepared query is evaluated"),
            }
            out.push(b'\n');
        }
        writer.write_all(&out)?;
        out.clear();
        if reader.buffer().is_empty() || eof {
            writer.flush()?;
        }
        if eof {
            return Ok(stats);
        }
    }
}
