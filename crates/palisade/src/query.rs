//! `palisade query`: JSON Lines in, one JSON line out per query, same order.
//!
//! Input: `{"from":"x/a","to":"y/b","port":80,"protocol":"TCP"}`; `from`/`to`
//! are `namespace/pod` or an IP address; `protocol` defaults to TCP (any
//! letter case); an optional `id` (any JSON value) is echoed. Output echoes
//! the query and adds `allowed` and `reason`. A bad line yields
//! `{"error":"…","line":N}` in its place. An answer that policies of kinds
//! Palisade does not evaluate could change ends with `"incomplete":true`.
//! Blank lines are skipped. Output is
//! flushed whenever no more input is buffered, so the command can be driven
//! interactively over a pipe.

use std::borrow::Cow;
use std::io::{self, BufRead as _, BufReader, Read, Write};

use palisade_manifests::IgnoredPolicy;
use palisade_policy::{ClusterIndex, Flow, Protocol, Verdict};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::endpoint::{flow, namespace_of, resolve, shared_node};
use crate::query_line::{QueryIn, parse};
use crate::verdict_text::{push_number, write_reason};

/// Appends `s` as a JSON string: copied as is when nothing needs escaping
/// (the common case: pod names, addresses, reasons), else via serde_json.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if crate::query_line::needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    } else {
        push_quoted(out, s);
    }
}

fn push_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Appends a string read from the query: a borrowed one is a slice of the
/// input JSON without escapes (the scanner and serde_json borrow only
/// those), so it is echoed verbatim; a decoded one is escaped again.
#[expect(clippy::ptr_arg, reason = "whether the text is borrowed tells whether it was escaped")]
fn push_echo(out: &mut Vec<u8>, s: &Cow<'_, str>) {
    match s {
        Cow::Borrowed(s) => push_quoted(out, s),
        Cow::Owned(s) => push_json_str(out, s),
    }
}

/// Appends one answer line (without the newline): the query echoed, then
/// `allowed` and `reason`.
fn push_answer(out: &mut Vec<u8>, index: &ClusterIndex, ready: &Ready<'_>, verdict: &Verdict) {
    out.push(b'{');
    if let Some(id) = ready.query.id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"from\":");
    push_echo(out, &ready.query.from);
    out.extend_from_slice(b",\"to\":");
    push_echo(out, &ready.query.to);
    out.extend_from_slice(b",\"port\":");
    push_number(out, usize::from(ready.port));
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(ready.protocol.as_str().as_bytes());
    if ready.same_node {
        out.extend_from_slice(
            b"\",\"allowed\":true,\"reason\":\"same node: traffic between a pod and its own node is not filtered\"}",
        );
        return;
    }
    out.extend_from_slice(if verdict.allowed {
        b"\",\"allowed\":true,\"reason\":\""
    } else {
        b"\",\"allowed\":false,\"reason\":\""
    });
    // The reason is written in place; names from manifests could in
    // principle need escaping, and then it is written again, escaped.
    let reason_at = out.len();
    write_reason(out, index, &ready.flow, verdict);
    if crate::query_line::needs_escape(&out[reason_at..]) {
        let reason = String::from_utf8(out.split_off(reason_at)).expect("the reason is UTF-8");
        out.pop();
        push_json_str(out, &reason);
    } else {
        out.push(b'"');
    }
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
    /// Answers marked `"incomplete": true`: policies of kinds Palisade
    /// does not evaluate could change them.
    pub incomplete: usize,
}

/// A parsed and resolved query, ready to evaluate.
struct Ready<'a> {
    query: QueryIn<'a>,
    flow: Flow,
    port: u16,
    protocol: Protocol,
    /// A hostNetwork pod and a pod on its node: allowed, not filtered.
    same_node: bool,
}

/// Parses and resolves one line; `Err` carries the message for the error object.
fn prepare<'a>(index: &ClusterIndex, line: &'a str) -> Result<Ready<'a>, (Option<&'a str>, String)> {
    // A byte-order mark before the first line, as some editors write.
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
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
    let same_node = shared_node(index, &from, &to).is_some();
    Ok(Ready { query, flow, port, protocol, same_node })
}

/// Lines read, checked for UTF-8 and written together: one read and one
/// write per batch, not per line. (Running each phase over the whole batch
/// instead of line by line was measured and was slower.)
const BATCH: usize = 512;

/// Reads what is available now, up to `BATCH` lines, into `bytes` (waiting
/// only to complete a started line); records each non-blank line with its
/// number. Returns whether the input ended.
fn take_lines<R: Read>(
    reader: &mut BufReader<R>,
    bytes: &mut Vec<u8>,
    lines: &mut Vec<(usize, std::ops::Range<usize>)>,
    number: &mut usize,
) -> io::Result<bool> {
    let mut record = |range: std::ops::Range<usize>, bytes: &[u8], lines: &mut Vec<_>| {
        *number += 1;
        if !bytes[range.clone()].trim_ascii().is_empty() {
            lines.push((*number, range));
        }
    };
    let (mut line_start, mut taken) = (0, 0);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if line_start < bytes.len() {
                record(line_start..bytes.len(), bytes, lines);
            }
            return Ok(true);
        }
        // Up to the newline that completes the batch, else all of it.
        let want = BATCH - lines.len();
        let upto = memchr::memchr_iter(b'\n', buf).nth(want - 1).map_or(buf.len(), |at| at + 1);
        bytes.extend_from_slice(&buf[..upto]);
        reader.consume(upto);
        for at in memchr::memchr_iter(b'\n', &bytes[taken..]) {
            let end = taken + at + 1;
            record(line_start..end, bytes, lines);
            line_start = end;
        }
        taken = bytes.len();
        if lines.len() >= BATCH || (line_start == bytes.len() && reader.buffer().is_empty()) {
            return Ok(false);
        }
    }
}

/// Runs the query loop until end of input.
pub fn run<R: Read, W: Write>(index: &ClusterIndex, reader: &mut BufReader<R>, writer: &mut W) -> io::Result<Stats> {
    run_with(index, &[], reader, writer)
}

/// [`run`], marking each answer that one of `ignored` (policies of kinds
/// Palisade does not evaluate) could change with `"incomplete": true`.
pub fn run_with<R: Read, W: Write>(
    index: &ClusterIndex,
    ignored: &[IgnoredPolicy],
    reader: &mut BufReader<R>,
    writer: &mut W,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut bytes: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut lines: Vec<(usize, std::ops::Range<usize>)> = Vec::with_capacity(BATCH);
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut number = 0usize;
    loop {
        bytes.clear();
        lines.clear();
        let eof = take_lines(reader, &mut bytes, &mut lines, &mut number)?;
        // One UTF-8 check for the batch; lines end at '\n', so each range is
        // a valid slice of it. Only a batch with bad bytes is checked per line.
        let batch = std::str::from_utf8(&bytes).ok();
        let text = |range: &std::ops::Range<usize>| match batch {
            Some(batch) => Ok(&batch[range.clone()]),
            None => std::str::from_utf8(&bytes[range.clone()])
                .map_err(|e| (None, format!("bad query: the line is not UTF-8 ({e})"))),
        };
        for (line, range) in &lines {
            match text(range).and_then(|text| prepare(index, text)) {
                Ok(r) => {
                    let verdict = index.evaluate(&r.flow);
                    push_answer(&mut out, index, &r, &verdict);
                    stats.answered += 1;
                    if !ignored.is_empty() {
                        let (from, to) = (namespace_of(index, r.flow.src), namespace_of(index, r.flow.dst));
                        if ignored.iter().any(|p| p.could_affect(from, to)) {
                            out.pop();
                            out.extend_from_slice(b",\"incomplete\":true}");
                            stats.incomplete += 1;
                        }
                    }
                }
                Err((id, error)) => {
                    let id = id.and_then(|raw| serde_json::from_str::<&RawValue>(raw).ok());
                    serde_json::to_writer(&mut out, &ErrorOut { id, error: &error, line: *line })?;
                    stats.errors += 1;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::{Pod, PodState};

    fn index() -> ClusterIndex {
        let pod = |name: &str, ip: &str| Pod {
            namespace: "x".into(),
            name: name.into(),
            labels: std::collections::BTreeMap::default(),
            ips: vec![ip.parse().expect("address")],
            ports: Vec::new(),
            node_name: None,
            state: PodState::Active,
            workload: None,
        };
        ClusterIndex::from_objects([], [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")], [])
    }

    fn answer(input: &[u8], buffer: usize) -> (Vec<serde_json::Value>, Stats) {
        let mut reader = BufReader::with_capacity(buffer, input);
        let mut out = Vec::new();
        let stats = run(&index(), &mut reader, &mut out).expect("in-memory I/O");
        let lines = out.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        (lines.map(|l| serde_json::from_slice(l).expect("every output line is JSON")).collect(), stats)
    }

    #[test]
    fn lines_keep_their_order_and_numbers_across_batches_and_buffers() {
        let mut input = Vec::new();
        for i in 0..(BATCH * 2 + 7) {
            match i % 5 {
                0 => input.extend_from_slice(b"\n"),
                1 => input.extend_from_slice(b"{\"from\":\"x/a\",\"to\":\"x/b\",\"port\":80}\n"),
                2 => input.extend_from_slice(b"{\"from\":\"x/\xff\",\"to\":\"x/b\",\"port\":80}\n"),
                3 => input.extend_from_slice(
                    b"  {\"to\":\"10.9.9.9\", \"from\":\"x/b\",\"port\":53,\"protocol\":\"udp\"}\r\n",
                ),
                _ => input.extend_from_slice(b"{\"from\":\"x/zz\",\"to\":\"x/b\",\"port\":80}\n"),
            }
        }
        input.extend_from_slice(b"{\"from\":\"x/a\",\"to\":\"x/b\",\"port\":81}");
        for buffer in [7, 64, 1 << 16] {
            let (answers, stats) = answer(&input, buffer);
            assert_eq!(answers.len(), stats.answered + stats.errors);
            let blank = (0..(BATCH * 2 + 7)).filter(|i| i % 5 == 0).count();
            assert_eq!(answers.len(), BATCH * 2 + 7 - blank + 1, "buffer {buffer}");
            let mut nonblank = (1..).zip(0..(BATCH * 2 + 7)).filter(|(_, i)| i % 5 != 0);
            for answer in &answers[..answers.len() - 1] {
                let (number, i) = nonblank.next().expect("one answer per non-blank line");
                match i % 5 {
                    1 => assert_eq!(answer["allowed"], true, "{answer}"),
                    3 => assert_eq!(answer["protocol"], "UDP", "{answer}"),
                    2 => {
                        assert!(answer["error"].as_str().is_some_and(|e| e.contains("UTF-8")), "{answer}");
                        assert_eq!(answer["line"], number, "{answer}");
                    }
                    _ => assert_eq!(answer["line"], number, "{answer}"),
                }
            }
            assert_eq!(answers.last().expect("last line")["port"], 81, "a last line without a newline is answered");
        }
    }
}
