//! `palisade lab`: a real mini node on this machine, built from manifests.
//!
//! `up` creates a node namespace, one namespace per pod (addresses from the
//! manifests or assigned), servers for every declared TCP/UDP port, and
//! starts `palisade agent` inside the node on a copy of the manifests;
//! `apply` changes that copy and waits until the kernel enforces it;
//! `probe` sends real packets and compares with the engine; `run` plays a
//! scenario; `down` removes everything. Root only; nothing outside the lab's
//! namespaces changes.

pub mod bench;
mod bench_agent;
pub mod objects;
pub mod state;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use palisade_lab::netns;
use palisade_lab::plan::{Family, ProbeRow, plan};
use palisade_lab::probe::run_all;
use palisade_lab::serve;
use palisade_lab::topology::Topology;
use palisade_manifests::{Input, RawObject, load, raw_objects};
use palisade_policy::Protocol;
use serde::Serialize;
use serde_json::Value;

use crate::agent::source::dir_digest;
use objects::{LabObjects, PodPlan, build};
use state::{ExternalRecord, LAB_PREFIX, LabState, PodRecord, STATE_DIR};

/// Annotation that makes a scenario step delete the object it names.
pub const DELETE_ANNOTATION: &str = "lab.palisade.dev/delete";

fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

fn read_raw(paths: &[PathBuf]) -> anyhow::Result<Vec<RawObject>> {
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

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the palisade binary")
}

/// Starts `args` detached, output to `log`; returns its pid.
fn spawn_detached(program: &Path, args: &[&str], log: &Path) -> anyhow::Result<u32> {
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
    )
}

/// Writes the lab's manifests: changed files atomically, stale ones removed.
fn write_manifests(state: &LabState, objects: &LabObjects) -> anyhow::Result<()> {
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

/// Waits until the agent reports enforcing the manifests as they are now.
fn wait_enforced(state: &LabState, timeout: Duration) -> anyhow::Result<Duration> {
    let want = format!("{:016x}", dir_digest(&state.manifests()));
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(state.status_file())
            && let Ok(status) = serde_json::from_str::<Value>(&text)
            && status["digest"].as_str() == Some(want.as_str())
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

fn start_servers(state: &mut LabState) -> anyhow::Result<()> {
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
fn sync_pods(state: &mut LabState, topo: &mut Topology, wanted: &BTreeMap<String, PodPlan>) -> anyhow::Result<bool> {
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

fn record_objects(state: &mut LabState, raw: &[RawObject]) {
    state.objects = raw.iter().map(|o| (object_key(&o.kind, &o.namespace, &o.name), o.value.clone())).collect();
}

/// `lab up`; returns the line to print.
pub fn up(paths: &[PathBuf], external: &[IpAddr]) -> anyhow::Result<String> {
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
        agent_pid: None,
        servers_pid: None,
        next_ip: 0,
        objects: BTreeMap::new(),
    };
    state.save()?;
    let result = (|| -> anyhow::Result<String> {
        let started = Instant::now();
        let mut topo = Topology::new(&prefix)?;
        let objects = build(&raw, &BTreeMap::new(), &mut state.next_ip);
        for note in &objects.notes {
            eprintln!("note: {note}");
        }
        sync_pods(&mut state, &mut topo, &objects.pods)?;
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
fn start_agent(state: &mut LabState) -> anyhow::Result<()> {
    let node = format!("{}node", state.prefix);
    let exe = exe()?;
    let manifests = state.manifests().display().to_string();
    let status = state.status_file().display().to_string();
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
    ];
    state.agent_pid = Some(spawn_detached(Path::new("ip"), &args, &state.workdir.join("agent.log"))?);
    state.save()
}

fn apply_raw(state: &mut LabState, raw: &[RawObject]) -> anyhow::Result<Duration> {
    if state.agent_pid.is_none_or(|pid| !alive(pid)) {
        eprintln!("note: the agent is not running; starting it (the kernel kept enforcing the last applied rules)");
        start_agent(state)?;
    }
    let previous: BTreeMap<String, PodPlan> = state.pods.iter().map(|(k, p)| (k.clone(), p.plan.clone())).collect();
    let objects = build(raw, &previous, &mut state.next_ip);
    for note in &objects.notes {
        eprintln!("note: {note}");
    }
    let mut topo = topology(state);
    let pods_changed = sync_pods(state, &mut topo, &objects.pods)?;
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
pub fn apply(paths: &[PathBuf]) -> anyhow::Result<()> {
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

/// Probe options.
#[derive(Debug, Clone)]
pub struct ProbeArgs {
    /// Ports (default: every declared TCP/UDP port).
    pub ports: Vec<u16>,
    /// Protocols.
    pub protocols: Vec<Protocol>,
    /// Address families.
    pub families: Vec<Family>,
}

#[derive(Debug, Serialize)]
struct ProbeJson {
    probes: Vec<ProbeRow>,
    mismatches: usize,
}

/// Runs the probes of the current lab; returns the rows.
pub fn probe_rows(state: &LabState, args: &ProbeArgs) -> anyhow::Result<Vec<ProbeRow>> {
    let loaded = load(&[Input::Path(state.manifests())], "default");
    let index = loaded.index();
    let topo = topology(state);
    let ports: Vec<u16> = if args.ports.is_empty() {
        let mut p: Vec<u16> = state
            .pods
            .values()
            .flat_map(|r| r.plan.tcp.iter().chain(&r.plan.udp).chain(&r.plan.sctp).copied())
            .collect();
        p.sort_unstable();
        p.dedup();
        if p.is_empty() { vec![80] } else { p }
    } else {
        args.ports.clone()
    };
    let mut rows = Vec::new();
    for family in &args.families {
        let (probes, mut planned) = plan(&index, &topo, &ports, &args.protocols, *family);
        let expected: Vec<bool> = planned.iter().map(|r| r.expected).collect();
        let results = run_all(&probes, &expected, 64, Duration::from_millis(250), Duration::from_secs(2));
        for (row, result) in planned.iter_mut().zip(results) {
            row.measured =
                result.with_context(|| format!("probe {} -> {} {}/{}", row.from, row.to, row.protocol, row.port))?;
        }
        rows.extend(planned);
    }
    topo.keep();
    Ok(rows)
}

/// Renders probe rows as tables (measured; `*` marks a disagreement with the engine).
#[must_use]
pub fn probe_table(rows: &[ProbeRow]) -> String {
    let mut out = String::new();
    let mut cases: Vec<(Protocol, u16)> = rows.iter().map(|r| (r.protocol, r.port)).collect();
    cases.sort();
    cases.dedup();
    let mut names: Vec<&str> = rows.iter().flat_map(|r| [r.from.as_str(), r.to.as_str()]).collect();
    names.sort_unstable();
    names.dedup();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(8);
    for (protocol, port) in cases {
        let _ = write!(out, "{:<width$} ", format!("{protocol}/{port}"));
        for n in &names {
            let _ = write!(out, "{n:<width$} ");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        for from in &names {
            let _ = write!(out, "{from:<width$} ");
            for to in &names {
                let cell =
                    rows.iter().find(|r| r.from == *from && r.to == *to && r.protocol == protocol && r.port == port);
                let text = match cell {
                    None if from == to => ".".to_string(),
                    None => "-".to_string(),
                    Some(r) => format!(
                        "{}{}",
                        if r.measured { "." } else { "X" },
                        if r.measured == r.expected { "" } else { "*" }
                    ),
                };
                let _ = write!(out, "{text:<width$} ");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(". connected, X blocked (measured with real packets); * the engine disagrees; - not probed\n");
    let mismatches: Vec<&ProbeRow> = rows.iter().filter(|r| r.measured != r.expected).collect();
    let _ = writeln!(out, "{} probes, {} mismatches", rows.len(), mismatches.len());
    for r in mismatches {
        let _ = writeln!(
            out,
            "  MISMATCH {} -> {} {}/{}: measured {}, engine {}",
            r.from,
            r.to,
            r.protocol,
            r.port,
            verdict(r.measured),
            verdict(r.expected)
        );
    }
    out
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// `lab probe`: exit status 1 on any mismatch.
pub fn probe(args: &ProbeArgs, json: bool) -> anyhow::Result<u8> {
    let state = LabState::load()?.context("no lab is up; run `palisade lab up -f DIR`")?;
    let rows = probe_rows(&state, args)?;
    let mismatches = rows.iter().filter(|r| r.measured != r.expected).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&ProbeJson { probes: rows, mismatches })?);
    } else {
        print!("{}", probe_table(&rows));
    }
    Ok(u8::from(mismatches > 0))
}

/// Kills the lab's processes and removes its namespaces and files; reports what failed.
pub fn down() -> anyhow::Result<()> {
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

/// `lab serve` (internal): runs the servers of every lab pod until killed.
pub fn serve_forever() -> anyhow::Result<()> {
    let state = LabState::load()?.context("no lab state")?;
    for (key, pod) in &state.pods {
        serve::start(&pod.netns, &pod.plan.tcp, &pod.plan.udp, &pod.plan.sctp)
            .with_context(|| format!("servers of {key}"))?;
    }
    if let Some(ext) = &state.external {
        let all = |ports: fn(&PodPlan) -> &Vec<u16>| {
            let mut all: Vec<u16> = state.pods.values().flat_map(|p| ports(&p.plan).iter().copied()).collect();
            all.sort_unstable();
            all.dedup();
            all
        };
        let (tcp, udp, sctp) = (all(|p| &p.tcp), all(|p| &p.udp), all(|p| &p.sctp));
        serve::start(&ext.netns, &tcp, &udp, &sctp).context("servers of the external hosts")?;
    }
    std::fs::write(state.workdir.join("servers.ready"), b"")?;
    loop {
        std::thread::park();
    }
}

/// A scenario: `base/` then each file of `steps/` in name order.
#[derive(Debug, Serialize)]
struct StepReport {
    step: String,
    applied_ms: u128,
    probes: Vec<ProbeRow>,
    mismatches: usize,
}

fn merge_step(state: &LabState, step: &Path) -> anyhow::Result<Vec<RawObject>> {
    let mut objects: BTreeMap<String, RawObject> =
        raw_from_state(state).into_iter().map(|o| (object_key(&o.kind, &o.namespace, &o.name), o)).collect();
    for o in read_raw(&[step.to_path_buf()])? {
        let key = object_key(&o.kind, &o.namespace, &o.name);
        let delete =
            o.value.pointer("/metadata/annotations").and_then(|a| a.get(DELETE_ANNOTATION)).and_then(Value::as_str)
                == Some("true");
        if delete {
            objects.remove(&key);
        } else {
            objects.insert(key, o);
        }
    }
    Ok(objects.into_values().collect())
}

/// `lab run SCENARIO`: up with the base, each step applied and probed, then down.
pub fn run(scenario: &Path, external: &[IpAddr], args: &ProbeArgs, json: bool) -> anyhow::Result<u8> {
    let base = scenario.join("base");
    let base = if base.is_dir() {
        base
    } else {
        bail!("{}: a scenario needs a base/ directory (and optionally steps/)", scenario.display())
    };
    let mut steps: Vec<PathBuf> = std::fs::read_dir(scenario.join("steps"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
                .collect()
        })
        .unwrap_or_default();
    steps.sort();
    // Ctrl-C or SIGTERM: take the lab down and exit.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            down_quiet();
            std::process::exit(130);
        }
    });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> anyhow::Result<Vec<StepReport>> {
        let mut reports = Vec::new();
        let start = Instant::now();
        let line = up(std::slice::from_ref(&base), external)?;
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        let state = LabState::load()?.context("lab state")?;
        let probes = probe_rows(&state, args)?;
        reports.push(report("base", start.elapsed(), probes, json));
        for step in &steps {
            let mut state = LabState::load()?.context("lab state")?;
            let raw = merge_step(&state, step)?;
            let took = apply_raw(&mut state, &raw)?;
            let name = step.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let probes = probe_rows(&state, args)?;
            reports.push(report(&name, took, probes, json));
        }
        Ok(reports)
    }));
    down_quiet();
    let reports = match outcome {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let total: usize = reports.iter().map(|r| r.mismatches).sum();
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"steps": reports, "mismatches": total}))?);
    } else {
        println!("scenario {}: {} steps, {total} mismatches", scenario.display(), reports.len());
    }
    Ok(u8::from(total > 0))
}

fn report(step: &str, took: Duration, probes: Vec<ProbeRow>, json: bool) -> StepReport {
    let mismatches = probes.iter().filter(|r| r.measured != r.expected).count();
    if !json {
        println!("=== {step} (enforced {} ms after the manifests were written)", took.as_millis());
        print!("{}", probe_table(&probes));
        println!();
    }
    StepReport { step: step.to_string(), applied_ms: took.as_millis(), probes, mismatches }
}
