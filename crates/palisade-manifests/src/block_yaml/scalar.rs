//! What is on one line of block YAML: a key and its `:`, and quoted and
//! plain scalars, read as serde_norway reads them and written as JSON.

use super::Read;

/// Implicit keys over 1,024 characters are an error in YAML; from this
/// many bytes on, a key is left to serde_norway.
const MAX_KEY: usize = 1000;

/// Whether what follows a value on its line is nothing, spaces, or a
/// comment after at least one space.
pub(super) fn ends_line(trailing: &str) -> bool {
    let rest = trailing.trim_start_matches(' ');
    rest.is_empty() || rest.starts_with('#') && rest.len() < trailing.len()
}

/// What a line's content starts with.
pub(super) enum Key<'a> {
    /// A key (its scalar, as written) and the offset after its `:`.
    At { key: Scalar<'a>, after: usize },
    /// No key: a scalar value.
    Not,
}

/// A scalar as written.
#[derive(Clone, Copy)]
pub(super) enum Scalar<'a> {
    Plain(&'a str),
    Quoted(&'a str),
}

/// Whether `content` starts with a key and its `:`; `None` for what this
/// reader leaves to serde_norway.
pub(super) fn find_key(content: &str) -> Read<Key<'_>> {
    let bytes = content.as_bytes();
    let (key, after_key) = match bytes[0] {
        b'"' | b'\'' => {
            let close = quoted_end(content)?;
            (Scalar::Quoted(&content[..close]), close)
        }
        _ => {
            let mut i = 0;
            loop {
                match bytes.get(i) {
                    None => return Some(Key::Not),
                    Some(b':') if matches!(bytes.get(i + 1), None | Some(b' ')) => break,
                    Some(b'#') if i > 0 && bytes[i - 1] == b' ' => return Some(Key::Not),
                    _ => i += 1,
                }
            }
            let key = &content[..i];
            if key.ends_with(' ') || !plain_start(key) {
                return None;
            }
            (Scalar::Plain(key), i)
        }
    };
    if after_key > MAX_KEY {
        return None;
    }
    match &bytes[after_key..] {
        [b':'] | [b':', b' ', ..] => Some(Key::At { key, after: after_key + 1 }),
        _ if matches!(key, Scalar::Quoted(_)) && ends_line(&content[after_key..]) => Some(Key::Not),
        _ => None,
    }
}

/// Writes a key, which must be a string.
pub(super) fn write_key(out: &mut String, key: Scalar<'_>) -> Read {
    match key {
        Scalar::Plain(text) => {
            if !matches!(resolve(text)?, Resolved::Str) || text == "<<" {
                return None;
            }
            write_string(out, text);
        }
        Scalar::Quoted(quoted) => {
            let (text, rest) = if quoted.starts_with('"') { double_quoted(quoted)? } else { single_quoted(quoted)? };
            debug_assert!(rest.is_empty());
            write_string(out, &text);
        }
    }
    Some(())
}

/// The length of the quoted scalar `text` starts with, quotes included,
/// when it ends on this line.
fn quoted_end(text: &str) -> Read<usize> {
    let bytes = text.as_bytes();
    let quote = bytes[0];
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// A single-quoted scalar at the start of `text`: its value and what
/// follows it on the line.
pub(super) fn single_quoted(text: &str) -> Read<(String, &str)> {
    let end = quoted_end(text)?;
    Some((text[1..end - 1].replace("''", "'"), &text[end..]))
}

/// A double-quoted scalar at the start of `text`: its value (escapes
/// read as YAML reads them) and what follows it on the line.
pub(super) fn double_quoted(text: &str) -> Read<(String, &str)> {
    let end = quoted_end(text)?;
    let inner = &text[1..end - 1];
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        let escaped = match chars.next()? {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => hex_char(&mut chars, 2)?,
            'u' => hex_char(&mut chars, 4)?,
            'U' => hex_char(&mut chars, 8)?,
            _ => return None,
        };
        value.push(escaped);
    }
    Some((value, &text[end..]))
}

/// The character of the next `digits` hexadecimal digits.
fn hex_char(chars: &mut std::str::Chars<'_>, digits: usize) -> Read<char> {
    let mut code = 0u32;
    for _ in 0..digits {
        code = code * 16 + chars.next()?.to_digit(16)?;
    }
    char::from_u32(code)
}

/// Whether a plain scalar may start as `text` does in block context: not
/// with an indicator, except `-` before anything but a space; and not as a
/// document marker (`---`, `...`) starts.
fn plain_start(text: &str) -> bool {
    if text.starts_with("---") || text.starts_with("...") {
        return false;
    }
    match text.as_bytes() {
        [b'-', next, ..] => *next != b' ',
        [first, ..] => !b"-?:,[]{}#&*!|>'\"%@`".contains(first),
        [] => false,
    }
}

/// A plain scalar written as a value: the text before a comment, trailing
/// spaces trimmed.
pub(super) fn plain_value(value: &str) -> Read<&str> {
    let bytes = value.as_bytes();
    let mut end = bytes.len();
    for i in 1..bytes.len() {
        if bytes[i] == b'#' && bytes[i - 1] == b' ' {
            end = i;
            break;
        }
        if bytes[i - 1] == b':' && bytes[i] == b' ' {
            // A mapping on a value's line: an error.
            return None;
        }
    }
    let text = value[..end].trim_end_matches(' ');
    (plain_start(text) && !text.ends_with(':')).then_some(text)
}

/// How serde_norway resolves a plain scalar (as `visit_untagged_scalar`
/// does), for the cases this reader writes.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    Null,
    Bool,
    /// A decimal integer written as JSON writes it.
    Int,
    Str,
}

/// `None` for floats, integers in other bases or beyond 64 bits, and
/// anything else that might read as a number.
fn resolve(text: &str) -> Read<Resolved> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Resolved::Null),
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Some(Resolved::Bool),
        _ => {}
    }
    let bytes = text.as_bytes();
    if !matches!(bytes[0], b'0'..=b'9' | b'+' | b'-' | b'.') {
        return Some(Resolved::Str);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let decimal = digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty();
    if decimal && (digits == "0" && digits.len() == text.len() || !digits.starts_with('0')) {
        // As serde_norway: u64 first, then i64; larger ones are left to it.
        let fits = if digits.len() == text.len() { text.parse::<u64>().is_ok() } else { text.parse::<i64>().is_ok() };
        return fits.then_some(Resolved::Int);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case(".inf") || unsigned.eq_ignore_ascii_case(".nan") {
        // YAML's spellings (Rust's parser knows only `inf` and `nan`).
        return None;
    }
    if unsigned.len() > 1 && unsigned.starts_with('0') && unsigned[1..].bytes().all(|b| b.is_ascii_digit()) {
        // Leading zeros: a string (YAML 1.2).
        return Some(Resolved::Str);
    }
    // `0x1f`, `0o17`, `0b101`; `0b4c-...` (a uid) is a string.
    let other_base = [("0x", 16), ("0o", 8), ("0b", 2)].iter().any(|&(prefix, radix)| {
        unsigned.strip_prefix(prefix).is_some_and(|rest| {
            rest.starts_with(['+', '-']) || !rest.is_empty() && rest.chars().all(|c| c.is_digit(radix))
        })
    });
    if other_base || unsigned.parse::<f64>().is_ok() || text.parse::<f64>().is_ok() {
        return None;
    }
    Some(Resolved::Str)
}

/// Writes a plain scalar as serde_norway resolves it.
pub(super) fn write_plain(out: &mut String, text: &str) -> Read {
    match resolve(text)? {
        Resolved::Null => out.push_str("null"),
        Resolved::Bool => out.push_str(if text.starts_with(['t', 'T']) { "true" } else { "false" }),
        Resolved::Int => out.push_str(text),
        Resolved::Str => write_string(out, text),
    }
    Some(())
}

/// Writes `text` as a JSON string, escaped as serde_json escapes it (so
/// that the text is the one transcoding gives, byte for byte).
pub(super) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&text[from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        from = i + 1;
    }
    out.push_str(&text[from..]);
    out.push('"');
}
