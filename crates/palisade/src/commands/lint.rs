//! `palisade lint`: findings with a why and a fix.

use std::fmt::Write as _;

use palisade_policy::lint::{Finding, Severity, lint};

use super::{EXIT_ERROR, TextOrJson};
use crate::inputs::State;
use crate::style::Style;

/// Runs `lint`: exit 0 clean (info only), 1 warnings, 2 invalid input.
#[must_use]
pub fn run(state: &State, output: TextOrJson, style: Style) -> u8 {
    let findings = lint(&state.index);
    match output {
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&findings).expect("plain data serializes")),
        TextOrJson::Text => print!("{}", text(&findings, style)),
    }
    if state.had_errors() { EXIT_ERROR } else { u8::from(findings.iter().any(|f| f.severity == Severity::Warning)) }
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
