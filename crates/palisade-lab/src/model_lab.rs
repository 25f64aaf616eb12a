//! A lab node running a fixed set of pods, enforcing whatever cluster index
//! it is given: the harness of the tests that compare the engine with real
//! packets (differential and truth-table tests).

use std::time::Duration;

use palisade_dataplane::nft::{Nft, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::ruleset::Table;
use palisade_dataplane::transaction::{diff, full};
use palisade_dataplane::{NodeScope, compile};
use palisade_policy::{ClusterIndex, Pod, Protocol};

use crate::error::{Context as _, Result};
use crate::netns::{run, unique_prefix};
use crate::plan::{Family, ProbeRow, plan};
use crate::probe::{Probe, run_all};
use crate::serve;
use crate::topology::Topology;

/// The node, its pods with servers, and what was last applied.
#[derive(Debug)]
pub struct ModelLab {
    topo: Topology,
    nft: NftCli,
    applied: Option<Table>,
}

impl ModelLab {
    /// One namespace per pod, serving `ports` on TCP, UDP and SCTP.
    pub fn start(pods: &[Pod], ports: &[u16]) -> Result<Self> {
        let mut topo = Topology::new(&unique_prefix())?;
        for pod in pods {
            let key = format!("{}/{}", pod.namespace, pod.name);
            topo.add_pod(&key, &pod.ips)?;
            serve::start(topo.pods[&key].ns.name(), &pod.ips, ports, ports, ports).context("servers")?;
        }
        let nft = NftCli::in_netns(topo.node.name());
        Ok(ModelLab { topo, nft, applied: None })
    }

    /// Enforces `index` (every pod local) with one transaction, then flushes
    /// conntrack: connections an earlier program allowed would otherwise
    /// carry probes that reuse their source ports (revoking them is later work).
    pub fn enforce(&mut self, index: &ClusterIndex) -> Result<()> {
        let rendered = render(&compile(index, &NodeScope::All, &self.topo.pod_ifaces()));
        let tx = match &self.applied {
            None => Some(full(&rendered)),
            Some(old) => diff(old, &rendered),
        };
        if let Some(tx) = tx {
            self.nft.apply(&tx, &rendered)?;
        }
        self.applied = Some(rendered);
        run("ip", &["netns", "exec", self.topo.node.name(), "conntrack", "-F"])?;
        Ok(())
    }

    /// Probes for `cases` in `family`, with the engine's expectation.
    #[must_use]
    pub fn plan(&self, index: &ClusterIndex, cases: &[(u16, Protocol)], family: Family) -> (Vec<Probe>, Vec<ProbeRow>) {
        let mut probes = Vec::new();
        let mut rows = Vec::new();
        for (port, protocol) in cases {
            let (p, r) = plan(index, &self.topo, &[*port], &[*protocol], family);
            probes.extend(p);
            rows.extend(r);
        }
        (probes, rows)
    }

    /// Runs `probes`; a denial where `expected` says allowed is retried once.
    pub fn measure(probes: &[Probe], expected: &[bool]) -> Result<Vec<bool>, std::io::Error> {
        run_all(probes, expected, 48, Duration::from_millis(150), Duration::from_millis(1500)).into_iter().collect()
    }
}
