//! The whole agent path at S scale: the benchmark's cluster written as a
//! manifests directory, `palisade agent` running in the lab node on it, and
//! the time from a policy file being written to a real connection from the
//! client observing the change, in both directions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context as _, Result};
use crate::netns;
use crate::topology::Topology;
use palisade_manifests::encode::{namespace_manifest, pod_manifest, policy_manifest};
use palisade_policy::{NetworkPolicy, PortTarget, Protocol, RulePort};
use serde_json::{Value, json};

use super::{cluster_objects, percentile};

/// Toggles measured per direction.
const ROUNDS: usize = 10;
/// Connect timeout of one probe: a dropped SYN is seen after this long.
const PROBE: Duration = Duration::from_millis(20);

/// The agent as a child process, killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The directory, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn list(items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": Value::Array(items)}).to_string()
}

/// Writes atomically (a rename), as editors and `kubectl`-driven tools do.
fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// The server policy, admitting the client on the benchmark port or not.
fn server_policy(base: &NetworkPolicy, open: bool, port: u16) -> String {
    let mut p = base.clone();
    let tcp = |n: u16| RulePort { protocol: Protocol::Tcp, target: PortTarget::Range { start: n, end: n } };
    p.ingress[0].ports = if open { vec![tcp(port), tcp(9090)] } else { vec![tcp(9090)] };
    list(vec![policy_manifest(&p)])
}

/// Runs the measurement; the lab node must hold no Palisade table.
pub(super) fn write_to_probe(topo: &Topology, client_ns: &str, server: SocketAddr) -> Result<()> {
    let c = cluster_objects(100);
    let dir = Dir(std::env::temp_dir().join(format!("palisade-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    write(&dir.0, "namespaces.json", &list(c.namespaces.iter().map(namespace_manifest).collect()))?;
    for (i, chunk) in c.pods.chunks(500).enumerate() {
        write(&dir.0, &format!("pods-{i:03}.json"), &list(chunk.iter().map(pod_manifest).collect()))?;
    }
    let (server_policy_base, others): (Vec<_>, Vec<_>) =
        c.policies.iter().partition(|p| p.namespace == "bench" && p.name == "server");
    let base = server_policy_base.first().copied().context("bench/server policy")?.clone();
    for (i, chunk) in others.chunks(500).enumerate() {
        write(&dir.0, &format!("policies-{i:03}.json"), &list(chunk.iter().map(|p| policy_manifest(p)).collect()))?;
    }
    write(&dir.0, "server.json", &server_policy(&base, true, server.port()))?;
    // Outside the watched directory: the agent must not read its own status.
    let status = dir.0.with_extension("status");
    let _ = std::fs::remove_file(&status);
    let exe = std::env::current_exe()?;
    let agent = Agent(
        Command::new("ip")
            .args(["netns", "exec", topo.node.name()])
            .arg(&exe)
            .args(["agent", "--node", "lab", "--resync-seconds", "60", "--pod-interface-prefix", "pv", "--manifests"])
            .arg(&dir.0)
            .arg("--status-file")
            .arg(&status)
            .stdout(std::fs::File::create(dir.0.with_extension("log"))?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting the agent")?,
    );
    let t = Instant::now();
    while !status.exists() {
        crate::ensure!(t.elapsed() < Duration::from_secs(180), "the agent did not program the cluster in 180 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "agent on the S cluster as {} manifest files: first program after {:.1} s",
        std::fs::read_dir(&dir.0)?.count(),
        t.elapsed().as_secs_f64()
    );
    let (dir_path, port) = (dir.0.clone(), server.port());
    let (opened, closed) = netns::run_in(client_ns, move || -> Result<(Vec<Duration>, Vec<Duration>)> {
        let probe = || std::net::TcpStream::connect_timeout(&server, PROBE).is_ok();
        crate::ensure!(probe(), "the client reaches the server before the first change");
        let (mut opened, mut closed) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS * 2 {
            let open = round % 2 == 1;
            let t = Instant::now();
            write(&dir_path, "server.json", &server_policy(&base, open, port))?;
            loop {
                crate::ensure!(t.elapsed() < Duration::from_secs(10), "no change observed in 10 s (round {round})");
                if probe() == open {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if open { &mut opened } else { &mut closed }.push(t.elapsed());
        }
        Ok((opened, closed))
    })?;
    drop(agent);
    let _ = std::fs::remove_file(&status);
    for (what, mut v) in [("policy closes the port", closed), ("policy opens the port", opened)] {
        v.sort();
        println!(
            "manifest written -> probe observes it ({what}): p50 {:.0} ms, max {:.0} ms ({} rounds; a closed port is seen after a {} ms probe timeout)",
            percentile(&v, 0.5).as_secs_f64() * 1e3,
            v.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            v.len(),
            PROBE.as_millis()
        );
    }
    Ok(())
}
