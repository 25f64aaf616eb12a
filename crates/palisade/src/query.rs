//! `palisade query`: JSON Lines in, one JSON line out per query, same order.
//!
//! Input: `{"from":"x/a","to":"y/b","port":80,"protocol":"TCP"}`; `from`/`to`
//! are `namespace/pod` or an IP address; `protocol` defaults to TCP (any
//! letter case); an optional `id` (any JSON value) is echoed. Output echoes
//! the query and adds `allowed` and `reason`. A bad line yields
//! `{"error":"…","line":N}` in its place. Blank lines are skipped. Output is
//! flushed whenever no more input is buffered, so the command can be driven
//! interactively over a pipe.

use std::borrow::Cow;
use std::io::{self, BufRead as _, BufReader, Read, Write};

use palisade_policy::{ClusterIndex, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::endpoint::{flow, resolve};
use crate::verdict_text::reason;

#[derive(Deserialize)]
struct QueryIn<'a> {
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow)]
    to: Cow<'a, str>,
    port: i64,
    #[serde(borrow, default)]
    protocol: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct QueryOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    from: &'a str,
    to: &'a str,
    port: u16,
    protocol: Protocol,
    allowed: bool,
    reason: String,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    error: String,
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

/// Answers one line; `Err` carries the message for the error object.
fn answer<'a>(index: &ClusterIndex, q: &'a QueryIn<'a>) -> Result<QueryOut<'a>, String> {
    let port =
        u16::try_from(q.port).ok().filter(|p| *p >= 1).ok_or_else(|| format!("port {} is not in 1-65535", q.port))?;
    let protocol = match q.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse_loose(p).ok_or_else(|| format!("protocol {p:?} is not TCP, UDP or SCTP"))?,
    };
    let from = resolve(index, &q.from).map_err(|e| format!("from: {e}"))?;
    let to = resolve(index, &q.to).map_err(|e| format!("to: {e}"))?;
    let flow = flow(index, &from, &to, port, protocol);
    let verdict = index.evaluate(&flow);
    Ok(QueryOut {
        id: q.id,
        from: &q.from,
        to: &q.to,
        port,
        protocol,
        allowed: verdict.allowed,
        reason: reason(index, &flow, &verdict),
    })
}

/// Runs the query loop until end of input.
pub fn run<R: Read, W: Write>(index: &ClusterIndex, reader: &mut BufReader<R>, writer: &mut W) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<QueryIn<'_>>(&line) {
            Ok(q) => match answer(index, &q) {
                Ok(out) => {
                    serde_json::to_writer(&mut *writer, &out)?;
                    stats.answered += 1;
                }
                Err(error) => {
                    serde_json::to_writer(&mut *writer, &ErrorOut { id: q.id, error, line: number })?;
                    stats.errors += 1;
                }
            },
            Err(e) => {
                serde_json::to_writer(
                    &mut *writer,
                    &ErrorOut { id: None, error: format!("bad query: {e}"), line: number },
                )?;
                stats.errors += 1;
            }
        }
        writer.write_all(b"\n")?;
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
    }
    writer.flush()?;
    Ok(stats)
}
