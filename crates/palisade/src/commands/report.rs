//! `palisade report`: one self-contained HTML page of the policies: a
//! graph of namespaces and pod groups with the allowed edges and their
//! ports (grouped as `matrix` groups pods that behave identically), each
//! pod's `explain` on a click, the lint findings and, with `--before`, the
//! connections a change opens and closes. Scripts and styles are inline
//! and no font or file is fetched: the page works offline, as a CI job's
//! attachment to a pull request.

use std::collections::BTreeMap;

use palisade_policy::diff::{diff, interesting_cases};
use palisade_policy::lint::Finding;
use serde::Serialize;

use palisade_policy::matrix::{Case, Matrix};
use palisade_policy::{ClusterIndex, PodId};

use super::matrix::{Grouping, MatrixArgs, MatrixFormat, cases, shown_pods};
use super::reach::{Unsupported, reach};
use crate::inputs::State;
use crate::style::Style;

/// The page, with `/*PALISADE_DATA*/` replaced by the report's JSON.
const TEMPLATE: &str = include_str!("report.html");

/// A group of pods of one namespace that behave identically.
#[derive(Debug, Serialize)]
struct GroupJson {
    namespace: String,
    members: Vec<String>,
}

/// Allowed traffic from one group to another, per case (index into `cases`).
#[derive(Debug, Serialize)]
struct EdgeJson {
    from: usize,
    to: usize,
    cases: Vec<usize>,
}

/// One change of `--before`.
#[derive(Debug, Serialize)]
struct ChangeJson {
    from: String,
    to: String,
    case: String,
}

#[derive(Debug, Serialize)]
struct DiffJson {
    opened: Vec<ChangeJson>,
    closed: Vec<ChangeJson>,
}

/// Everything the page shows.
#[derive(Debug, Serialize)]
struct ReportData<'a> {
    title: String,
    cases: Vec<String>,
    groups: Vec<GroupJson>,
    edges: Vec<EdgeJson>,
    explain: BTreeMap<String, String>,
    lint: &'a [Finding],
    diff: Option<DiffJson>,
    notes: Vec<String>,
}

/// What to draw.
#[derive(Debug)]
pub struct ReportArgs<'a> {
    /// The page's title.
    pub title: &'a str,
    /// Only pods of these namespaces (all when empty).
    pub namespaces: &'a [String],
    /// The most pods drawn: every pair of behaviour groups is evaluated,
    /// so a page of a large cluster is drawn a few namespaces at a time.
    pub max_pods: usize,
}

/// Why no page was made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Too many pods for one page.
    #[error(
        "the report would draw {pods} pods, more than --max-pods {max}, and the namespace overview does not \
         handle {why}: pick namespaces with -n (the pods of other namespaces still count as peers), or raise \
         --max-pods"
    )]
    TooManyPods {
        /// Pods selected.
        pods: usize,
        /// The bound.
        max: usize,
        /// Why the namespace overview cannot be drawn instead.
        why: &'static str,
    },
}

/// The report's HTML for `state` (and what changed since `before`). Up
/// to `args.max_pods` pods, the groups are `matrix`'s behaviour groups;
/// above, each namespace is one group and an edge says that some pod of
/// one namespace reaches some pod of the other (the namespace overview,
/// from exact bit rows: [`super::reach`]).
///
/// # Errors
/// More pods than `args.max_pods` in a cluster the overview cannot draw
/// (cluster policies, or audit policies counted).
pub fn html(state: &State, before: Option<&State>, args: &ReportArgs<'_>) -> Result<String, ReportError> {
    let index = &state.index;
    let pods = shown_pods(index, args.namespaces);
    let title = args.title;
    let max_pods = args.max_pods;
    let args = MatrixArgs {
        namespaces: args.namespaces.to_vec(),
        ports: Vec::new(),
        protocols: Vec::new(),
        format: MatrixFormat::Json,
        group: Grouping::Always,
    };
    let cases = cases(index, &pods, &args);
    let namespaces = args.namespaces;
    let mut notes = Vec::new();
    let (groups, edges, shown) = if pods.len() > max_pods {
        let overview = namespace_overview(index, &pods, &cases).map_err(|why| ReportError::TooManyPods {
            pods: pods.len(),
            max: max_pods,
            why: match why {
                Unsupported::ClusterPolicies => "cluster policies",
                Unsupported::AuditPolicies => "audit policies counted (--audit exclude draws it)",
            },
        })?;
        notes.push(format!(
            "{} pods, more than --max-pods {max_pods}: each namespace is one group, and an edge means some pod of one \
             namespace reaches some pod of the other; -n draws namespaces pod by pod",
            pods.len()
        ));
        (overview.0, overview.1, pods)
    } else {
        let matrix = index.matrix(pods, cases.clone());
        let (groups, edges) = behaviour_groups(index, &matrix);
        (groups, edges, matrix.pods)
    };
    let explain = shown
        .iter()
        .map(|p| (index.pod_name(*p).to_string(), super::explain::text(&index.explain(*p), Style::plain())))
        .collect();
    let mut findings = super::lint::findings(state);
    // With -n, the findings about the namespaces drawn (and cluster-wide ones).
    findings.retain(|f| {
        namespaces.is_empty()
            || f.key.as_ref().is_none_or(|k| !k.kind.namespaced() || namespaces.contains(&k.namespace))
    });
    let diff = before.map(|b| {
        let mut d = diff(&b.index, index, &interesting_cases(&[&b.index, index]));
        let shown = |pod: &str| {
            let ns = pod.split('/').next().unwrap_or_default();
            namespaces.is_empty() || namespaces.iter().any(|n| n == ns)
        };
        d.opened.retain(|c| shown(&c.from) || shown(&c.to));
        d.closed.retain(|c| shown(&c.from) || shown(&c.to));
        let list = |changes: &[palisade_policy::diff::Change]| {
            changes
                .iter()
                .map(|c| ChangeJson {
                    from: c.from.clone(),
                    to: c.to.clone(),
                    case: format!("{}/{}", c.protocol, c.port),
                })
                .collect()
        };
        DiffJson { opened: list(&d.opened), closed: list(&d.closed) }
    });
    if let Some(line) = state.incomplete_line() {
        notes.push(line);
    }
    let data = ReportData {
        title: title.to_string(),
        cases: cases.iter().map(|c| format!("{}/{}", c.protocol, c.port)).collect(),
        groups,
        edges,
        explain,
        lint: &findings,
        diff,
        notes,
    };
    let json = serde_json::to_string(&data).expect("plain data serializes");
    Ok(TEMPLATE.replace("/*PALISADE_DATA*/", &script_safe(&json)))
}

/// `matrix`'s behaviour groups, split per namespace, and the allowed
/// edges between them.
fn behaviour_groups(index: &ClusterIndex, matrix: &Matrix) -> (Vec<GroupJson>, Vec<EdgeJson>) {
    let mut groups = Vec::new();
    let mut class_of_group = Vec::new();
    for (class, members) in matrix.groups().iter().enumerate() {
        let mut by_ns: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for i in members {
            let pod = index.pod(matrix.pods[*i]).pod();
            by_ns.entry(pod.namespace.as_str()).or_default().push(index.pod_name(matrix.pods[*i]).to_string());
        }
        for (ns, members) in by_ns {
            groups.push(GroupJson { namespace: ns.to_string(), members });
            class_of_group.push(class);
        }
    }
    let mut edges = Vec::new();
    for (from, cf) in class_of_group.iter().enumerate() {
        for (to, ct) in class_of_group.iter().enumerate() {
            if from == to && groups[from].members.len() == 1 {
                continue;
            }
            let allowed: Vec<usize> = (0..matrix.cases.len()).filter(|c| matrix.group_allowed(*c, *cf, *ct)).collect();
            if !allowed.is_empty() {
                edges.push(EdgeJson { from, to, cases: allowed });
            }
        }
    }
    (groups, edges)
}

/// One group per namespace of `pods` (in name order, so each namespace's
/// pods are contiguous), and an edge where some pod of one reaches some
/// pod of another.
fn namespace_overview(
    index: &ClusterIndex,
    pods: &[PodId],
    cases: &[Case],
) -> Result<(Vec<GroupJson>, Vec<EdgeJson>), Unsupported> {
    let reach = reach(index, pods.to_vec(), cases)?;
    let mut groups: Vec<GroupJson> = Vec::new();
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        let ns = &index.pod(*p).pod().namespace;
        if groups.last().is_none_or(|g| &g.namespace != ns) {
            groups.push(GroupJson { namespace: ns.clone(), members: Vec::new() });
            ranges.push(i..i);
        }
        groups.last_mut().expect("pushed").members.push(index.pod_name(*p).to_string());
        ranges.last_mut().expect("pushed").end = i + 1;
    }
    let mut allowed: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (c, rows) in reach.rows.iter().enumerate() {
        for (from, range) in ranges.iter().enumerate() {
            let mut union = rows[range.start].clone();
            for row in &rows[range.start + 1..range.end] {
                union.or(row);
            }
            for (to, target) in ranges.iter().enumerate() {
                if from != to && union.any_in(target.clone()) {
                    allowed.entry((from, to)).or_default().push(c);
                }
            }
        }
    }
    let edges = allowed.into_iter().map(|((from, to), cases)| EdgeJson { from, to, cases }).collect();
    Ok((groups, edges))
}

/// JSON that cannot end the `<script>` element it sits in (`</script>`,
/// `<!--`) nor break a line inside a string (U+2028, U+2029).
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_the_script() {
        let safe = script_safe(r#"{"name":"</script><script>alert(1)</script>"}"#);
        assert!(!safe.contains("</"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script>");
    }
}
