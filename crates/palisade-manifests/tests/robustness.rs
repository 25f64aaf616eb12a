//! No input may panic the loader or what consumes its output: random text,
//! and valid manifests with bytes flipped, lines dropped or text truncated.
//! (The coverage-guided fuzz target in `fuzz/` explores further.)

use palisade_manifests::load_str;
use palisade_policy::Protocol;
use palisade_policy::lint::lint;
use palisade_policy::matrix::Case;
use proptest::prelude::*;

const SEEDS: [&str; 3] = [
    include_str!("../../../examples/walkthrough/part2/steps/03-within-production.yaml"),
    include_str!("../../../examples/three-tier/steps/02-policies.yaml"),
    include_str!("../../palisade/tests/fixtures/lint.yaml"),
];

fn exercise(text: &str) {
    let loaded = load_str("fuzz.yaml", text, "default");
    for e in &loaded.errors {
        assert!(!e.to_string().is_empty());
    }
    let index = loaded.index();
    let pods: Vec<_> = index.pods_sorted().into_iter().take(8).collect();
    for pod in &pods {
        let _ = index.explain(*pod);
    }
    let _ = index.matrix(pods, vec![Case { port: 80, protocol: Protocol::Tcp }]);
    let _ = lint(&index);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text(text in "\\PC{0,200}") {
        exercise(&text);
    }

    #[test]
    fn mutated_manifests(seed in 0usize..3, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>(), drop_line in any::<usize>()) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        let text = String::from_utf8_lossy(&bytes).to_string();
        exercise(&text);
        let lines: Vec<&str> = text.lines().collect();
        let dropped: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != drop_line % lines.len().max(1)).map(|(_, l)| *l).collect();
        exercise(&dropped.join("\n"));
        let end = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count().max(1)).unwrap_or(0);
        exercise(&text[..end]);
    }
}

#[test]
fn deeply_nested_and_aliased_yaml_is_rejected_not_fatal() {
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    exercise(&nested);
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    exercise(bomb);
    let deep_list = format!("{}{{}}{}", r#"{"kind":"List","items":["#.repeat(50), "]}".repeat(50));
    let loaded = load_str("deep.json", &deep_list, "default");
    assert_eq!(loaded.errors.len(), 1, "nesting beyond the limit is one error: {:?}", loaded.errors);
    assert!(loaded.errors[0].to_string().contains("Lists nested too deeply"));
}
