//! `palisade matrix`: the reachability truth table between pods.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use clap::ValueEnum;
use palisade_policy::matrix::{Case, Matrix};
use palisade_policy::{ClusterIndex, PortTarget, Protocol};
use serde::Serialize;

use crate::inputs::State;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    /// Aligned table, `.` allowed and `X` denied, as the Kubernetes e2e tests print.
    Table,
    /// JSON.
    Json,
    /// One row per from, to, port, protocol.
    Csv,
    /// Markdown tables.
    Markdown,
    /// A mermaid flowchart of the allowed edges.
    Mermaid,
    /// A Graphviz digraph of the allowed edges.
    Dot,
}

/// When to group pods that behave identically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Grouping {
    /// Group when there are more than 20 pods.
    Auto,
    /// Always group.
    Always,
    /// Never group.
    Never,
}

/// Options of `matrix`.
#[derive(Debug)]
pub struct MatrixArgs {
    /// Only pods of these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Ports (default: every port a pod declares or a policy names, each
    /// with its protocol; 80 when none).
    pub ports: Vec<u16>,
    /// Protocols (default: TCP for explicit ports, else those of the
    /// default ports).
    pub protocols: Vec<Protocol>,
    /// Output format.
    pub format: MatrixFormat,
    /// Grouping.
    pub group: Grouping,
}

/// Rows and columns: single pods or groups of identical pods.
struct View {
    /// Row/column labels.
    names: Vec<String>,
    /// Members of each row (pod names), for groups.
    members: Vec<Vec<String>>,
    grouped: bool,
}

/// The policy endpoints among the pods of `namespaces` (all when empty),
/// in name order.
pub(crate) fn shown_pods(index: &ClusterIndex, namespaces: &[String]) -> Vec<palisade_policy::PodId> {
    let shown = |p: &palisade_policy::PodId| {
        let pod = index.pod(*p).pod();
        (namespaces.is_empty() || namespaces.contains(&pod.namespace)) && pod.is_endpoint()
    };
    index.pods_sorted().into_iter().filter(shown).collect()
}

/// Runs `matrix`.
#[must_use]
pub fn run(state: &State, args: &MatrixArgs) -> u8 {
    let index = &state.index;
    let pods = shown_pods(index, &args.namespaces);
    let excluded = index.pods_sorted().into_iter().filter(|p| !index.pod(*p).pod().is_endpoint()).count();
    if excluded > 0 {
        eprintln!(
            "note: {excluded} pod(s) are not policy endpoints (hostNetwork, no IP, or finished) and are left out"
        );
    }
    let cases = cases(index, &pods, args);
    let affected = pods.iter().any(|p| {
        let ns = Some(index.pod(*p).pod().namespace.as_str());
        !state.could_change(ns, ns).is_empty()
    });
    let matrix = index.matrix(pods, cases);
    let grouped = match args.group {
        Grouping::Always => true,
        Grouping::Never => false,
        Grouping::Auto => matrix.pods.len() > 20,
    };
    let rendered = render(index, &matrix, grouped, args.format);
    match args.format {
        MatrixFormat::Json if state.incomplete() => {
            let value: serde_json::Value = serde_json::from_str(&rendered).expect("rendered JSON parses");
            println!("{}", state.json(&value));
        }
        MatrixFormat::Table | MatrixFormat::Markdown if affected => {
            if let Some(line) = state.incomplete_line() {
                println!("{line}");
            }
            print!("{rendered}");
        }
        _ => print!("{rendered}"),
    }
    state.exit(0, affected)
}

/// The cases to show: `--ports` with `--protocols` (TCP when none); by
/// default every port a shown pod declares and every port number (and
/// range end) a policy names, each with its own protocol, so a UDP-only
/// port is not shown as TCP and UDP tables appear when UDP ports exist.
pub(crate) fn cases(index: &ClusterIndex, pods: &[palisade_policy::PodId], args: &MatrixArgs) -> Vec<Case> {
    if !args.ports.is_empty() {
        let protocols = if args.protocols.is_empty() { vec![Protocol::Tcp] } else { args.protocols.clone() };
        return protocols
            .iter()
            .flat_map(|protocol| args.ports.iter().map(|port| Case { port: *port, protocol: *protocol }))
            .collect();
    }
    let mut found: BTreeSet<Case> = BTreeSet::new();
    for p in pods {
        found.extend(index.pod(*p).pod().ports.iter().map(|c| Case { port: c.port, protocol: c.protocol }));
    }
    for id in index.policies_sorted() {
        let policy = index.policy(id).policy();
        for port in policy.ingress.iter().chain(&policy.egress).flat_map(|r| &r.ports) {
            if let PortTarget::Range { start, end } = port.target {
                found.insert(Case { port: start, protocol: port.protocol });
                found.insert(Case { port: end, protocol: port.protocol });
            }
        }
    }
    found.retain(|c| args.protocols.is_empty() || args.protocols.contains(&c.protocol));
    if found.is_empty() {
        let protocols = if args.protocols.is_empty() { vec![Protocol::Tcp] } else { args.protocols.clone() };
        return protocols.into_iter().map(|protocol| Case { port: 80, protocol }).collect();
    }
    // By protocol, then port: one table per protocol in order.
    let mut cases: Vec<Case> = found.into_iter().collect();
    cases.sort_by_key(|c| (c.protocol, c.port));
    cases
}

fn view(index: &ClusterIndex, m: &Matrix, grouped: bool) -> View {
    if !grouped {
        let names: Vec<String> = m.pods.iter().map(|p| index.pod_name(*p).to_string()).collect();
        return View { members: names.iter().map(|n| vec![n.clone()]).collect(), names, grouped };
    }
    let members: Vec<Vec<String>> =
        m.groups().iter().map(|g| g.iter().map(|i| index.pod_name(m.pods[*i]).to_string()).collect()).collect();
    let names = (1..=members.len()).map(|i| format!("G{i}")).collect();
    View { names, members, grouped }
}

fn cell(m: &Matrix, grouped: bool, case: usize, from: usize, to: usize) -> bool {
    if grouped { m.group_allowed(case, from, to) } else { m.allowed(case, from, to) }
}

#[derive(Serialize)]
struct JsonCase {
    port: u16,
    protocol: Protocol,
    /// `allowed[from][to]`.
    allowed: Vec<Vec<bool>>,
}

#[derive(Serialize)]
struct JsonMatrix<'a> {
    grouped: bool,
    /// Row and column labels: pods, or groups `G1`… .
    names: &'a [String],
    /// Pods in each group (one pod each when not grouped).
    members: &'a [Vec<String>],
    cases: Vec<JsonCase>,
}

/// Renders `m` in `format`.
#[must_use]
pub fn render(index: &ClusterIndex, m: &Matrix, grouped: bool, format: MatrixFormat) -> String {
    let v = view(index, m, grouped);
    let n = v.names.len();
    let mut out = String::new();
    match format {
        MatrixFormat::Json => {
            let cases = (0..m.cases.len())
                .map(|c| JsonCase {
                    port: m.cases[c].port,
                    protocol: m.cases[c].protocol,
                    allowed: (0..n).map(|f| (0..n).map(|t| cell(m, grouped, c, f, t)).collect()).collect(),
                })
                .collect();
            let json = JsonMatrix { grouped, names: &v.names, members: &v.members, cases };
            out = serde_json::to_string_pretty(&json).expect("plain data serializes");
            out.push('\n');
        }
        MatrixFormat::Csv => {
            out.push_str("from,to,port,protocol,allowed\n");
            for (c, case) in m.cases.iter().enumerate() {
                for f in 0..n {
                    for t in 0..n {
                        let _ = writeln!(
                            out,
                            "{},{},{},{},{}",
                            v.names[f],
                            v.names[t],
                            case.port,
                            case.protocol,
                            cell(m, grouped, c, f, t)
                        );
                    }
                }
            }
        }
        MatrixFormat::Table | MatrixFormat::Markdown => {
            let md = format == MatrixFormat::Markdown;
            for (c, case) in m.cases.iter().enumerate() {
                let title = format!("{}/{}", case.protocol, case.port);
                let width = v.names.iter().map(String::len).chain([title.len()]).max().unwrap_or(0);
                let row = |first: &str, cells: Vec<String>| {
                    if md {
                        format!(
                            "| {} |\n",
                            [first.to_string()].into_iter().chain(cells).collect::<Vec<_>>().join(" | ")
                        )
                    } else {
                        let cells: Vec<String> = cells.iter().map(|c| format!("{c:<width$}")).collect();
                        format!("{first:<width$}  {}\n", cells.join(" ")).trim_end().to_string() + "\n"
                    }
                };
                out.push_str(&row(&title, v.names.clone()));
                if md {
                    let _ = writeln!(out, "|{}", "---|".repeat(n + 1));
                }
                for f in 0..n {
                    let cells =
                        (0..n).map(|t| if cell(m, grouped, c, f, t) { ".".into() } else { "X".into() }).collect();
                    out.push_str(&row(&v.names[f], cells));
                }
                out.push('\n');
            }
            out.push_str(if md {
                "`.` allowed, `X` denied; rows are sources, columns destinations.\n"
            } else {
                ". allowed, X denied; rows are sources, columns destinations.\n"
            });
            if v.grouped {
                out.push_str(&legend(&v, md));
            }
        }
        MatrixFormat::Mermaid | MatrixFormat::Dot => out.push_str(&graph(m, &v, format == MatrixFormat::Dot)),
    }
    out
}

fn legend(v: &View, md: bool) -> String {
    let mut out = String::from(if md {
        "\nGroups (pods that behave identically; a group's own cell is between two different members):\n\n"
    } else {
        "\nGroups (pods that behave identically; a group's own cell is between two different members):\n"
    });
    for (name, members) in v.names.iter().zip(&v.members) {
        let _ = writeln!(out, "{}{name}: {}", if md { "- " } else { "  " }, members.join(", "));
    }
    out
}

fn graph(m: &Matrix, v: &View, dot: bool) -> String {
    let n = v.names.len();
    let mut out = String::from(if dot { "digraph reachability {\n  rankdir=LR;\n" } else { "flowchart LR\n" });
    for (i, name) in v.names.iter().enumerate() {
        let label = if v.grouped { format!("{name}: {}", v.members[i].join(", ")) } else { name.clone() };
        let _ = if dot { writeln!(out, "  n{i} [label=\"{label}\"];") } else { writeln!(out, "  n{i}[\"{label}\"]") };
    }
    for f in 0..n {
        for t in 0..n {
            if f == t && !(v.grouped && v.members[f].len() > 1) {
                continue;
            }
            let ports: Vec<String> = m
                .cases
                .iter()
                .enumerate()
                .filter(|(c, _)| cell(m, v.grouped, *c, f, t))
                .map(|(_, case)| format!("{}/{}", case.protocol, case.port))
                .collect();
            if ports.is_empty() {
                continue;
            }
            let label = ports.join(", ");
            let _ = if dot {
                writeln!(out, "  n{f} -> n{t} [label=\"{label}\"];")
            } else {
                writeln!(out, "  n{f} -->|\"{label}\"| n{t}")
            };
        }
    }
    if dot {
        out.push_str("}\n");
    }
    out
}
