//! Splitting a file's text into pieces that convert independently (and so
//! in parallel): in JSON, every object, with `List`s flattened without
//! building a tree (each item stays a slice of the text); in YAML, the text
//! of every document, cut at its `---` line.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::LoadError;

/// Lists nested deeper than this are rejected (no manifest nests Lists).
pub(crate) const MAX_LIST_DEPTH: usize = 4;

/// A part of a file that converts on its own.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    /// One JSON value, as a slice of the text: an object or, inside a
    /// top-level List, an item (which may be a List itself) at `depth` 1,
    /// with the kind its typed list implies.
    Json { text: &'a str, depth: usize, implied: Implying },
    /// One YAML document's text; `line` is the file's line it starts on.
    Yaml { text: &'a str, line: usize },
    /// What splitting found wrong; for a syntax error, nothing after it in
    /// the file is read.
    Error(LoadError),
}

impl Piece<'_> {
    /// Whether this is the item of a List that turned out to be something
    /// else (see [`stream_json`]): its results are dropped.
    pub(crate) fn retracted(&self) -> bool {
        self.speculation().is_some_and(|s| s.retracted())
    }

    /// For a streamed item, what settles whether it stands.
    pub(crate) fn speculation(&self) -> Option<Arc<Speculation>> {
        match self {
            Piece::Json { implied: Implying::Streamed(s), .. } => Some(Arc::clone(s)),
            _ => None,
        }
    }
}

/// The kind a List's items take when they carry none (a typed list's).
#[derive(Debug, Clone)]
pub(crate) enum Implying {
    /// Known when the piece was cut.
    Known(Option<Arc<Implied>>),
    /// An item of a List still being read ([`stream_json`]): known once
    /// the List is read to its end.
    Streamed(Arc<Speculation>),
}

impl Implying {
    /// The implied kind; for a streamed item, once its List is read.
    fn get(&self) -> Option<&Implied> {
        match self {
            Implying::Known(implied) => implied.as_deref(),
            Implying::Streamed(speculation) => match speculation.0.wait() {
                Verdict::List(implied) => implied.as_deref(),
                Verdict::Retracted => None,
            },
        }
    }
}

/// What the items cut from a text while it was still being read turn out
/// to be: the items of a List (with what they imply), or nothing (the text
/// was not one List, or not valid, and is cut again exactly).
#[derive(Debug, Default)]
pub(crate) struct Speculation(OnceLock<Verdict>);

#[derive(Debug)]
enum Verdict {
    List(Option<Arc<Implied>>),
    Retracted,
}

impl Speculation {
    pub(crate) fn retracted(&self) -> bool {
        matches!(self.0.get(), Some(Verdict::Retracted))
    }

    fn settle(&self, verdict: Verdict) {
        // Settled once, by the one thread that reads the text: the first
        // verdict stands (a guard's later retraction is ignored).
        let _ = self.0.set(verdict);
    }
}

/// Whether a text is JSON (it starts with `{` or `[`) rather than YAML.
pub(crate) fn is_json(text: &str) -> bool {
    text.trim_start().starts_with(['{', '['])
}

/// The `visit_*` of numbers and booleans, which the readers here never
/// look into: each reads as `$value`.
macro_rules! numbers_and_bools_are {
    ($value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// A string field that may be missing or of another type (which then
/// reads as missing: the typed conversion reports it with its path).
#[derive(Debug, Default)]
pub(crate) struct Lenient<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Lenient<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v))))
            }
            numbers_and_bools_are!(Lenient(None));
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Lenient::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// What identifies an object, and a List's items: read first, without
/// building the rest.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Head<'a> {
    #[serde(borrow, default)]
    pub kind: Lenient<'a>,
    #[serde(borrow, default, rename = "apiVersion")]
    pub api_version: Lenient<'a>,
    #[serde(borrow, default)]
    pub metadata: Option<MetaHead<'a>>,
    #[serde(borrow, default)]
    pub items: Option<Items<'a>>,
}

/// The names in an object's metadata.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MetaHead<'a> {
    #[serde(borrow, default)]
    pub name: Lenient<'a>,
    #[serde(borrow, default)]
    pub namespace: Lenient<'a>,
}

/// A List's `items` as slices of the text; `None` when it is not a list.
#[derive(Debug, Default)]
pub(crate) struct Items<'a>(pub Option<Vec<&'a RawValue>>);

impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut items = Vec::new();
        let array = serde::de::DeserializeSeed::deserialize(EachItem(|item| items.push(item)), d)?;
        Ok(Items(array.then_some(items)))
    }
}

/// Reads an `items` value, giving each item to `.0` as a slice of the
/// text as soon as it is read; whether it is an array (or `null`, which
/// reads as an empty one).
struct EachItem<F>(F);

impl<'de, F: FnMut(&'de RawValue)> serde::de::DeserializeSeed<'de> for EachItem<F> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(&'de RawValue)> serde::de::Visitor<'de> for EachItem<F> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list")
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            (self.0)(item);
        }
        Ok(true)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    numbers_and_bools_are!(false);
}

impl Head<'_> {
    pub(crate) fn kind(&self) -> &str {
        self.kind.0.as_deref().unwrap_or_default()
    }

    pub(crate) fn api_version(&self) -> &str {
        self.api_version.0.as_deref().unwrap_or_default()
    }

    pub(crate) fn name(&self) -> &str {
        self.metadata.as_ref().and_then(|m| m.name.0.as_deref()).unwrap_or_default()
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.namespace.0.as_deref())
    }

    /// Whether this is a List (`kind: List`, or a typed list such as
    /// `PodList` that has `items`).
    pub(crate) fn is_list(&self) -> bool {
        let kind = self.kind();
        kind == "List" || (kind.ends_with("List") && self.items.is_some())
    }
}

pub(crate) fn invalid(file: &str, object: impl Into<String>, field: &str, message: &str) -> LoadError {
    LoadError::Invalid {
        file: file.into(),
        object: object.into(),
        key: None,
        field: field.into(),
        message: message.into(),
    }
}

/// The pieces of a JSON text: each top-level value, and the items of a
/// top-level List (read in the same pass, so a cluster dump is scanned
/// once here; nested Lists are flattened by [`flatten_json`] later).
pub(crate) fn json_pieces<'a>(file: &str, text: &'a str) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value<'a>>();
    let mut start = 0;
    while let Some(value) = stream.next() {
        let end = stream.byte_offset();
        let raw = text[start..end].trim_start();
        start = end;
        match value {
            Ok(Value::Object(head)) if head.is_list() => match head.items {
                Some(Items(Some(ref items))) => {
                    let implied = Implying::Known(Implied::of(&head).map(Arc::new));
                    out.extend(items.iter().map(|i| Piece::Json { text: i.get(), depth: 1, implied: implied.clone() }));
                }
                Some(Items(None)) => out.push(Piece::Error(invalid(file, head.kind(), "items", "must be a list"))),
                None => {}
            },
            Ok(Value::Object(_)) => out.push(Piece::Json { text: raw, depth: 0, implied: Implying::Known(None) }),
            Ok(Value::Other) => out.push(Piece::Error(invalid(file, "document", "(root)", "is not an object"))),
            Err(e) => {
                out.push(Piece::Error(crate::documents::syntax(file, e.line(), e.column(), &e.to_string())));
                break;
            }
        }
    }
    out
}

/// Cuts a JSON text into pieces like [`json_pieces`], giving each to
/// `emit` as soon as it is cut: when the text is one List (a cluster
/// dump), its items go out while the rest of it is still being read, so
/// they convert meanwhile. kubectl writes `items` before `kind`, so
/// whether they are a List's items is settled only at the end: until then
/// they are streamed items, whose conversion waits for the List's kind only
/// when it needs it. If the text turns out to be anything else (not one
/// object, not a List, invalid, a duplicate field), those items are
/// retracted (their results are dropped) and the text is cut again by
/// [`json_pieces`], so what is loaded, and every error, are the same.
pub(crate) fn stream_json<'a>(file: &str, text: &'a str, emit: &mut dyn FnMut(Piece<'a>)) {
    if !text.trim_start().starts_with('{') {
        return json_pieces(file, text).into_iter().for_each(emit);
    }
    let speculation = Arc::new(Speculation::default());
    // Should anything unwind before the verdict, a conversion waiting for
    // it must not wait for ever.
    let _settled = RetractUnlessSettled(&speculation);
    let mut list = ListRead { head: Head::default(), speculation: &speculation, emit };
    let mut de = serde_json::Deserializer::from_str(text);
    let read = serde::de::DeserializeSeed::deserialize(&mut list, &mut de).and_then(|()| de.end());
    let ListRead { head, emit, .. } = list;
    match (read, &head.items) {
        (Ok(()), Some(Items(Some(_)))) if head.is_list() => {
            speculation.settle(Verdict::List(Implied::of(&head).map(Arc::new)));
        }
        (Ok(()), _) if !head.is_list() => {
            speculation.settle(Verdict::Retracted);
            let raw = text.trim_matches([' ', '\t', '\n', '\r']);
            emit(Piece::Json { text: raw, depth: 0, implied: Implying::Known(None) });
        }
        _ => {
            speculation.settle(Verdict::Retracted);
            json_pieces(file, text).into_iter().for_each(emit);
        }
    }
}

/// Retracts a speculation left unsettled (only when unwinding).
struct RetractUnlessSettled<'s>(&'s Speculation);

impl Drop for RetractUnlessSettled<'_> {
    fn drop(&mut self) {
        self.0.settle(Verdict::Retracted);
    }
}

/// Reads one object's head, streaming the items of its `items` array
/// (`head.items` then says whether it was one, holding none of them).
struct ListRead<'s, 'a> {
    head: Head<'a>,
    speculation: &'s Arc<Speculation>,
    emit: &'s mut dyn FnMut(Piece<'a>),
}

impl<'de: 'a, 'a> serde::de::DeserializeSeed<'de> for &mut ListRead<'_, 'a> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> serde::de::Visitor<'de> for &mut ListRead<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 4];
        while let Some(key) = map.next_key::<Lenient<'de>>()? {
            let field = match key.0.as_deref().unwrap_or_default() {
                "kind" => 0,
                "apiVersion" => 1,
                "metadata" => 2,
                "items" => 3,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            if std::mem::replace(&mut seen[field], true) {
                // Cut again exactly, which reports it.
                return Err(serde::de::Error::custom("duplicate field"));
            }
            match field {
                0 => self.head.kind = map.next_value()?,
                1 => self.head.api_version = map.next_value()?,
                2 => self.head.metadata = map.next_value()?,
                _ => {
                    let (speculation, emit) = (self.speculation, &mut *self.emit);
                    let array = map.next_value_seed(EachItem(|item: &'de RawValue| {
                        let implied = Implying::Streamed(Arc::clone(speculation));
                        emit(Piece::Json { text: item.get(), depth: 1, implied });
                    }))?;
                    self.head.items = Some(Items(array.then(Vec::new)));
                }
            }
        }
        Ok(())
    }
}

/// A top-level JSON value: an object's head, or anything else.
enum Value<'a> {
    Object(Head<'a>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Value<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Head::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Value::Object)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Value::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Value::Other)
            }
            numbers_and_bools_are!(Value::Other);
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Value::Other)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The head of one JSON value (a slice of valid JSON); `None` when it is
/// not an object. The read stops once `apiVersion`, `kind` and `metadata`
/// are known and the kind is no List (what kubectl and the API server
/// write first), so the rest of the object (spec, status) is scanned only
/// by the conversion that reads it.
fn read_head(raw: &str) -> Option<Head<'_>> {
    if !raw.trim_start().starts_with('{') {
        return None;
    }
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(raw);
    match serde::de::DeserializeSeed::deserialize(HeadSeed(&mut found), &mut de) {
        // Stopped early on purpose (an error ends the read), with the head.
        Ok(()) | Err(_) => found,
    }
}

/// Reads an object's head into `.0`, and stops as soon as it is complete.
struct HeadSeed<'h, 'a>(&'h mut Option<Head<'a>>);

impl<'de: 'a, 'a> serde::de::DeserializeSeed<'de> for HeadSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> serde::de::Visitor<'de> for HeadSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut head = Head::default();
        let (mut version, mut metadata) = (false, false);
        while let Some(key) = map.next_key::<Lenient<'de>>()? {
            match key.0.as_deref().unwrap_or_default() {
                "kind" => head.kind = map.next_value()?,
                "apiVersion" => {
                    head.api_version = map.next_value()?;
                    version = true;
                }
                "metadata" => {
                    head.metadata = map.next_value()?;
                    metadata = true;
                }
                "items" => head.items = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            let kind = head.kind();
            if version && metadata && !kind.is_empty() && !kind.ends_with("List") {
                *self.0 = Some(head);
                return Err(serde::de::Error::custom("the head is read"));
            }
        }
        *self.0 = Some(head);
        Ok(())
    }
}

/// What the items of a typed list (`PodList`, `NetworkPolicyList`, as the
/// API returns them) are when they carry no `kind` of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Implied {
    pub kind: String,
    pub api_version: String,
}

impl Implied {
    /// For the items of a List with this head: `PodList` of `v1` holds
    /// `v1` `Pod`s; a plain `List` implies nothing.
    pub(crate) fn of(list: &Head<'_>) -> Option<Implied> {
        let kind = list.kind().strip_suffix("List").filter(|k| !k.is_empty())?;
        Some(Implied { kind: kind.to_string(), api_version: list.api_version().to_string() })
    }

    /// `item` with the implied `apiVersion` and `kind` added.
    fn complete(&self, item: &str) -> String {
        let rest = item.trim_start().strip_prefix('{').unwrap_or(item).trim_start();
        let sep = if rest.starts_with('}') { "" } else { "," };
        let head = serde_json::json!({"apiVersion": self.api_version, "kind": self.kind}).to_string();
        format!("{}{sep}{rest}", &head[..head.len() - 1])
    }
}

/// One JSON object (a slice of valid JSON): its head, or, for a nested
/// List, its items flattened into `out` down to [`MAX_LIST_DEPTH`]. Items
/// without a kind take the one their typed list `implied`. Objects go to
/// `object` with their head.
pub(crate) fn flatten_json(
    file: &str,
    raw: &str,
    depth: usize,
    implied: &Implying,
    errors: &mut Vec<LoadError>,
    object: &mut dyn FnMut(&str, Head<'_>),
) {
    let Some(head) = read_head(raw) else {
        errors.push(invalid(file, "document", "(root)", "is not an object"));
        return;
    };
    if head.kind().is_empty() {
        if let Some(implied) = implied.get() {
            let completed = implied.complete(raw);
            return flatten_json(file, &completed, depth, &Implying::Known(None), errors, object);
        }
        errors.push(invalid(file, format!("object {:?}", head.name()), "kind", "required"));
        return;
    }
    if !head.is_list() {
        object(raw, head);
        return;
    }
    if depth >= MAX_LIST_DEPTH {
        errors.push(invalid(file, head.kind(), "items", "Lists nested too deeply"));
        return;
    }
    let implied = Implying::Known(Implied::of(&head).map(Arc::new));
    match head.items {
        Some(Items(Some(items))) => {
            for item in items {
                flatten_json(file, item.get(), depth + 1, &implied, errors, object);
            }
        }
        Some(Items(None)) => errors.push(invalid(file, head.kind(), "items", "must be a list")),
        None => {}
    }
}

/// The objects of one piece, each with its head, in order (YAML documents
/// read as JSON, Lists flattened); structure errors go to `errors`.
/// Returns the syntax error that ends the piece's file, if one does.
pub(crate) fn piece_objects(
    file: &str,
    piece: &Piece<'_>,
    errors: &mut Vec<LoadError>,
    object: &mut dyn FnMut(&str, Head<'_>),
) -> Option<LoadError> {
    match piece {
        Piece::Error(e @ LoadError::Syntax { .. }) => return Some(e.clone()),
        Piece::Error(e) => errors.push(e.clone()),
        Piece::Json { text, depth, implied } => flatten_json(file, text, *depth, implied, errors, object),
        Piece::Yaml { text, line } => {
            for document in crate::documents::yaml_documents(file, text, *line) {
                match document {
                    Ok(None) => {}
                    Ok(Some(json)) => flatten_json(file, &json, 0, &Implying::Known(None), errors, object),
                    Err(e) => return Some(e),
                }
            }
        }
    }
    None
}

/// Whether `line` starts a YAML document (`---`, alone or followed by a
/// space or tab). The YAML spec forbids such a line inside any scalar, so
/// cutting the text there never splits a document.
fn starts_document(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a YAML text holds nothing but blank lines, comments, bare
/// document markers and directives (which belong to the document that
/// follows).
fn no_content(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l.starts_with('%') || l == "---" || l == "..."
    })
}

/// The documents of a YAML text, each with the line it starts on.
pub(crate) fn yaml_pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    cut_yaml(text, &mut |piece| out.push(piece));
    out
}

/// [`yaml_pieces`], each given to `emit` as soon as it is cut (so that the
/// first documents convert while the rest of a large file is cut).
pub(crate) fn cut_yaml<'a>(text: &'a str, emit: &mut dyn FnMut(Piece<'a>)) {
    let (mut start, mut start_line) = (0, 1);
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if n > 0 && starts_document(line) && !no_content(&text[start..offset]) {
            emit(Piece::Yaml { text: &text[start..offset], line: start_line });
            (start, start_line) = (offset, n + 1);
        }
        offset += line.len();
    }
    if !no_content(&text[start..]) {
        emit(Piece::Yaml { text: &text[start..], line: start_line });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_texts(text: &str) -> Vec<(&str, usize)> {
        yaml_pieces(text)
            .into_iter()
            .map(|p| match p {
                Piece::Yaml { text, line } => (text, line),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn yaml_is_cut_at_document_markers_only() {
        let text = "# lead\n%YAML 1.2\n---\na: 1\n--- \nb: |\n  ---x\n  --- y\nc: '---'\n---\n---\n";
        assert_eq!(
            yaml_texts(text),
            [("# lead\n%YAML 1.2\n---\na: 1\n", 1), ("--- \nb: |\n  ---x\n  --- y\nc: '---'\n", 5)]
        );
        assert_eq!(yaml_texts("a: 1"), [("a: 1", 1)]);
        assert!(yaml_texts("\n# only a comment\n---\n").is_empty());
        assert_eq!(yaml_texts("----\na: 1\n"), [("----\na: 1\n", 1)], "`----` is not a marker");
    }

    /// The objects and errors of a JSON text, the same whether its pieces
    /// are cut after the whole read or streamed while it is read.
    fn json_objects(text: &str) -> (Vec<String>, Vec<String>) {
        let whole = objects_of(json_pieces("f", text));
        let mut streamed = Vec::new();
        stream_json("f", text, &mut |piece| streamed.push(piece));
        streamed.retain(|p| !p.retracted());
        assert_eq!(objects_of(streamed), whole, "streamed and whole reads differ on {text}");
        whole
    }

    fn objects_of(pieces: Vec<Piece<'_>>) -> (Vec<String>, Vec<String>) {
        let (mut objects, mut errors) = (Vec::new(), Vec::new());
        for piece in pieces {
            match piece {
                Piece::Json { text: raw, depth, implied } => {
                    let mut found = Vec::new();
                    flatten_json("f", raw, depth, &implied, &mut found, &mut |raw, head| {
                        objects.push(format!("{} {raw}", head.kind()));
                    });
                    errors.extend(found.iter().map(ToString::to_string));
                }
                Piece::Error(e) => errors.push(e.to_string()),
                Piece::Yaml { .. } => panic!("yaml"),
            }
        }
        (objects, errors)
    }

    #[test]
    fn json_lists_flatten_to_slices() {
        let text = r#"{"kind":"List","items":[{"kind":"PodList","items":[{"kind":"Pod","x":1}]},{"kind":"Namespace"}]} {"kind":"Pod"}"#;
        let (objects, errors) = json_objects(text);
        assert_eq!(
            objects,
            [r#"Pod {"kind":"Pod","x":1}"#, r#"Namespace {"kind":"Namespace"}"#, r#"Pod {"kind":"Pod"}"#]
        );
        assert!(errors.is_empty(), "{errors:?}");
        let (objects, _) = json_objects(r#"{"kind":"PodList","metadata":{},"items":[{"kind":"Pod"}]}"#);
        assert_eq!(objects, [r#"Pod {"kind":"Pod"}"#], "a typed list");
        let (objects, errors) = json_objects(r#"{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{}},{}]}"#);
        assert_eq!(
            objects,
            [r#"Pod {"apiVersion":"v1","kind":"Pod","metadata":{}}"#, r#"Pod {"apiVersion":"v1","kind":"Pod"}"#],
            "items of a typed list take its kind"
        );
        assert!(errors.is_empty(), "{errors:?}");
        let (objects, _) = json_objects(r#"{"kind":"NetworkPolicyList"}"#);
        assert_eq!(
            objects,
            [r#"NetworkPolicyList {"kind":"NetworkPolicyList"}"#],
            "no items: an object of its own kind"
        );
    }

    #[test]
    fn json_structure_errors_name_the_field() {
        let errors = |text: &str| json_objects(text).1;
        assert_eq!(errors("[1]"), ["f: document: (root): is not an object"]);
        assert_eq!(errors(r#"{"kind":"List","items":[1]}"#), ["f: document: (root): is not an object"]);
        assert_eq!(
            errors(r#"{"kind":"List","items":[{"metadata":{"name":"x"}}]}"#),
            ["f: object \"x\": kind: required"]
        );
        assert_eq!(errors(r#"{"kind":"List","items":5}"#), ["f: List: items: must be a list"]);
        let nested = r#"{"kind":"List","items":[{"kind":"List","items":[{"kind":"List","items":[{"kind":"List","items":[{"kind":"List","items":[]}]}]}]}]}"#;
        assert_eq!(errors(nested), ["f: List: items: Lists nested too deeply"]);
        assert_eq!(errors("{\"kind\":\n\"Pod\""), ["f:2:5: EOF while parsing an object"]);
        assert_eq!(
            errors(r#"{"kind":"List","items":[{"kind":"Pod"}],"kind":"List"}"#),
            ["f:1:46: duplicate field `kind`"]
        );
        assert_eq!(errors(r#"{"kind":"List","items":[{"kind":"Pod"}]} x"#), ["f:1:42: expected value"]);
    }

    #[test]
    fn streamed_items_wait_for_their_lists_kind_only_when_they_need_it() {
        let text = r#"{"items":[{"kind":"Namespace"},{"metadata":{"name":"x"}}],"apiVersion":"v1","kind":"PodList"}"#;
        let (objects, errors) = json_objects(text);
        assert_eq!(
            objects,
            [r#"Namespace {"kind":"Namespace"}"#, r#"Pod {"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#]
        );
        assert!(errors.is_empty(), "{errors:?}");
        // Not a List: the items are retracted and the object stands whole.
        let (objects, _) = json_objects(r#"{"items":[{"kind":"Pod"}],"kind":"Thing"}"#);
        assert_eq!(objects, [r#"Thing {"items":[{"kind":"Pod"}],"kind":"Thing"}"#]);
        let (objects, _) = json_objects(r#" {"kind":"List","items":null} "#);
        assert!(objects.is_empty());
    }
}
