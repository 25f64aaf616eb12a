//! What a running lab consists of, recorded so that later commands (and
//! `lab down` after a crash) find it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::objects::PodPlan;

/// Where lab state lives (tmpfs: gone after a reboot, like the namespaces).
pub const STATE_DIR: &str = "/run/palisade-lab";
/// Every lab namespace starts with this.
pub const LAB_PREFIX: &str = "pal-lab-";

/// A pod's namespace and interface.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodRecord {
    /// Its namespace.
    pub netns: String,
    /// Node-side interface.
    pub veth: String,
    /// What runs there.
    pub plan: PodPlan,
}

/// The external-hosts namespace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExternalRecord {
    /// Its namespace.
    pub netns: String,
    /// Node-side interface.
    pub veth: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

/// The lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    /// Namespace name prefix.
    pub prefix: String,
    /// Working directory (manifests, status, logs).
    pub workdir: PathBuf,
    /// Pods by `namespace/name`.
    pub pods: BTreeMap<String, PodRecord>,
    /// External hosts.
    pub external: Option<ExternalRecord>,
    /// hostNetwork pods: addresses of the node namespace, and what they serve.
    #[serde(default)]
    pub hosts: BTreeMap<String, PodPlan>,
    /// The agent's process id.
    pub agent_pid: Option<u32>,
    /// The servers' process id.
    pub servers_pid: Option<u32>,
    /// Next address index to assign.
    pub next_ip: u32,
    /// The raw objects the lab enforces, as JSON documents keyed by kind/namespace/name.
    pub objects: BTreeMap<String, serde_json::Value>,
}

impl LabState {
    /// The state file.
    #[must_use]
    pub fn path() -> PathBuf {
        Path::new(STATE_DIR).join("state.json")
    }

    /// The lab's manifests directory (the agent's input).
    #[must_use]
    pub fn manifests(&self) -> PathBuf {
        self.workdir.join("manifests")
    }

    /// The agent's status file.
    #[must_use]
    pub fn status_file(&self) -> PathBuf {
        self.workdir.join("status.json")
    }

    /// The agent's flow records (JSON lines).
    #[must_use]
    pub fn flow_log(&self) -> PathBuf {
        self.workdir.join("flows.jsonl")
    }

    /// Loads the recorded lab, if any.
    pub fn load() -> Result<Option<LabState>> {
        match std::fs::read_to_string(Self::path()) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).context("reading the lab state")?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading the lab state"),
        }
    }

    /// Records the lab.
    pub fn save(&self) -> Result<()> {
        std::fs::create_dir_all(STATE_DIR)?;
        let tmp = Path::new(STATE_DIR).join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path()).context("writing the lab state")
    }
}
