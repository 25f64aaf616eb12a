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
    if let Some(q) = canonical(line).or_else(|| fast(line)) {
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
/// after it. Eight bytes per step find the closing quote and reject anything
/// serde must decode. `line` is already UTF-8 and quotes are ASCII, so the
/// slice between them is a valid `str`.
fn plain_string(line: &str, i: usize) -> Option<(&str, usize)> {
    if line.as_bytes().get(i) != Some(&b'"') {
        return None;
    }
    string_body(line, i + 1)
}

/// The string that starts at `start` (just after its opening quote), as
/// for [`plain_string`].
fn string_body(line: &str, start: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    let mut end = start;
    while let Some(chunk) = b.get(end..end + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let special = special_bytes(word);
        if special != 0 {
            end += (special.trailing_zeros() / 8) as usize;
            return (b[end] == b'"').then(|| (&line[start..end], end + 1));
        }
        end += 8;
    }
    loop {
        match *b.get(end)? {
            b'"' => return Some((&line[start..end], end + 1)),
            b'\\' => return None,
            c if c < 0x20 => return None,
            _ => end += 1,
        }
    }
}

/// High bit set in each byte lane of `word` (little endian) that holds a
/// quote, a backslash or a control character. The lowest set lane is always
/// exact (borrows only run toward higher lanes), which is all callers use.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// Whether JSON text needs escaping: a backslash, a quote or a control
/// character. Branch-free per byte, so it vectorizes.
#[must_use]
pub fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, c| acc | u8::from(*c == b'\\') | u8::from(*c == b'"') | u8::from(*c < 0x20)) != 0
}

/// An integer of at most 18 digits (no fraction, no exponent, no leading
/// zero: JSON has none).
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
    let leading_zero = b.get(digits_from) == Some(&b'0') && end - digits_from > 1;
    // serde_json reads `-0` as a float; leave it to serde.
    let negative_zero = negative && value == 0;
    if end == digits_from || leading_zero || negative_zero || matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((if negative { -value } else { value }, end))
}

/// The documented form, keys in the documented order and no spaces
/// (`{"from":"x/a","to":"y/b","port":80,"protocol":"TCP"}`, protocol
/// optional): matched against its literal parts, which is how most
/// producers write it. Anything else goes to [`fast`].
fn canonical(line: &str) -> Option<QueryIn<'_>> {
    const FROM: &str = r#"{"from":""#;
    const TO: &str = r#"","to":""#;
    const PORT: &str = r#"","port":"#;
    const PROTOCOL: &str = r#","protocol":""#;
    let literal = |at: usize, text: &str| line.as_bytes().get(at..at + text.len()) == Some(text.as_bytes());
    if !literal(0, FROM) {
        return None;
    }
    let (from, at) = string_body(line, FROM.len())?;
    if !literal(at - 1, TO) {
        return None;
    }
    let (to, at) = string_body(line, at - 1 + TO.len())?;
    if !literal(at - 1, PORT) {
        return None;
    }
    let (port, mut at) = plain_int(line.as_bytes(), at - 1 + PORT.len())?;
    let mut protocol = None;
    if literal(at, PROTOCOL) {
        let (p, next) = string_body(line, at + PROTOCOL.len())?;
        protocol = Some(Cow::Borrowed(p));
        at = next;
    }
    if !literal(at, "}") || !line.as_bytes()[at + 1..].trim_ascii().is_empty() {
        return None;
    }
    Some(QueryIn { from: Cow::Borrowed(from), to: Cow::Borrowed(to), port, protocol, id: None })
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
            if let Some(canonical) = canonical(line) {
                assert_eq!(Ok(canonical), slow(line), "{line}");
            }
            assert_eq!(parse(line).is_ok(), slow(line).is_ok(), "{line}");
        }
        assert!(fast(lines[0]).is_some(), "the canonical form takes the fast path");
        assert!(canonical(lines[0]).is_some(), "and the literal one");
        assert!(canonical("{\"from\":\"x/a\",\"to\":\"y/b\",\"port\":80}\n").is_some(), "protocol is optional");
    }

    #[test]
    fn plain_strings_of_every_length_and_stop() {
        for len in 0..20 {
            for stop in ["\"", "\\n\"", "\u{1}\"", "\u{7f}\"", "é\""] {
                let body = "a".repeat(len);
                let line = format!("\"{body}{stop}");
                let got = plain_string(&line, 0);
                match stop {
                    "\"" => assert_eq!(got, Some((body.as_str(), len + 2)), "{line:?}"),
                    "\u{7f}\"" | "é\"" => assert_eq!(got.map(|g| g.0.len()), Some(len + stop.len() - 1), "{line:?}"),
                    _ => assert_eq!(got, None, "{line:?}"),
                }
            }
        }
    }

    proptest! {
        #[test]
        fn plain_string_agrees_with_a_byte_loop(text in "[\\PC\\\\\"\u{0}-\u{1f}]{0,40}") {
            let line = format!("\"{text}");
            let first_special = line[1..].char_indices().find(|(_, c)| *c == '"' || *c == '\\' || *c < ' ').map(|(i, _)| i);
            let expected = first_special.filter(|i| line.as_bytes()[1 + i] == b'"').map(|i| (&line[1..=i], i + 2));
            prop_assert_eq!(plain_string(&line, 0), expected);
        }

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
        fn canonical_path_never_disagrees(from in "[ -~]{0,12}", to in "[ -~]{0,12}", port in "-?[0-9]{1,20}(\\.5)?",
                                          protocol in proptest::option::of("[ -~]{0,5}"), tail in "(\\}|,|\\} x|\\}\n| \\})") {
            let protocol = protocol.map(|p| format!(",\"protocol\":{}", serde_json::to_string(&p).unwrap())).unwrap_or_default();
            let line = format!("{{\"from\":{},\"to\":{},\"port\":{port}{protocol}{tail}",
                serde_json::to_string(&from).unwrap(), serde_json::to_string(&to).unwrap());
            if let Some(canonical) = canonical(&line) {
                prop_assert_eq!(Ok(canonical), slow(&line));
            }
            prop_assert_eq!(parse(&line).is_ok(), slow(&line).is_ok());
        }

        #[test]
        fn arbitrary_text_never_panics(line in "\\PC{0,80}") {
            let _ = parse(&line);
        }
    }
}
