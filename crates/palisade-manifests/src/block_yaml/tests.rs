//! The block reader against serde_norway: where it answers, it answers as
//! transcoding through serde_norway does, byte for byte.

use std::fmt::Write as _;

use proptest::prelude::*;

use super::to_json;

/// serde_norway's JSON text for a text of exactly one document.
fn transcoded(text: &str) -> Option<String> {
    let mut documents = serde_norway::Deserializer::from_str(text);
    let document = documents.next()?;
    let mut json = Vec::new();
    serde_transcode::transcode(document, &mut serde_json::Serializer::new(&mut json)).ok()?;
    documents.next().is_none().then(|| String::from_utf8(json).unwrap())
}

/// Where the block reader answers, serde_norway gives the same text.
fn agrees(text: &str) -> bool {
    let fast = to_json(text);
    if let Some(fast) = &fast {
        assert_eq!(Some(fast.as_str()), transcoded(text).as_deref(), "on {text:?}");
    }
    fast.is_some()
}

/// Values as the YAML 1.2 core schema reads them (which serde_norway
/// follows: `yes` and `on` are strings, leading zeros make a string).
#[test]
fn scalars_read_as_the_core_schema_reads_them() {
    let table = [
        ("80", "80"),
        ("0", "0"),
        ("-5", "-5"),
        ("18446744073709551615", "18446744073709551615"),
        ("'80'", r#""80""#),
        ("\"80\"", r#""80""#),
        ("080", r#""080""#),
        ("-007", r#""-007""#),
        ("+007", r#""+007""#),
        ("1_000", r#""1_000""#),
        ("10.0.0.1", r#""10.0.0.1""#),
        ("10.0.0.0/8", r#""10.0.0.0/8""#),
        ("2001:db8::1", r#""2001:db8::1""#),
        ("'fd00::'", r#""fd00::""#),
        ("2024-01-02T03:04:05Z", r#""2024-01-02T03:04:05Z""#),
        ("true", "true"),
        ("False", "false"),
        ("TRUE", "true"),
        ("yes", r#""yes""#),
        ("on", r#""on""#),
        ("~", "null"),
        ("null", "null"),
        ("Null", "null"),
        ("NULL", "null"),
        ("nulls", r#""nulls""#),
        ("0b4c1a52-8e1f", r#""0b4c1a52-8e1f""#),
        ("0x", r#""0x""#),
        ("0xfg", r#""0xfg""#),
        ("nan", r#""nan""#),
        ("infinity", r#""infinity""#),
        ("registry.example/app:v1.2", r#""registry.example/app:v1.2""#),
        ("http://a.b:80/c?d=e#f", r#""http://a.b:80/c?d=e#f""#),
        ("a # comment", r#""a""#),
        ("a#b", r#""a#b""#),
        ("a   ", r#""a""#),
        ("-x", r#""-x""#),
        ("--port=80", r#""--port=80""#),
        ("-.x", r#""-.x""#),
        ("x [y] {z}, w", r#""x [y] {z}, w""#),
        ("'it''s # not a comment'", r#""it's # not a comment""#),
        ("'a\\b'", r#""a\\b""#),
        (r#""\u00e9\t\"\\\/\x41\N\_""#, "\"\u{e9}\\t\\\"\\\\/A\u{85}\u{a0}\""),
        (r#""\U0001F600\0\e""#, "\"\u{1f600}\\u0000\\u001b\""),
        ("'' # empty", r#""""#),
        ("\"\"", r#""""#),
        ("[]", "[]"),
        ("{}   # empty", "{}"),
        ("héllo wörld", "\"héllo wörld\""),
    ];
    for (value, json) in table {
        let text = format!("a: {value}\n");
        assert_eq!(to_json(&text).as_deref(), Some(format!("{{\"a\":{json}}}").as_str()), "{text:?}");
        assert!(agrees(&text));
    }
}

#[test]
fn structures_read_as_yaml_reads_them() {
    let table = [
        ("a:\nb: 1\n", r#"{"a":null,"b":1}"#),
        ("a:\n- 1\n- x\nb: 2\n", r#"{"a":[1,"x"],"b":2}"#),
        ("a:\n  - 1\n  -\n  - - \n", ""),
        ("a:\n    - 1\n    -\n    - x\n", r#"{"a":[1,null,"x"]}"#),
        ("a:\n- b: 1\n  c:\n  - 2\n  d: 3\n- e\n", r#"{"a":[{"b":1,"c":[2],"d":3},"e"]}"#),
        ("a:\n  -   b: 1\n      c: 2\n", r#"{"a":[{"b":1,"c":2}]}"#),
        ("a:\n-\n  b: 1\n", r#"{"a":[{"b":1}]}"#),
        ("a:\n -\n - -1\n", r#"{"a":[null,-1]}"#),
        (
            "# lead\n\n---   # start\n\n# in between\nx:   # nested follows\n    y: 'z'   # c\n\n    w: \"v\"\n",
            r#"{"x":{"y":"z","w":"v"}}"#,
        ),
        ("  a: 1\n  b: 2\n", r#"{"a":1,"b":2}"#),
        ("a: 1\na: 2\n", r#"{"a":1,"a":2}"#),
        ("\"a b\": 1\n'c''d': 2\ne f: 3\n\"g:\": 4\n", r#"{"a b":1,"c'd":2,"e f":3,"g:":4}"#),
        ("a: |\n  {\"x\": 1}\n   y\n  z  \nb: 1\n", r#"{"a":"{\"x\": 1}\n y\nz  \n","b":1}"#),
        ("a: |-\n    x\n    # not a comment\nb: |  # a comment\n  y\n", r#"{"a":"x\n# not a comment","b":"y\n"}"#),
        ("- a: 1\n", ""),
        ("-a: -b\n.: .\n", r#"{"-a":"-b",".":"."}"#),
        ("a: |\n  x\n# trailing comment\nb: 1\n", r#"{"a":"x\n","b":1}"#),
    ];
    for (text, json) in table {
        if json.is_empty() {
            assert_eq!(to_json(text), None, "{text:?}");
        } else {
            assert_eq!(to_json(text).as_deref(), Some(json), "{text:?}");
        }
        agrees(text);
    }
}

/// What the reader leaves to serde_norway: everything outside its part of
/// YAML, and every error (which serde_norway then places).
#[test]
fn everything_else_is_left_to_serde_norway() {
    let left = [
        "",
        "# only a comment\n",
        "---\n",
        "--- a: 1\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n",
        "a: 1\n---\nb: 2\n",
        "- a\n- b\n",
        "just a scalar\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: !custom x\n",
        "a: [1, 2]\n",
        "a: {b: 1}\n",
        "a: >\n  folded\n",
        "a: |+\n  kept\n",
        "a: |2\n   x\n",
        "a: |\n  x\n\n  y\n",
        "a: |\n  last line without a break",
        "a: |\n\nb: 1\n",
        "a: plain\n  continued\n",
        "a:\n  plain on the next line\n",
        "a: 'quoted\n  over lines'\n",
        "a: \"escaped \\\n  break\"\n",
        "a: \"bad \\q escape\"\n",
        "a: \"\\ud800\"\n",
        "a: 'x' y\n",
        "a: 'x'# c\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: b\u{85}c\n",
        "a: b\u{2028}c\n",
        "\u{feff}a: b\n",
        "a: b: c\n",
        "a: b:\n",
        "a: fd00::\n",
        "a: - b\n",
        "a: 1.5\n",
        "a: 1e3\n",
        "a: .5\n",
        "a: -.inf\n",
        "a: .NaN\n",
        "a: +5\n",
        "a: -0\n",
        "a: 0x1f\n",
        "a: 0o17\n",
        "a: 0b101\n",
        "a: 18446744073709551616\n",
        "a: -9223372036854775809\n",
        "1: a\n",
        "null: a\n",
        "true: a\n",
        "~: a\n",
        "<<: {}\n",
        "? a\n: b\n",
        ": a\n",
        "a : b\n",
        "\"a\" : b\n",
        "a: 1\n- b\n",
        "a:\n  b: 1\n c: 2\n",
        "a:\n  b: 1\n    c: 2\n",
        "a:\n- b\n - c\n",
        "a: 1\n  b: 2\n",
        "a: `x`\n",
        "a: @x\n",
        "a: %x\n",
        "a: ,x\n",
        "a: ]\n",
        "a: ---x\n",
        "a: ...x\n",
        "---a: 1\n",
        "... a: 1\n",
    ];
    for text in left {
        assert_eq!(to_json(text), None, "{text:?} was read by the block reader");
    }
    let deep = (0..100).fold(String::new(), |text, depth| format!("{text}{}k:\n", " ".repeat(depth)));
    assert_eq!(to_json(&deep), None, "nesting beyond the limit");
    let long_key = format!("{}: 1\n", "k".repeat(1_100));
    assert_eq!(to_json(&long_key), None, "an implicit key over 1024 characters");
}

/// A Pod as `kubectl get pod -o yaml` prints it, with the fields a real
/// one carries (managed fields, the last applied configuration as a
/// literal, conditions, timestamps, a quoted IPv6 address).
const KUBECTL_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"labels":{"app":"web"},"name":"web-0","namespace":"shop"},"spec":{"containers":[{"image":"nginx:1.25","name":"web","ports":[{"containerPort":80}]}]}}
  creationTimestamp: "2024-05-01T10:00:00Z"
  generateName: web-
  labels:
    app: web
    controller-revision-hash: web-7d9f8c
    statefulset.kubernetes.io/pod-name: web-0
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          .: {}
          f:app: {}
      f:spec:
        f:containers:
          k:{"name":"web"}:
            .: {}
            f:ports:
              k:{"containerPort":80,"protocol":"TCP"}:
                .: {}
    manager: kube-controller-manager
    operation: Update
    time: "2024-05-01T10:00:00Z"
  name: web-0
  namespace: shop
  ownerReferences:
  - apiVersion: apps/v1
    blockOwnerDeletion: true
    controller: true
    kind: StatefulSet
    name: web
    uid: 0b4c1a52-8e1f-4c2b-9a57-3c5d0f1e2a3b
  resourceVersion: "12345"
  uid: 5e2d7c1b-1f3a-4d6e-8b9c-0a1b2c3d4e5f
spec:
  containers:
  - args:
    - --port=80
    - --log-level
    - debug
    command:
    - /bin/server
    env:
    - name: GREETING
      value: 'hello: world'
    - name: EMPTY
    image: nginx:1.25
    imagePullPolicy: IfNotPresent
    name: web
    ports:
    - containerPort: 80
      name: http
      protocol: TCP
    resources:
      limits:
        cpu: 500m
        memory: 128Mi
    terminationMessagePath: /dev/termination-log
  dnsPolicy: ClusterFirst
  nodeName: node-1
  securityContext: {}
  terminationGracePeriodSeconds: 30
  tolerations:
  - effect: NoExecute
    key: node.kubernetes.io/not-ready
    operator: Exists
    tolerationSeconds: 300
status:
  conditions:
  - lastProbeTime: null
    lastTransitionTime: "2024-05-01T10:00:02Z"
    status: "True"
    type: Ready
  hostIP: 192.168.49.2
  hostIPs:
  - ip: 192.168.49.2
  phase: Running
  podIP: 10.244.0.7
  podIPs:
  - ip: 10.244.0.7
  - ip: fd00:10:244::7
  qosClass: Burstable
  startTime: "2024-05-01T10:00:00Z"
"#;

#[test]
fn kubectl_output_is_read_by_the_block_reader_as_serde_norway_reads_it() {
    assert!(agrees(KUBECTL_POD), "kubectl's output was left to serde_norway");
}

/// Every YAML document in this repository, and every input of the fuzz
/// corpus (`fuzz/seeds`, mostly hostile): where the block reader answers,
/// it answers as serde_norway does. (Most of the examples are written in
/// flow style, `{name: x}`, which is left to serde_norway.)
#[test]
fn every_yaml_file_and_fuzz_input_in_the_repository_agrees() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let seeds = root.join("fuzz/seeds");
    let mut stack = vec![root];
    let (mut documents, mut read) = (0, 0);
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let yaml =
                path.extension().is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                stack.push(path);
            } else if yaml || dir == seeds {
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                for piece in crate::pieces::yaml_pieces(&text) {
                    let crate::pieces::Piece::Yaml { text, .. } = piece else { continue };
                    documents += 1;
                    read += usize::from(agrees(text));
                }
            }
        }
    }
    assert!(documents > 1_000, "{documents} documents found");
    assert!(read > 50, "the block reader read only {read} of {documents} documents");
}

/// A scalar as it might be written, well or badly.
fn scalar() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "80",
            "0",
            "-1",
            "007",
            "1.5",
            ".5",
            "-.inf",
            "0x1f",
            "+3",
            "true",
            "yes",
            "~",
            "null",
            "",
            "x",
            "a b",
            "a:b",
            "a: b",
            "a:",
            "a #c",
            "a#c",
            "-",
            "- a",
            "-a",
            "'a'",
            "'a''b'",
            "'a",
            "\"a\\nb\"",
            "\"a\\qb\"",
            "\"a",
            "[]",
            "{}",
            "[a]",
            "{a: 1}",
            "&x a",
            "*x",
            "!t a",
            "|",
            "|-",
            ">",
            "%x",
            "@x",
            "`x",
            "?",
            ": a",
            "fd00::",
            "10.0.0.1",
            "é",
            "\u{85}",
            "<<",
            "---",
            "...",
        ])
        .prop_map(str::to_string),
        "[a-z0-9:#'\" .\\-{}\\[\\],&*!|>%@~+\\\\]{0,8}",
    ]
    .boxed()
}

/// A generated mapping entry: `key: value`, or `key:` and its children as
/// a mapping or a sequence.
#[derive(Clone, Debug)]
struct Entry {
    key: String,
    value: String,
    children: Vec<Entry>,
    seq: bool,
}

/// A scalar as kubectl writes one.
fn well_written_scalar() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-z][a-z0-9./-]{0,10}",
        "[a-z][a-z0-9]{0,4}:[0-9]{1,4}",
        "(0|[1-9][0-9]{0,8})",
        "-[1-9][0-9]{0,8}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        "'[a-z :#-]{0,8}'",
        "\"[a-z :#'-]{0,8}\"",
        prop::sample::select(vec!["true", "false", "null", "{}", "[]", "'fd00::'", "\"\"", "x # comment"])
            .prop_map(str::to_string),
    ]
    .boxed()
}

/// A document: nested mappings and sequences of scalars, written with
/// varying indentation, comments and blank lines, well or badly.
fn document() -> impl Strategy<Value = String> {
    // Mostly well written, so that most documents are YAML and the
    // reader's answers are compared, not only its refusals.
    let key = prop_oneof![8 => "k[a-z0-9.-]{0,6}".prop_map(String::from), 1 => scalar()].boxed();
    let value = prop_oneof![8 => well_written_scalar(), 1 => scalar()].boxed();
    document_of(key, value)
}

fn document_of(key: BoxedStrategy<String>, value: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let leaf = (key.clone(), value).prop_map(|(key, value)| Entry { key, value, children: Vec::new(), seq: false });
    let entry = leaf.prop_recursive(4, 40, 5, move |inner| {
        (key.clone(), prop::collection::vec(inner, 0..5), any::<bool>()).prop_map(|(key, children, seq)| Entry {
            key,
            value: String::new(),
            children,
            seq,
        })
    });
    (prop::collection::vec(entry, 1..5), 1..4usize, any::<u8>()).prop_map(|(entries, step, style)| {
        let mut text = String::new();
        for entry in &entries {
            write_entry(&mut text, 0, step, style, entry);
        }
        text
    })
}

fn write_entry(text: &mut String, indent: usize, step: usize, style: u8, entry: &Entry) {
    let pad = " ".repeat(indent);
    let key = &entry.key;
    if entry.children.is_empty() {
        writeln!(text, "{pad}{key}: {}", entry.value).unwrap();
        if style.is_multiple_of(7) {
            writeln!(text, "{pad}# between\n").unwrap();
        }
        return;
    }
    writeln!(text, "{pad}{key}:").unwrap();
    if !entry.seq {
        for child in &entry.children {
            write_entry(text, indent + step, step, style, child);
        }
        return;
    }
    // kubectl writes a key's sequence at the key's indentation.
    let dash = if style.is_multiple_of(2) { indent } else { indent + step };
    let dash_pad = " ".repeat(dash);
    for item in &entry.children {
        if item.children.is_empty() {
            writeln!(text, "{dash_pad}- {}", item.value).unwrap();
        } else {
            // A mapping item: its first entry on the `-` line.
            let mut mapping = String::new();
            for child in &item.children {
                write_entry(&mut mapping, dash + 2, step, style, child);
            }
            write!(text, "{dash_pad}- {}", &mapping[dash + 2..]).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Documents written well or badly: the reader answers as
    /// serde_norway does, or leaves them to it.
    #[test]
    fn generated_documents_read_as_serde_norway_reads_them(text in document()) {
        agrees(&text);
    }

    /// Documents as kubectl writes them are read by the block reader, as
    /// serde_norway reads them.
    #[test]
    fn well_written_documents_are_read_by_the_block_reader(
        text in document_of("k[a-z0-9.-]{0,6}".prop_map(String::from).boxed(), well_written_scalar()),
    ) {
        prop_assert!(agrees(&text), "left to serde_norway: {text}");
    }

    /// Real documents with a fragment inserted anywhere: the reader
    /// answers as serde_norway does, or leaves them to it.
    #[test]
    fn damaged_documents_read_as_serde_norway_reads_them(
        at in any::<prop::sample::Index>(),
        fragment in prop::sample::select(vec![
            " ", "  ", "\n", "\n\n", ":", ": ", "- ", "-", "#", " #", "'", "\"", "\\", "|", "|-", "&a ", "*a", "!t ",
            "{", "}", "[", "]", ",", "? ", "---\n", "...\n", "\t", "\r", "\n  ", "\n- ", "x: ", "0", ".", "~",
        ]),
    ) {
        let position = at.index(KUBECTL_POD.len());
        if KUBECTL_POD.is_char_boundary(position) {
            let text = format!("{}{fragment}{}", &KUBECTL_POD[..position], &KUBECTL_POD[position..]);
            agrees(&text);
        }
    }
}
