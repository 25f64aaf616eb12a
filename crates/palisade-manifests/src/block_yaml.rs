//! kubectl's block YAML read straight to JSON text, without libyaml.
//!
//! `kubectl get -o yaml`, `helm template` and most hand-written manifests
//! use a small part of YAML: block mappings and sequences, one-line plain
//! and quoted scalars, `|` literals, `{}` and `[]`. [`to_json`] reads that
//! part and nothing else, and gives the JSON text that serde_norway's
//! transcoding gives for it (the same values, keys in the same order). On
//! anything outside it (anchors, aliases, tags, flow collections, folded,
//! multi-line or more-indented scalars, tabs, CR, directives, scalars that
//! resolve to floats or to non-decimal integers, keys that are not
//! strings, any syntax error) it gives `None`, and the caller reads the
//! document with serde_norway as before: so nothing is read differently,
//! and every error keeps its line and column.

/// The JSON text of one YAML document (a mapping at the top), or `None`
/// when the document is not in the part this reader knows.
pub(crate) fn to_json(document: &str) -> Option<String> {
    if !simple_characters(document) {
        return None;
    }
    let mut reader =
        Reader { text: document, at: 0, out: String::with_capacity(document.len() + document.len() / 4), depth: 0 };
    let first = reader.document_start()?;
    if is_entry(reader.content(first)) {
        return None;
    }
    reader.mapping(first.indent, None)?;
    // Anything left is less indented than the top mapping: an error.
    reader.peek().is_none().then_some(reader.out)
}

/// Mappings and sequences nested deeper than this are left to serde_norway
/// (whose own limit is 128).
const MAX_DEPTH: usize = 64;

/// Implicit keys longer than this are an error in YAML.
const MAX_KEY: usize = 1000;

/// Whether `text` holds only characters this reader handles: printable
/// ASCII, `\n`, and characters above U+009F that YAML neither rejects nor
/// reads as a line break or a byte-order mark.
fn simple_characters(text: &str) -> bool {
    let mut ascii = true;
    for &b in text.as_bytes() {
        match b {
            b'\n' | 0x20..=0x7e => {}
            0x80.. => ascii = false,
            _ => return false,
        }
    }
    ascii
        || !text
            .chars()
            .any(|c| matches!(c, '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'))
}

/// A line with content (not blank, not only a comment).
#[derive(Clone, Copy, Debug)]
struct Line {
    /// Where the line starts in the text.
    start: usize,
    /// The column its content starts at.
    indent: usize,
    /// Where it ends (its `\n`, or the end of the text).
    end: usize,
}

struct Reader<'a> {
    text: &'a str,
    /// Where the next unread line starts.
    at: usize,
    out: String,
    depth: usize,
}

/// Nothing: the document is left to serde_norway.
type Read<T = ()> = Option<T>;

impl<'a> Reader<'a> {
    fn content(&self, line: Line) -> &'a str {
        &self.text[line.start + line.indent..line.end]
    }

    /// The raw line starting at `start`: its end and its indentation.
    fn raw_line(&self, start: usize) -> (usize, usize) {
        let bytes = self.text.as_bytes();
        let end = memchr_newline(&bytes[start..]).map_or(bytes.len(), |i| start + i);
        let indent = bytes[start..end].iter().take_while(|&&b| b == b' ').count();
        (end, indent)
    }

    /// The next line with content, not consumed.
    fn peek(&self) -> Option<Line> {
        let mut start = self.at;
        while start < self.text.len() {
            let (end, indent) = self.raw_line(start);
            let first = self.text.as_bytes().get(start + indent);
            if start + indent < end && first != Some(&b'#') {
                return Some(Line { start, indent, end });
            }
            start = end + 1;
        }
        None
    }

    fn consume(&mut self, line: Line) {
        self.at = (line.end + 1).min(self.text.len());
    }

    /// Skips comments and one bare `---` line; the first line of content.
    fn document_start(&mut self) -> Read<Line> {
        let line = self.peek()?;
        let content = self.content(line);
        if line.indent == 0 && content.starts_with("---") {
            let after = &content[3..];
            if !ends_line(after) {
                return None;
            }
            self.consume(line);
            return self.peek();
        }
        Some(line)
    }

    fn deeper(&mut self) -> Read {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// A block mapping whose keys are at column `indent`; its first line is
    /// `first` when that is the rest of a sequence entry's line.
    fn mapping(&mut self, indent: usize, mut first: Option<Line>) -> Read {
        self.deeper()?;
        self.out.push('{');
        let mut entries = 0usize;
        loop {
            let line = match first.take() {
                Some(line) => line,
                None => match self.peek() {
                    Some(line) if line.indent == indent && !is_entry(self.content(line)) => line,
                    Some(line) if line.indent > indent => return None,
                    // Less indented, or a `-` at this indent (an error,
                    // found by whoever reads on): the mapping ends.
                    _ => break,
                },
            };
            let content = self.content(line);
            let Key::At { key, after } = find_key(content)? else { return None };
            if entries > 0 {
                self.out.push(',');
            }
            entries += 1;
            write_key(&mut self.out, key)?;
            self.out.push(':');
            let rest = content[after..].trim_start_matches(' ');
            let rest_at = line.end - rest.len();
            self.consume(line);
            if is_blank_or_comment(rest) {
                self.nested(indent, true)?;
            } else {
                self.inline(rest_at, line.end, indent)?;
            }
        }
        self.out.push('}');
        self.depth -= 1;
        Some(())
    }

    /// A block sequence whose `-` are at column `indent`.
    fn sequence(&mut self, indent: usize) -> Read {
        self.deeper()?;
        self.out.push('[');
        let mut items = 0usize;
        while let Some(line) = self.peek() {
            if line.indent > indent {
                return None;
            }
            if line.indent < indent || !is_entry(self.content(line)) {
                break;
            }
            if items > 0 {
                self.out.push(',');
            }
            items += 1;
            let after_dash = &self.content(line)[1..];
            let rest = after_dash.trim_start_matches(' ');
            let column = line.indent + 1 + (after_dash.len() - rest.len());
            if is_blank_or_comment(rest) {
                self.consume(line);
                self.nested(indent, false)?;
            } else if is_entry(rest) {
                return None;
            } else if let Key::At { .. } = find_key(rest)? {
                self.mapping(column, Some(Line { start: line.start, indent: column, end: line.end }))?;
            } else {
                self.consume(line);
                self.inline(line.end - rest.len(), line.end, indent)?;
            }
        }
        self.out.push(']');
        self.depth -= 1;
        Some(())
    }

    /// The value of a key at column `indent` (or of a `-` there, when not
    /// `in_mapping`) whose line holds nothing after the `:` or `-`.
    fn nested(&mut self, indent: usize, in_mapping: bool) -> Read {
        match self.peek() {
            Some(line) if line.indent > indent => {
                if is_entry(self.content(line)) {
                    self.sequence(line.indent)
                } else {
                    self.mapping(line.indent, None)
                }
            }
            Some(line) if in_mapping && line.indent == indent && is_entry(self.content(line)) => self.sequence(indent),
            _ => {
                self.out.push_str("null");
                Some(())
            }
        }
    }

    /// A value written on its key's (or `-`'s) line, `text[from..end]`, for
    /// an owner at column `indent`; the line is already consumed.
    fn inline(&mut self, from: usize, end: usize, indent: usize) -> Read {
        let value: &'a str = &self.text[from..end];
        let trailing = match value.as_bytes()[0] {
            b'|' => return self.literal(&value[1..], indent),
            b'"' => {
                let (text, rest) = double_quoted(value)?;
                write_string(&mut self.out, &text);
                rest
            }
            b'\'' => {
                let (text, rest) = single_quoted(value)?;
                write_string(&mut self.out, &text);
                rest
            }
            b'{' | b'[' => {
                let rest = value.strip_prefix("{}").or_else(|| value.strip_prefix("[]"))?;
                self.out.push_str(&value[..2]);
                rest
            }
            _ => {
                let text = plain_value(value)?;
                write_plain(&mut self.out, text)?;
                ""
            }
        };
        if !ends_line(trailing) {
            return None;
        }
        self.after_scalar(indent)
    }

    /// After a scalar, a more indented line would continue it (or be an
    /// error): both are left to serde_norway.
    fn after_scalar(&self, indent: usize) -> Read {
        match self.peek() {
            Some(line) if line.indent > indent => None,
            _ => Some(()),
        }
    }

    /// A `|` or `|-` literal (`header` is what follows the `|`) for an
    /// owner at column `indent`: its lines, less their common indentation,
    /// each ending in `\n` (the last one too for `|`).
    fn literal(&mut self, header: &str, indent: usize) -> Read {
        let (strip, comment) = match header.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, header),
        };
        if !ends_line(comment) {
            return None;
        }
        let mut text = String::new();
        let mut content_indent = None;
        while self.at < self.text.len() {
            let (end, spaces) = self.raw_line(self.at);
            if self.at + spaces == end || end == self.text.len() {
                // Blank lines (kept or dropped by rules this reader does not
                // follow) and a last line without `\n`: serde_norway's.
                return None;
            }
            let wanted = *content_indent.get_or_insert(spaces);
            if wanted <= indent {
                // An empty literal.
                return None;
            }
            if spaces < wanted {
                break;
            }
            text.push_str(&self.text[self.at + wanted..end]);
            text.push('\n');
            self.at = end + 1;
        }
        // A literal with no line at all (at the end of the text).
        content_indent?;
        if strip {
            text.pop();
        }
        write_string(&mut self.out, &text);
        self.after_scalar(indent)
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// A `-` entry: `-` alone or followed by a space.
fn is_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Nothing, or a comment (the text after a value, spaces trimmed).
fn is_blank_or_comment(text: &str) -> bool {
    text.is_empty() || text.starts_with('#')
}

/// Whether what follows a value on its line is nothing, spaces, or a
/// comment after at least one space.
fn ends_line(trailing: &str) -> bool {
    let rest = trailing.trim_start_matches(' ');
    rest.is_empty() || rest.starts_with('#') && rest.len() < trailing.len()
}

/// What a line's content starts with.
enum Key<'a> {
    /// A key (its scalar, as written) and the offset after its `:`.
    At { key: Scalar<'a>, after: usize },
    /// No key: a scalar value.
    Not,
}

/// A scalar as written.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Plain(&'a str),
    Quoted(&'a str),
}

/// Whether `content` starts with a key and its `:`; `None` for what this
/// reader leaves to serde_norway.
fn find_key(content: &str) -> Read<Key<'_>> {
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
fn write_key(out: &mut String, key: Scalar<'_>) -> Read {
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
fn single_quoted(text: &str) -> Read<(String, &str)> {
    let end = quoted_end(text)?;
    Some((text[1..end - 1].replace("''", "'"), &text[end..]))
}

/// A double-quoted scalar at the start of `text`: its value (escapes
/// read as YAML reads them) and what follows it on the line.
fn double_quoted(text: &str) -> Read<(String, &str)> {
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
fn plain_value(value: &str) -> Read<&str> {
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
fn write_plain(out: &mut String, text: &str) -> Read {
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
fn write_string(out: &mut String, text: &str) {
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

#[cfg(test)]
mod tests;
