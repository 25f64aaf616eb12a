//! Parsing one `query` input line.
//!
//! Most lines are flat objects of plain strings and integers; a small
//! scanner reads those without building serde state. Anything else (escapes,
//! floats, nested values, duplicates, missing fields) goes to serde_json,
//! which also words the errors. Both paths give the same result.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A query as read.
#[derive(Debug, PartialEq, Eq)]
pub struct QueryIn<'a> {
    /// `namespace/pod` or an address.
    pub from: Cow<'a, str>,
    /// `namespace/pod` or an address.
    pub to: Cow<'a, str>,
    /// Port, range-checked later.
    pub port: i64,
    /// Protocol, if given.
    pub protocol: Option<Cow<'a, str>>,
    /// `id`, as raw JSON text, echoed verbatim.
    pub id: Option<&'a str>,
}

#[derive(Deserialize)]
struct SerdeQuery<'a> {
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

/// Parses one line.
pub fn parse(line: &str) -> Result<QueryIn<'_>, String> {
    if let Some(q) = fast(line) {
        return Ok(q);
    }
    let q: SerdeQuery<'_> = serde_json::from_str(line).map_err(|e| format!("bad query: {e}"))?;
    Ok(QueryIn { from: q.from, to: q.to, port: q.port, protocol: q.protocol, id: q.id.map(RawValue::get) })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// A string without escapes or control characters; returns it and the index
/// after it. `line` is already UTF-8 and quotes are ASCII, so the slice
/// between them is a valid `str` without checking again.
fn plain_string(line: &str, i: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let len = memchr::memchr(b'"', &b[i + 1..])?;
    if needs_escape(&b[i + 1..i + 1 + len]) {
        return None;
    }
    Some((line.get(i + 1..i + 1 + len)?, i + len + 2))
}

/// Whether JSON text needs escaping: a backslash, a quote or a control
/// character. Branch-free per byte, so it vectorizes.
#[must_use]
pub fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, c| acc | u8::from(*c == b'\\') | u8::from(*c == b'"') | u8::from(*c < 0x20)) != 0
}

/// An integer of at most 18 digits (no fraction, no exponent).
fn plain_int(b: &[u8], i: usize) -> Option<(i64, usize)> {
    let negative = b.get(i) == Some(&b'-');
    let digits_from = if negative { i + 1 } else { i };
    let mut value: i64 = 0;
    let mut end = digits_from;
    while let Some(d) = b.get(end).filter(|c| c.is_ascii_digit()) {
        if end - digits_from == 18 {
            return None;
        }
        value = value * 10 + i64::from(d - b'0');
        end += 1;
    }
    if end == digits_from || matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((if negative { -value } else { value }, end))
}

fn fast(line: &str) -> Option<QueryIn<'_>> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let (mut from, mut to, mut port, mut protocol, mut id) = (None, None, None, None, None);
    i = skip_ws(b, i + 1);
    loop {
        let (key, next) = plain_string(line, i)?;
        i = skip_ws(b, next);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_start = i;
        let (string, int, next) = match b.get(i)? {
            b'"' => plain_string(line, i).map(|(s, n)| (Some(s), None, n))?,
            _ => plain_int(b, i).map(|(v, n)| (None, Some(v), n))?,
        };
        let slot_was_empty = match (key, string, int) {
            ("from", Some(s), _) => from.replace(Cow::Borrowed(s)).is_none(),
            ("to", Some(s), _) => to.replace(Cow::Borrowed(s)).is_none(),
            ("port", _, Some(v)) => port.replace(v).is_none(),
            ("protocol", Some(s), _) => protocol.replace(Cow::Borrowed(s)).is_none(),
            ("id", ..) => id.replace(line.get(value_start..next)?).is_none(),
            ("from" | "to" | "port" | "protocol", ..) => return None,
            _ => true,
        };
        if !slot_was_empty {
            return None;
        }
        i = skip_ws(b, next);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    if skip_ws(b, i + 1) != b.len() {
        return None;
    }
    Some(QueryIn { from: from?, to: to?, port: port?, protocol, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slow(line: &str) -> Result<QueryIn<'_>, String> {
        let q: SerdeQuery<'_> = serde_json::from_str(line).map_err(|e| format!("bad query: {e}"))?;
        Ok(QueryIn { from: q.from, to: q.to, port: q.port, protocol: q.protocol, id: q.id.map(RawValue::get) })
    }

    #[test]
    fn fast_path_agrees_with_serde() {
        let lines = [
            r#"{"from":"x/a","to":"y/b","port":80,"protocol":"TCP"}"#,
            r#" { "from" : "x/a" , "to" : "10.0.0.1" , "port" : 80 } "#,
            r#"{"id":"q-1","from":"x/a","to":"y/b","port":81,"extra":7}"#,
            r#"{"id":{"n":1},"from":"x/a","to":"y/b","port":81}"#,
            r#"{"from":"x\/a","to":"y/b","port":80}"#,
            r#"{"from":"x/a","to":"y/b","port":80.5}"#,
            r#"{"from":"x/a","from":"x/b","to":"y/b","port":80}"#,
            r#"{"from":"x/a","to":"y/b"}"#,
            r#"{"from":"x/a","to":"y/b","port":-3}"#,
            r#"{"from":"x/a","to":"y/b","port":80} trailing"#,
            r"[1,2]",
        ];
        for line in lines {
            if let Some(fast) = fast(line) {
                assert_eq!(Ok(fast), slow(line), "{line}");
            }
            assert_eq!(parse(line).is_ok(), slow(line).is_ok(), "{line}");
        }
        assert!(fast(lines[0]).is_some(), "the canonical form takes the fast path");
    }

    proptest! {
        #[test]
        fn fast_path_never_disagrees(from in "[ -~]{0,12}", to in "[ -~]{0,12}", port in -5i64..70_000, extra in "[ -~]{0,6}") {
            let line = format!("{{\"from\":{},\"to\":{},\"port\":{port},\"x\":{}}}",
                serde_json::to_string(&from).unwrap(), serde_json::to_string(&to).unwrap(), serde_json::to_string(&extra).unwrap());
            if let Some(fast) = fast(&line) {
                prop_assert_eq!(Ok(fast), slow(&line));
            }
            prop_assert_eq!(parse(&line).is_ok(), slow(&line).is_ok());
        }

        #[test]
        fn arbitrary_text_never_panics(line in "\\PC{0,80}") {
            let _ = parse(&line);
        }
    }
}
