//! `palisade lab`: a real mini node on this machine, built from manifests.
//!
//! `up` creates a node namespace, one namespace per pod (addresses from the
//! manifests or assigned), servers for every declared TCP/UDP port, and
//! starts `palisade agent` inside the node on a copy of the manifests;
//! `apply` changes that copy and waits until the kernel enforces it;
//! `probe` sends real packets and compares with the engine; `run` plays a
//! scenario; `down` removes everything. Root only; nothing outside the lab's
//! namespaces changes.

mod flows;
mod measure;
pub mod objects;
mod scenario;
pub mod state;
mod trace;

pub use flows::{flow_line, flows, read_flows};
pub use measure::{ProbeArgs, probe, probe_rows, probe_table};
pub use scenario::run;
pub use trace::trace;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context as _, Result};
use crate::netns;
use crate::serve;
use crate::topology::Topology;
use palisade_manifests::{Input, RawObject, load, raw_objects};
use serde_json::Value;

use objects::{LabObjects, PodPlan, build};
use palisade_agent::manifests::{dir_digest, hex};
use state::{ExternalRecord, LAB_PREFIX, LabState, PodRecord, STATE_DIR};

/// Annotation that makes a scenario step delete the object it names.
pub const DELETE_ANNOTATION: &str = "lab.palisade.dev/delete";

fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

fn read_raw(paths: &[PathBuf]) -> Result<Vec<RawObject>> {
    let inputs: Vec<Input> = paths.iter().map(|p| Input::parse(&p.to_string_lossy())).collect();
    let (raw, errors) = raw_objects(&inputs, "default");
    if !errors.is_empty() {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("cannot read the manifests:\n{}", text.join("\n"));
    }
    // Invalid objects are reported now; the agent skips them too.
    for e in load(&inputs, "default").errors {
        eprintln!("warning: {e}");
    }
    Ok(raw)
}

fn raw_from_state(state: &LabState) -> Vec<RawObject> {
    state
        .objects
        .values()
        .map(|v| {
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
            RawObject {
                file: "lab".into(),
                kind: s("/kind"),
                namespace: s("/metadata/namespace"),
                name: s("/metadata/name"),
                value: v.clone(),
            }
        })
        .collect()
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("locating the palisade binary")
}

/// Starts `args` detached, output to `log`; returns its pid.
fn spawn_detached(program: &Path, args: &[&str], log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::File::create(log)?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(child.id())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn stop(pid: u32) {
    let pid_t = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let _ = nix::sys::signal::kill(pid_t, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let _ = nix::sys::wait::waitpid(pid_t, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
    if alive(pid) {
        let _ = nix::sys::signal::kill(pid_t, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid_t, None);
    }
}

fn topology(state: &LabState) -> Topology {
    let pods: Vec<(String, String, String, Vec<IpAddr>)> =
        state.pods.iter().map(|(k, p)| (k.clone(), p.netns.clone(), p.veth.clone(), p.plan.addrs.clone())).collect();
    Topology::existing(
        &state.prefix,
        &pods,
        state.external.as_ref().map(|e| (e.netns.clone(), e.veth.clone(), e.addrs.clone())),
        state.hosts.iter().map(|(k, p)| (k.clone(), p.addrs.clone())).collect(),
    )
}

/// Writes the lab's manifests: changed files atomically, stale ones removed.
fn write_manifests(state: &LabState, objects: &LabObjects) -> Result<()> {
    let dir = state.manifests();
    std::fs::create_dir_all(&dir)?;
    for (name, text) in &objects.files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == *text) {
            continue;
        }
        let tmp = state.workdir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
    }
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !objects.files.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Waits until the running agent itself (its own pid in the status, not
/// a previous agent's word) reports enforcing the manifests as they are now.
fn wait_enforced(state: &LabState, timeout: Duration) -> Result<Duration> {
    let want = hex(&dir_digest(&state.manifests()));
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(state.status_file())
            && let Ok(status) = serde_json::from_str::<Value>(&text)
            && status["digest"].as_str() == Some(want.as_str())
            && status["pid"].as_u64() == state.agent_pid.map(u64::from)
        {
            return Ok(start.elapsed());
        }
        if let Some(pid) = state.agent_pid
            && !alive(pid)
        {
            let log = std::fs::read_to_string(state.workdir.join("agent.log")).unwrap_or_default();
            bail!("the agent exited; its log:\n{log}");
        }
        if start.elapsed() > timeout {
            bail!(
                "the agent did not apply the manifests within {timeout:?}; see {}",
                state.workdir.join("agent.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn start_servers(state: &mut LabState) -> Result<()> {
    if let Some(pid) = state.servers_pid.take() {
        stop(pid);
    }
    state.save()?;
    let pid = spawn_detached(&exe()?, &["lab", "serve"], &state.workdir.join("servers.log"))?;
    state.servers_pid = Some(pid);
    state.save()?;
    // The servers report readiness by creating this file.
    let ready = state.workdir.join("servers.ready");
    let start = Instant::now();
    while !ready.exists() {
        if !alive(pid) || start.elapsed() > Duration::from_secs(20) {
            let log = std::fs::read_to_string(state.workdir.join("servers.log")).unwrap_or_default();
            bail!("the lab servers did not start:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(ready);
    Ok(())
}

/// Adds pods that are new and removes pods that went away.
fn sync_pods(state: &mut LabState, topo: &mut Topology, wanted: &BTreeMap<String, PodPlan>) -> Result<bool> {
    let mut changed = false;
    let gone: Vec<String> = state
        .pods
        .keys()
        .filter(|k| wanted.get(*k).is_none_or(|p| p.addrs != state.pods[*k].plan.addrs))
        .cloned()
        .collect();
    for key in gone {
        topo.remove_pod(&key)?;
        state.pods.remove(&key);
        changed = true;
    }
    for (key, plan) in wanted {
        if let Some(record) = state.pods.get_mut(key) {
            changed |= record.plan != *plan;
            record.plan = plan.clone();
        } else {
            topo.add_pod(key, &plan.addrs)?;
            let attached = &topo.pods[key];
            let record =
                PodRecord { netns: attached.ns.name().into(), veth: attached.veth.clone(), plan: plan.clone() };
            state.pods.insert(key.clone(), record);
            changed = true;
        }
    }
    Ok(changed)
}

/// Adds hostNetwork pods that are new (or whose addresses changed) and
/// removes those that went away.
fn sync_hosts(state: &mut LabState, topo: &mut Topology, wanted: &BTreeMap<String, PodPlan>) -> Result<bool> {
    let mut changed = false;
    let gone: Vec<String> = state
        .hosts
        .keys()
        .filter(|k| wanted.get(*k).is_none_or(|p| p.addrs != state.hosts[*k].addrs))
        .cloned()
        .collect();
    for key in gone {
        topo.remove_host(&key)?;
        state.hosts.remove(&key);
        changed = true;
    }
    for (key, plan) in wanted {
        if let Some(record) = state.hosts.get_mut(key) {
            changed |= record != plan;
            *record = plan.clone();
        } else {
            topo.add_host(key, &plan.addrs)?;
            state.hosts.insert(key.clone(), plan.clone());
            changed = true;
        }
    }
    Ok(changed)
}

fn record_objects(state: &mut LabState, raw: &[RawObject]) {
    state.objects = raw.iter().map(|o| (object_key(&o.kind, &o.namespace, &o.name), o.value.clone())).collect();
}

/// `lab up`; returns the line to print.
pub fn up(paths: &[PathBuf], external: &[IpAddr]) -> Result<String> {
    if let Some(existing) = LabState::load()? {
        bail!("a lab is already up (namespaces {}*); run `palisade lab down` first", existing.prefix);
    }
    let raw = read_raw(paths)?;
    let prefix = format!("{LAB_PREFIX}{}", &netns::unique_prefix()["pal-".len()..]);
    let workdir = Path::new(STATE_DIR).join(prefix.trim_end_matches('-'));
    std::fs::create_dir_all(workdir.join("manifests"))?;
    let mut state = LabState {
        prefix: prefix.clone(),
        workdir,
        pods: BTreeMap::new(),
        external: None,
        hosts: BTreeMap::new(),
        agent_pid: None,
        servers_pid: None,
        next_ip: 0,
        objects: BTreeMap::new(),
    };
    state.save()?;
    let result = (|| -> Result<String> {
        let started = Instant::now();
        let mut topo = Topology::new(&prefix)?;
        let objects = build(&raw, &BTreeMap::new(), &mut state.next_ip);
        for note in &objects.notes {
            eprintln!("note: {note}");
        }
        check_externals(&objects.pods, external)?;
        check_externals(&objects.hosts, external)?;
        sync_pods(&mut state, &mut topo, &objects.pods)?;
        sync_hosts(&mut state, &mut topo, &objects.hosts)?;
        if !external.is_empty() {
            topo.add_external(external)?;
            let ext = topo.external.as_ref().expect("just added");
            state.external =
                Some(ExternalRecord { netns: ext.ns.name().into(), veth: ext.veth.clone(), addrs: external.to_vec() });
        }
        topo.keep();
        record_objects(&mut state, &raw);
        write_manifests(&state, &objects)?;
        start_servers(&mut state)?;
        start_agent(&mut state)?;
        wait_enforced(&state, Duration::from_secs(30))?;
        Ok(format!(
            "lab up: {} pods{} in namespaces {prefix}*, enforcing {} objects; ready in {} ms",
            state.pods.len(),
            if external.is_empty() { String::new() } else { format!(", {} external addresses", external.len()) },
            state.objects.len(),
            started.elapsed().as_millis()
        ))
    })();
    if result.is_err() {
        down_quiet();
    }
    result
}

/// Starts the agent inside the node namespace on the lab's manifests.
fn start_agent(state: &mut LabState) -> Result<()> {
    let node = format!("{}node", state.prefix);
    let exe = exe()?;
    let manifests = state.manifests().display().to_string();
    let status = state.status_file().display().to_string();
    let flow_log = state.flow_log().display().to_string();
    // The flood test raises the per-pod limit to measure the agent's
    // record rate rather than the kernel's limit.
    let rate = std::env::var("PALISADE_LAB_FLOW_LOG_RATE").ok().and_then(|r| r.parse::<u32>().ok()).unwrap_or(100);
    let rate = rate.to_string();
    let args = [
        "netns",
        "exec",
        &node,
        &exe.to_string_lossy(),
        "agent",
        "--all-pods",
        "--manifests",
        &manifests,
        "--status-file",
        &status,
        "--resync-seconds",
        "2",
        // The lab's pod interfaces (pv0, pv1, ...): a pod the agent has
        // not programmed yet is cut off (--new-pods=deny, the default).
        "--pod-interface-prefix",
        "pv",
        // Flow records in a file of the lab's (`palisade lab flows`).
        "--flow-logs",
        "file",
        "--flow-log-file",
        &flow_log,
        "--flow-log-rate",
        &rate,
    ];
    // A previous agent's status must not pass for this one's.
    let _ = std::fs::remove_file(state.status_file());
    state.agent_pid = Some(spawn_detached(Path::new("ip"), &args, &state.workdir.join("agent.log"))?);
    state.save()
}

fn apply_raw(state: &mut LabState, raw: &[RawObject]) -> Result<Duration> {
    if state.agent_pid.is_none_or(|pid| !alive(pid)) {
        eprintln!("note: the agent is not running; starting it (the kernel kept enforcing the last applied rules)");
        start_agent(state)?;
    }
    let previous: BTreeMap<String, PodPlan> = state
        .pods
        .iter()
        .map(|(k, p)| (k.clone(), p.plan.clone()))
        .chain(state.hosts.iter().map(|(k, p)| (k.clone(), p.clone())))
        .collect();
    let objects = build(raw, &previous, &mut state.next_ip);
    for note in &objects.notes {
        eprintln!("note: {note}");
    }
    let mut topo = topology(state);
    let pods_changed = sync_pods(state, &mut topo, &objects.pods)?;
    let pods_changed = sync_hosts(state, &mut topo, &objects.hosts)? || pods_changed;
    topo.keep();
    record_objects(state, raw);
    state.save()?;
    if pods_changed {
        start_servers(state)?;
    }
    let written = Instant::now();
    write_manifests(state, &objects)?;
    wait_enforced(state, Duration::from_secs(30))?;
    Ok(written.elapsed())
}

/// `lab apply`: makes `paths` the lab's desired state.
pub fn apply(paths: &[PathBuf]) -> Result<()> {
    let mut state = LabState::load()?.context("no lab is up; run `palisade lab up -f DIR`")?;
    let raw = read_raw(paths)?;
    let took = apply_raw(&mut state, &raw)?;
    println!(
        "applied {} objects; the kernel enforced them {} ms after the manifests were written",
        raw.len(),
        took.as_millis()
    );
    Ok(())
}

/// Kills the lab's processes and removes its namespaces and files; reports what failed.
pub fn down() -> Result<()> {
    let state = LabState::load()?;
    let mut problems = Vec::new();
    if let Some(state) = &state {
        for pid in [state.agent_pid, state.servers_pid].into_iter().flatten() {
            stop(pid);
        }
    }
    // Every lab namespace, recorded or left by a crash.
    for ns in netns::list_with_prefix(LAB_PREFIX) {
        if let Err(e) = netns::run("ip", &["netns", "del", &ns]) {
            problems.push(e.to_string());
        }
    }
    if let Ok(entries) = std::fs::read_dir(STATE_DIR) {
        for entry in entries.flatten() {
            let path = entry.path();
            let result = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            if let Err(e) = result {
                problems.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { bail!("lab down left something behind:\n{}", problems.join("\n")) }
}

fn down_quiet() {
    if let Err(e) = down() {
        eprintln!("error: {e:#}");
    }
}

/// Refuses external addresses that are a pod's: the external host and the
/// pod cannot both be reached at one address.
fn check_externals(pods: &BTreeMap<String, PodPlan>, external: &[IpAddr]) -> Result<()> {
    for addr in external {
        if let Some((pod, _)) = pods.iter().find(|(_, p)| p.addrs.contains(addr)) {
            bail!("--external {addr} is the address of pod {pod}: choose an address no pod has");
        }
    }
    Ok(())
}

/// `lab serve` (internal): runs the servers of every lab pod until killed.
pub fn serve_forever() -> Result<()> {
    let state = LabState::load()?.context("no lab state")?;
    for (key, pod) in &state.pods {
        serve::start(&pod.netns, &pod.plan.addrs, &pod.plan.tcp, &pod.plan.udp, &pod.plan.sctp)
            .with_context(|| format!("servers of {key}"))?;
    }
    let node = format!("{}node", state.prefix);
    for (key, plan) in &state.hosts {
        serve::start(&node, &plan.addrs, &plan.tcp, &plan.udp, &plan.sctp)
            .with_context(|| format!("servers of the hostNetwork pod {key}"))?;
    }
    if let Some(ext) = &state.external {
        let all = |ports: fn(&PodPlan) -> &Vec<u16>| {
            let mut all: Vec<u16> = state.pods.values().flat_map(|p| ports(&p.plan).iter().copied()).collect();
            all.sort_unstable();
            all.dedup();
            all
        };
        let (tcp, udp, sctp) = (all(|p| &p.tcp), all(|p| &p.udp), all(|p| &p.sctp));
        serve::start(&ext.netns, &ext.addrs, &tcp, &udp, &sctp).context("servers of the external hosts")?;
    }
    std::fs::write(state.workdir.join("servers.ready"), b"")?;
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lab up --external` with a pod's address failed late, with `ip route
    /// add … File exists`.
    #[test]
    fn an_external_address_of_a_pod_is_refused_up_front() {
        let plan = PodPlan { addrs: vec!["10.0.1.1".parse().expect("ip")], ..PodPlan::default() };
        let pods = BTreeMap::from([("x/a".to_string(), plan)]);
        let err = check_externals(&pods, &["203.0.113.5".parse().expect("ip"), "10.0.1.1".parse().expect("ip")])
            .expect_err("refused");
        assert_eq!(err.to_string(), "--external 10.0.1.1 is the address of pod x/a: choose an address no pod has");
        check_externals(&pods, &["203.0.113.5".parse().expect("ip")]).expect("no conflict");
    }
}
