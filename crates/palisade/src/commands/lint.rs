//! `palisade lint`: findings with a why and a fix.

use std::fmt::Write as _;

use palisade_manifests::LoadError;
use palisade_policy::lint::{Finding, LintContext, Severity, lint_with};
use serde::Serialize;

use super::{EXIT_ERROR, TextOrJson};
use crate::inputs::State;
use crate::style::Style;

/// Runs `lint`: exit 0 clean (info only), 1 warnings, 2 invalid input.
#[must_use]
pub fn run(state: &State, output: TextOrJson, style: Style) -> u8 {
    let loaded = &state.loaded;
    let findings = findings(state);
    match output {
        TextOrJson::Json => {
            let with_files: Vec<FindingJson<'_>> = findings
                .iter()
                .map(|finding| FindingJson { finding, file: finding.key.as_ref().and_then(|k| loaded.origin(k)) })
                .collect();
            println!("{}", serde_json::to_string_pretty(&with_files).expect("plain data serializes"));
        }
        TextOrJson::Text => print!("{}", text(&findings, style)),
    }
    if state.had_errors() { EXIT_ERROR } else { u8::from(findings.iter().any(|f| f.severity == Severity::Warning)) }
}

/// Every finding: the input's and the policies', without those an
/// object's `palisade.dev/lint-ignore` annotation suppresses.
#[must_use]
pub fn findings(state: &State) -> Vec<Finding> {
    let loaded = &state.loaded;
    let mut findings = input_findings(state);
    let context = LintContext {
        pods_elsewhere: (!loaded.pod_creating_kinds.is_empty()).then(|| {
            let kinds: Vec<String> = loaded.pod_creating_kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            kinds.join(", ")
        }),
    };
    findings.extend(lint_with(&state.index, &context));
    findings.retain(|f| {
        let ignored = f.key.as_ref().and_then(|k| loaded.lint_ignore.get(k));
        !ignored.is_some_and(|codes| codes.iter().any(|c| c == f.code))
    });
    findings
}

/// A finding with the file its object was read from.
#[derive(Serialize)]
struct FindingJson<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
}

/// Findings about the input itself: fields the API does not define, and
/// policies of kinds Palisade does not evaluate.
#[must_use]
pub fn input_findings(state: &State) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &state.loaded.warnings {
        if let LoadError::Invalid { file, object, key, field, .. } = w {
            out.push(Finding {
                code: "unknown-field",
                severity: Severity::Warning,
                object: object.clone(),
                key: key.clone(),
                field: Some(field.clone()),
                message: format!("{file}: {field} is not a field of {}", object.split(' ').next().unwrap_or("it")),
                why: "the API server drops fields it does not know, so a misspelt or misplaced field (`matchLabel`, \
                      `ports` under a peer) silently changes the policy: an empty selector selects every pod"
                    .into(),
                fix: "correct the field's name or indentation; `--strict` rejects such objects as the API server's \
                      strict field validation does"
                    .into(),
            });
        }
    }
    for p in &state.loaded.ignored_policies {
        out.push(Finding {
            code: "ignored-policy-kind",
            severity: Severity::Warning,
            object: p.label(),
            key: None,
            field: None,
            message: "a policy of a kind Palisade does not evaluate".into(),
            why: "it can allow or deny connections that Palisade's analysis shows otherwise, so verdicts \
                  involving the pods it can select are incomplete"
                .into(),
            fix: "check these connections with the implementation that enforces this kind, or leave it out of \
                  the input if it is not deployed"
                .into(),
        });
    }
    out
}

/// The human report.
#[must_use]
pub fn text(findings: &[Finding], style: Style) -> String {
    let mut out = String::new();
    for f in findings {
        let level = match f.severity {
            Severity::Warning => style.warn("warning"),
            Severity::Info => "info".to_string(),
        };
        let field = f.field.as_deref().map(|f| format!(": {f}")).unwrap_or_default();
        let _ = write!(
            out,
            "{level}[{}] {}{field}\n  {}\n  why: {}\n  fix: {}\n",
            f.code, f.object, f.message, f.why, f.fix
        );
    }
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
    let _ = writeln!(out, "{} finding(s), {warnings} warning(s)", findings.len());
    out
}
