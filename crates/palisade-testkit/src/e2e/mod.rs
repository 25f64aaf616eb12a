//! The upstream e2e network-policy model: namespaces x, y, z (labelled
//! `ns=<name>`), pods a, b, c in each (labelled `pod=<name>`), every pod
//! serving 80 and 81 on TCP, UDP and SCTP with named ports
//! `serve-<port>-<proto>`, as in kubernetes/test/e2e/network/netpol.
//!
//! Expectations are written by hand with `Reach`, the way the upstream
//! tests use `Reachability.ExpectPeer`: start from a default, then set
//! exceptions; a pod always reaches itself.

use std::fmt::Write as _;

pub mod cases;
pub mod cluster_cases;

use palisade_manifests::load_str;
use palisade_policy::matrix::Case;
use palisade_policy::{ClusterIndex, Endpoint, Flow, Protocol};

pub use palisade_policy::synth::e2e::{NAMESPACES, PODS};

/// Address of pod `ns/pod`: x/a = 10.0.1.1 … z/c = 10.0.3.3 (and fd00::1:1 …).
#[must_use]
pub fn ip(ns: &str, pod: &str) -> String {
    let n = NAMESPACES.iter().position(|x| *x == ns).expect("model namespace") + 1;
    let p = PODS.iter().position(|x| *x == pod).expect("model pod") + 1;
    format!("10.0.{n}.{p}")
}

#[must_use]
pub fn ipv6(ns: &str, pod: &str) -> String {
    let n = NAMESPACES.iter().position(|x| *x == ns).expect("model namespace") + 1;
    let p = PODS.iter().position(|x| *x == pod).expect("model pod") + 1;
    format!("fd00::{n}:{p}")
}

/// The model cluster as YAML.
#[must_use]
pub fn model_yaml() -> String {
    let mut out = String::new();
    for ns in NAMESPACES {
        let _ = write!(out, "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{ns: {ns}}}}}\n");
        for pod in PODS {
            let mut ports = String::new();
            for port in [80, 81] {
                for proto in ["TCP", "UDP", "SCTP"] {
                    let lower = proto.to_lowercase();
                    let _ = write!(ports, "{{containerPort: {port}, protocol: {proto}, name: serve-{port}-{lower}}}, ");
                }
            }
            let _ = write!(
                out,
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{pod: {pod}}}}}\nspec: {{containers: [{{name: c, image: agnhost, ports: [{ports}]}}]}}\nstatus: {{phase: Running, podIP: {}, podIPs: [{{ip: {}}}, {{ip: {}}}]}}\n",
                ip(ns, pod),
                ip(ns, pod),
                ipv6(ns, pod)
            );
        }
    }
    out
}

/// Loads the model plus `policies` (YAML); panics on any load error.
#[must_use]
pub fn cluster(policies: &str) -> ClusterIndex {
    let text = format!("{}---\n{policies}", model_yaml());
    let loaded = load_str("model.yaml", &text, "default");
    assert!(loaded.errors.is_empty(), "model must load: {:?}", loaded.errors);
    loaded.index()
}

/// All nine model pods as `ns/pod`, in row order.
#[must_use]
pub fn all_pods() -> Vec<String> {
    NAMESPACES.iter().flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}"))).collect()
}

/// A hand-written expected truth table.
#[derive(Clone, Debug)]
pub struct Reach {
    pods: Vec<String>,
    cells: Vec<Vec<bool>>,
}

fn matches(pattern: &str, pod: &str) -> bool {
    let (pns, pname) = pattern.split_once('/').unwrap_or((pattern, "*"));
    let (ns, name) = pod.split_once('/').expect("ns/pod");
    (pns == "*" || pns == ns) && (pname == "*" || pname == name)
}

impl Reach {
    /// Every pair `default`.
    #[must_use]
    pub fn new(default: bool) -> Self {
        let pods = all_pods();
        let n = pods.len();
        Reach { pods, cells: vec![vec![default; n]; n] }
    }

    /// Sets every (from, to) matching the patterns (`x/a`, `x/*`, `x`, `*/a`, `*`).
    #[must_use]
    pub fn expect(mut self, from: &str, to: &str, allowed: bool) -> Self {
        for (i, f) in self.pods.iter().enumerate() {
            for (j, t) in self.pods.iter().enumerate() {
                if matches(from, f) && matches(to, t) {
                    self.cells[i][j] = allowed;
                }
            }
        }
        self
    }

    /// Whether `from` reaches `to` (`ns/pod`); a pod always reaches itself.
    ///
    /// # Panics
    /// If either is not a model pod.
    #[must_use]
    pub fn allowed(&self, from: &str, to: &str) -> bool {
        let i = self.pods.iter().position(|p| p == from).expect("model pod");
        let j = self.pods.iter().position(|p| p == to).expect("model pod");
        i == j || self.cells[i][j]
    }

    fn with_loopback(&self) -> Vec<Vec<bool>> {
        let mut cells = self.cells.clone();
        for (i, row) in cells.iter_mut().enumerate() {
            row[i] = true;
        }
        cells
    }

    /// Renders a table in the e2e style for failure messages.
    fn render(pods: &[String], cells: &[Vec<bool>]) -> String {
        let mut s = format!("{:6}", "");
        for p in pods {
            let _ = write!(s, "{p:4}");
        }
        s.push('\n');
        for (i, row) in cells.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:6}{}",
                pods[i],
                row.iter().map(|c| if *c { ".   " } else { "X   " }).collect::<String>()
            );
        }
        s
    }
}

/// Asserts the engine's matrix equals `expected` for `port`/`protocol`.
#[track_caller]
pub fn assert_reach(index: &ClusterIndex, port: u16, protocol: Protocol, expected: &Reach, what: &str) {
    let ids: Vec<_> = expected.pods.iter().map(|p| index.pod_id_by_key(p).expect("model pod")).collect();
    let m = index.matrix(ids, vec![Case { port, protocol }]);
    let n = expected.pods.len();
    let got: Vec<Vec<bool>> = (0..n).map(|f| (0..n).map(|t| m.allowed(0, f, t)).collect()).collect();
    let want = expected.with_loopback();
    assert!(
        got == want,
        "{what}: {protocol}/{port}\nexpected:\n{}got:\n{}",
        Reach::render(&expected.pods, &want),
        Reach::render(&expected.pods, &got)
    );
}

/// Every pod-to-pod flow on both address families, plus flows to and from
/// two external addresses, on ports 80 and 81 of every protocol, labelled.
#[must_use]
pub fn all_flows(index: &ClusterIndex) -> Vec<(String, Flow)> {
    let pods = index.pods_sorted();
    let mut out = Vec::new();
    let externals: [Endpoint; 2] =
        [Endpoint::External("10.0.9.9".parse().expect("ip")), Endpoint::External("192.0.2.1".parse().expect("ip"))];
    for port in [80, 81] {
        for protocol in Protocol::ALL {
            for &a in &pods {
                for &b in &pods {
                    for v6 in [false, true] {
                        let pick = |id| {
                            let ips = &index.pod(id).pod().ips;
                            Endpoint::Pod { id, addr: ips.iter().find(|ip| ip.is_ipv6() == v6).copied() }
                        };
                        let label = format!("{}->{} {protocol}/{port} v6={v6}", index.pod_name(a), index.pod_name(b));
                        out.push((label, Flow { src: pick(a), dst: pick(b), port, protocol }));
                    }
                }
                for e in externals {
                    let label = format!("{}<->{e:?} {protocol}/{port}", index.pod_name(a));
                    let at = index.pod_endpoint(a, None);
                    out.push((label.clone() + " out", Flow { src: at, dst: e, port, protocol }));
                    out.push((label + " in", Flow { src: e, dst: at, port, protocol }));
                }
            }
        }
    }
    out
}
