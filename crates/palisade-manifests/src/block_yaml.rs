//! kubectl's block YAML read straight to JSON text, without libyaml.
//!
//! `kubectl get -o yaml`, `helm template` and many hand-written manifests
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
//!
//! This file follows the lines (mappings, sequences, literals); `scalar`
//! reads what is on a line (keys, quoted and plain scalars) and writes it.

use scalar::{
    Key, double_quoted, ends_line, find_key, plain_value, single_quoted, write_key, write_plain, write_string,
};

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
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
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

/// A `-` entry: `-` alone or followed by a space.
fn is_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Nothing, or a comment (the text after a value, spaces trimmed).
fn is_blank_or_comment(text: &str) -> bool {
    text.is_empty() || text.starts_with('#')
}

mod scalar;
#[cfg(test)]
mod tests;
