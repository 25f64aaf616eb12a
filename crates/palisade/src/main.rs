//! `palisade`: Kubernetes NetworkPolicy analysis (and, later, enforcement).

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use palisade::commands::matrix::{Grouping, MatrixArgs, MatrixFormat};
use palisade::commands::{self, TextOrJson};
use palisade::inputs::{InputArgs, State, load_state};
use palisade::style::Style;
use palisade_manifests::LoadOptions;
use palisade_policy::Protocol;

#[derive(Parser, Debug)]
#[command(name = "palisade", version, about = "Kubernetes NetworkPolicy analysis and enforcement")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse_loose(s).ok_or_else(|| format!("{s:?} is not TCP, UDP or SCTP"))
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>().ok().filter(|p| *p >= 1).ok_or_else(|| format!("{s:?} is not a port in 1-65535"))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Is one connection allowed, and why. Exit 0 allowed, 1 denied, 2 error.
    Check {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// The net effect of all policies on one pod.
    Explain {
        #[command(flatten)]
        input: InputArgs,
        /// namespace/pod
        pod: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: TextOrJson,
    },
    /// The reachability truth table between pods.
    Matrix {
        #[command(flatten)]
        input: InputArgs,
        /// Only pods in these namespaces (repeatable or comma-separated).
        #[arg(short = 'n', long = "namespace", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Ports (comma-separated); default: every port a pod declares or a
        /// policy names, each with the protocol that declares or names it.
        #[arg(long, value_delimiter = ',', value_parser = parse_port)]
        ports: Vec<u16>,
        /// Protocols (comma-separated); default: TCP for `--ports`, else the
        /// protocols of the default ports.
        #[arg(long, value_delimiter = ',', value_parser = parse_protocol)]
        protocols: Vec<Protocol>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: MatrixFormat,
        /// Group pods that behave identically.
        #[arg(long, value_enum, default_value = "auto")]
        group: Grouping,
    },
    /// One self-contained HTML page of the policies: a graph of namespaces
    /// and pod groups with the allowed edges, each pod's explanation on a
    /// click, the lint findings, and with --before the connections a change
    /// opens and closes. Works offline (a CI job's attachment).
    Report {
        #[command(flatten)]
        input: InputArgs,
        /// The state before a change (file or directory; repeatable).
        #[arg(long)]
        before: Vec<PathBuf>,
        /// Where to write the page (`-`: standard output).
        #[arg(short = 'o', long, default_value = "report.html")]
        output: PathBuf,
        /// The page's title.
        #[arg(long, default_value = "Palisade report")]
        title: String,
        /// Only pods in these namespaces (repeatable or comma-separated).
        #[arg(short = 'n', long = "namespace", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// The most pods one page draws.
        #[arg(long, default_value_t = 2000)]
        max_pods: usize,
    },
    /// Answer JSON Lines queries from stdin, one JSON line out per query.
    Query {
        #[command(flatten)]
        input: InputArgs,
    },
    /// Findings with a why and a fix. Exit 1 when there are warnings.
    Lint {
        #[command(flatten)]
        input: InputArgs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: TextOrJson,
    },
    /// Is each policy in force, and on how many nodes (reads the API: the
    /// status each node's agent writes). Exit 1 when a node is behind or failed.
    Status {
        /// The kubeconfig context (default: the current one, or in-cluster).
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// The agents' namespace.
        #[arg(long, default_value = "palisade-system")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: TextOrJson,
    },
    /// Follow the next packet of a flow through this node's chains (root,
    /// in the node's network namespace): the path mapped to policies and
    /// rules, beside the engine's verdict. Exit 0 when they agree, 1 when
    /// they do not, 2 when no packet came before the timeout.
    Trace {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        flow: FlowArgs,
        /// The node whose pods the agent programs (default: `NODE_NAME`,
        /// else every pod of the input).
        #[arg(long, env = "NODE_NAME")]
        node: Option<String>,
        /// Seconds to wait for a packet of the flow.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Enforce policies on this node: watch manifests, keep nftables in sync.
    Agent(AgentArgs),
    /// A real mini node on this machine: namespaces as pods, real packets (root).
    #[command(subcommand)]
    Lab(LabCommand),
    /// Which connections a change opens and closes. Exit 1 when any do.
    Diff {
        /// The state before (file or directory; repeatable).
        #[arg(long, required = true)]
        before: Vec<PathBuf>,
        /// The state after (file or directory; repeatable).
        #[arg(long, required = true)]
        after: Vec<PathBuf>,
        /// Namespace for objects that name none.
        #[arg(long = "default-namespace", value_name = "NS", default_value = "default")]
        default_namespace: String,
        /// Reject objects with fields the API does not define (see `check --help`).
        #[arg(long)]
        strict: bool,
        /// Audit (staged) policies: `include` compares as if they were
        /// enforced; `exclude` leaves them out (see `check --help`).
        #[arg(long, value_enum, default_value = "include")]
        audit: palisade::inputs::Audit,
        /// Audit policies on the before side only (default: as `--audit`).
        /// `--before DIR --after DIR --audit-before exclude` lists what
        /// enforcing the staged policies would open and close.
        #[arg(long, value_enum)]
        audit_before: Option<palisade::inputs::Audit>,
        /// Ports to compare (default: declared container ports and ports the policies name).
        #[arg(long, value_delimiter = ',', value_parser = parse_port)]
        ports: Vec<u16>,
        /// Protocols to compare (default: all).
        #[arg(long, value_delimiter = ',', value_parser = parse_protocol)]
        protocols: Vec<Protocol>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: TextOrJson,
    },
}

#[derive(clap::Args, Debug)]
#[allow(clippy::struct_excessive_bools, reason = "each is a command-line flag")]
struct AgentArgs {
    /// This node's name: pods with this spec.nodeName are enforced. Default: $NODE_NAME.
    #[arg(long, env = "NODE_NAME", conflicts_with = "all_pods")]
    node: Option<String>,
    /// Enforce every pod (one node runs them all, as in the lab).
    #[arg(long)]
    all_pods: bool,
    /// Directory of manifests to load and watch.
    #[arg(long, conflicts_with = "kubernetes")]
    manifests: Option<PathBuf>,
    /// Watch the Kubernetes API (in-cluster config, or KUBECONFIG). The
    /// default inside a pod when no --manifests is given.
    #[arg(long)]
    kubernetes: bool,
    /// Where /healthz, /readyz and /metrics listen. Default: 127.0.0.1:9464
    /// with --kubernetes, nowhere with --manifests.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Write the applied state here after every apply (JSON).
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Seconds between checks of the kernel's table for drift (a check
    /// lists and compares the table only when some commit moved the
    /// ruleset generation; otherwise it costs microseconds).
    #[arg(long, default_value_t = 5)]
    resync_seconds: u64,
    /// Remove Palisade's table: on stop, or right away when no --manifests is given.
    #[arg(long)]
    cleanup: bool,
    /// Traffic from or to a pod not programmed yet (a pod interface, or an
    /// address of --pod-cidr, that no programmed pod has): `deny` drops it
    /// until the pod's policies are in the kernel; `allow` lets it through.
    #[arg(long, value_enum, default_value = "deny")]
    new_pods: NewPodsArg,
    /// Name prefixes of the node's pod interfaces (comma-separated,
    /// repeatable). Default: cali, lxc, eni, azv, gke, veth.
    #[arg(long, value_delimiter = ',')]
    pod_interface_prefix: Vec<String>,
    /// The node's pod address ranges (comma-separated, repeatable), for
    /// CNIs whose pods share a bridge.
    #[arg(long, value_delimiter = ',')]
    pod_cidr: Vec<String>,
    /// Find the connections a change forbids by following conntrack's
    /// events (a revocation then costs what the affected connections cost,
    /// whatever the table's size; the kernel sends one event per
    /// connection opened and ended) instead of dumps filtered by address
    /// (nothing per connection; each dump walks the whole table).
    #[arg(long)]
    conntrack_events: bool,
    /// Flow logs: `stdout` writes one JSON record per denied flow (and per
    /// flow an audit policy would deny, or a `palisade.dev/log: allowed`
    /// policy admits) to standard output, beside the agent's own log on
    /// standard error; `off` logs denials to the kernel log instead.
    #[arg(long, value_enum, default_value = "stdout")]
    flow_logs: FlowLogsArg,
    /// Also append flow records to this file.
    #[arg(long)]
    flow_log_file: Option<std::path::PathBuf>,
    /// The NFLOG group the dataplane logs to (one reader per group and
    /// network namespace).
    #[arg(long, default_value_t = palisade_agent::flows::DEFAULT_GROUP)]
    flow_log_group: u16,
    /// Flow records per second per pod and direction, at most (the kernel
    /// drops the excess records, never the packets' verdicts).
    #[arg(long, default_value_t = 100)]
    flow_log_rate: u32,
}

/// One flow (check, trace).
#[derive(clap::Args, Debug)]
struct FlowArgs {
    /// Source: namespace/pod or an IP address.
    #[arg(long)]
    from: String,
    /// Destination: namespace/pod or an IP address.
    #[arg(long)]
    to: String,
    /// Destination port.
    #[arg(long, value_parser = parse_port)]
    port: u16,
    /// TCP, UDP or SCTP (the lab's trace sends TCP or UDP).
    #[arg(long, default_value = "TCP", value_parser = parse_protocol)]
    protocol: Protocol,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: TextOrJson,
}

impl FlowArgs {
    fn check_args(&self) -> commands::check::CheckArgs<'_> {
        commands::check::CheckArgs { from: &self.from, to: &self.to, port: self.port, protocol: self.protocol }
    }
}

/// `--flow-logs`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FlowLogsArg {
    /// Records on standard output (and in `--flow-log-file`, if given).
    Stdout,
    /// Records only in `--flow-log-file`.
    File,
    /// No flow logs: denials go to the kernel log, rate-limited.
    Off,
}

/// `--new-pods`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum NewPodsArg {
    /// Drop until programmed.
    Deny,
    /// Let through until programmed.
    Allow,
}

fn parse_ip(s: &str) -> Result<std::net::IpAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))
}

/// Address families to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FamilyArg {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
    /// Both.
    Both,
}

#[derive(clap::Args, Debug, Clone)]
struct LabProbeArgs {
    /// Ports (comma-separated); default: every declared TCP/UDP container port.
    #[arg(long, value_delimiter = ',', value_parser = parse_port)]
    ports: Vec<u16>,
    /// Protocols (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "tcp,udp,sctp", value_parser = parse_protocol)]
    protocols: Vec<Protocol>,
    /// Address family: v4, v6 or both (default: every family the lab's pods have).
    #[arg(long, value_enum)]
    family: Option<FamilyArg>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: TextOrJson,
}

impl LabProbeArgs {
    fn probe_args(&self) -> palisade_lab::session::ProbeArgs {
        use palisade_lab::plan::Family;
        let families = match self.family {
            None => Vec::new(),
            Some(FamilyArg::V4) => vec![Family::V4],
            Some(FamilyArg::V6) => vec![Family::V6],
            Some(FamilyArg::Both) => vec![Family::V4, Family::V6],
        };
        palisade_lab::session::ProbeArgs { ports: self.ports.clone(), protocols: self.protocols.clone(), families }
    }
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Build the lab from manifests and start enforcing them.
    Up {
        /// Manifests (files or directories; repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        filenames: Vec<PathBuf>,
        /// Addresses of hosts outside the cluster, behind the node.
        #[arg(long, value_delimiter = ',', value_parser = parse_ip)]
        external: Vec<std::net::IpAddr>,
    },
    /// Make these manifests the lab's desired state; returns once enforced.
    Apply {
        /// Manifests (files or directories; repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        filenames: Vec<PathBuf>,
    },
    /// Connect every pod to every pod with real packets; compare with the engine.
    Probe(LabProbeArgs),
    /// Run a scenario (base/ then steps/), probing after each step, then tear down.
    Run {
        /// Scenario directory.
        scenario: PathBuf,
        /// Addresses of hosts outside the cluster.
        #[arg(long, value_delimiter = ',', value_parser = parse_ip)]
        external: Vec<std::net::IpAddr>,
        #[command(flatten)]
        probe: LabProbeArgs,
    },
    /// Print the lab agent's flow records (denied flows with the policies
    /// that denied them; flows audit policies would deny; flows
    /// `palisade.dev/log: allowed` policies admitted).
    Flows {
        /// Output format (`json`: the agent's JSON lines).
        #[arg(short, long, value_enum, default_value = "text")]
        output: TextOrJson,
    },
    /// Follow one generated packet through the lab node's chains: the
    /// path mapped to policies and rules, beside the engine's verdict.
    /// Exit 0 when they agree, 1 when they do not, 2 when nothing was traced.
    Trace(FlowArgs),
    /// Remove everything the lab created.
    Down,
    /// Benchmark the dataplane with real packets (10,000-pod cluster, with and without the table).
    Bench {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Instead of the report, attribute Palisade's cost per new
        /// connection (anti-spoofing, dispatch, policy evaluation) against
        /// the conntrack-only table.
        #[arg(long)]
        attribution: bool,
        /// Add this many ClusterNetworkPolicies of both tiers (the
        /// synthetic set the update benchmark uses) on top of the cluster.
        #[arg(long, default_value_t = 0)]
        tiers: usize,
    },
    /// (internal) Serve the lab pods' ports until killed.
    #[command(hide = true)]
    Serve,
}

fn run_agent(args: AgentArgs) -> anyhow::Result<u8> {
    use palisade_agent::{AgentOptions, DriverConfig, SourceKind};
    // The agent's log on standard error; standard output carries the flow
    // records, one JSON object per line.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let kubernetes = args.kubernetes || (args.manifests.is_none() && in_pod && !args.cleanup);
    let source = match (args.manifests, kubernetes) {
        (Some(dir), _) => SourceKind::Manifests(dir),
        (None, true) => SourceKind::Kubernetes,
        (None, false) if args.cleanup => {
            palisade_agent::remove_table()?;
            return Ok(0);
        }
        (None, false) => anyhow::bail!("give --manifests DIR or --kubernetes, or --cleanup alone"),
    };
    let scope = match (args.all_pods, args.node) {
        (true, _) => palisade_dataplane::NodeScope::All,
        (false, Some(node)) => palisade_dataplane::NodeScope::Node(node),
        (false, None) => anyhow::bail!("give --node NAME (or set NODE_NAME), or --all-pods"),
    };
    let resync = std::time::Duration::from_secs(args.resync_seconds.max(1));
    let new_pods = match args.new_pods {
        NewPodsArg::Deny => palisade_agent::gate::NewPods::Deny,
        NewPodsArg::Allow => palisade_agent::gate::NewPods::Allow,
    };
    let gate = palisade_agent::gate::pod_gate(new_pods, &args.pod_interface_prefix, &args.pod_cidr)
        .map_err(anyhow::Error::msg)?;
    let flow_log = match args.flow_logs {
        FlowLogsArg::Off => None,
        FlowLogsArg::File if args.flow_log_file.is_none() => anyhow::bail!("--flow-logs file needs --flow-log-file"),
        mode => Some(palisade_agent::flows::FlowLogConfig {
            kernel: palisade_dataplane::FlowLog {
                group: args.flow_log_group,
                per_second: args.flow_log_rate.max(1),
                burst: args.flow_log_rate.max(1),
            },
            stdout: matches!(mode, FlowLogsArg::Stdout),
            file: args.flow_log_file,
        }),
    };
    let driver = DriverConfig {
        scope,
        resync,
        status_file: args.status_file,
        cleanup_on_exit: args.cleanup,
        gate,
        flow_log,
        realization: None,
    };
    let listen = args.listen.or(kubernetes.then(|| ([127, 0, 0, 1], 9464).into()));
    palisade_agent::run(AgentOptions { source, driver, listen, conntrack_events: args.conntrack_events })?;
    Ok(0)
}

fn run_lab(command: LabCommand) -> anyhow::Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("the lab creates network namespaces and needs root");
    }
    let code = match command {
        LabCommand::Up { filenames, external } => {
            println!("{}", palisade_lab::session::up(&filenames, &external)?);
            0
        }
        LabCommand::Apply { filenames } => {
            palisade_lab::session::apply(&filenames)?;
            0
        }
        LabCommand::Probe(p) => palisade_lab::session::probe(&p.probe_args(), p.output == TextOrJson::Json)?,
        LabCommand::Run { scenario, external, probe } => {
            palisade_lab::session::run(&scenario, &external, &probe.probe_args(), probe.output == TextOrJson::Json)?
        }
        LabCommand::Trace(t) => {
            palisade_lab::session::trace(&t.from, &t.to, t.port, t.protocol, t.output == TextOrJson::Json)?
        }
        LabCommand::Flows { output } => palisade_lab::session::flows(output == TextOrJson::Json)?,
        LabCommand::Down => {
            palisade_lab::session::down()?;
            0
        }
        LabCommand::Bench { seconds, attribution, tiers } => {
            palisade_lab::bench::run(seconds.clamp(0.2, 30.0), attribution, tiers.min(10_000))?;
            0
        }
        LabCommand::Serve => {
            palisade_lab::session::serve_forever()?;
            0
        }
    };
    Ok(code)
}

/// The end of an analyzer command: the process exits next, so a
/// cluster's worth of objects is left to the exit rather than freed one by
/// one (a quarter of a second at L).
fn exiting(state: State) {
    std::mem::forget(state);
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let style = Style::detect();
    Ok(match cli.command {
        Command::Check { input, flow } => {
            let state = input.load();
            let args = flow.check_args();
            let code = commands::check::run(&state, &args, flow.output, style);
            exiting(state);
            code
        }
        Command::Explain { input, pod, output } => {
            let state = input.load();
            let code = commands::explain::run(&state, &pod, output, style);
            exiting(state);
            code
        }
        Command::Matrix { input, namespaces, ports, protocols, output, group } => {
            let args = MatrixArgs { namespaces, ports, protocols, format: output, group };
            let state = input.load();
            let code = commands::matrix::run(&state, &args);
            exiting(state);
            code
        }
        Command::Query { input } => {
            if input.filenames.iter().any(|f| f.as_os_str() == "-") {
                anyhow::bail!("query reads queries from stdin; pass manifests as files or directories");
            }
            let state = input.load();
            let mut reader = BufReader::with_capacity(1 << 16, std::io::stdin());
            let mut writer = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let ignored = &state.loaded.ignored_policies;
            let answered =
                palisade::query::run_with(&state.index, ignored, &mut reader, &mut writer).context("query stream")?;
            let code = state.exit(0, answered.incomplete > 0);
            exiting(state);
            code
        }
        Command::Lint { input, output } => {
            let state = input.load();
            let code = commands::lint::run(&state, output, style);
            exiting(state);
            code
        }
        Command::Trace { input, flow, node, timeout } => {
            let state = input.load();
            let args = commands::trace::TraceArgs {
                flow: flow.check_args(),
                node: node.as_deref(),
                timeout: std::time::Duration::from_secs(timeout.clamp(1, 600)),
            };
            let code = commands::trace::run(&state, &args, flow.output);
            exiting(state);
            code
        }
        Command::Report { input, before, output, title, namespaces, max_pods } => {
            let state = input.load();
            let before = (!before.is_empty()).then(|| load_state(&before, &input.options(), input.audit));
            let args = commands::report::ReportArgs { title: &title, namespaces: &namespaces, max_pods };
            let page = commands::report::html(&state, before.as_ref(), &args)?;
            let code = if state.had_errors() || before.as_ref().is_some_and(State::had_errors) {
                commands::EXIT_ERROR
            } else {
                0
            };
            if output.as_os_str() == "-" {
                print!("{page}");
            } else {
                std::fs::write(&output, page).with_context(|| format!("writing {}", output.display()))?;
                eprintln!("wrote {}", output.display());
            }
            exiting(state);
            code
        }
        Command::Status { context, namespace, output } => commands::status::run(context.as_deref(), &namespace, output),
        Command::Agent(args) => run_agent(args)?,
        Command::Lab(command) => run_lab(command)?,
        Command::Diff { before, after, default_namespace, strict, audit, audit_before, ports, protocols, output } => {
            let options = LoadOptions { default_namespace, strict, build: palisade_manifests::Build::default() };
            let before = load_state(&before, &options, audit_before.unwrap_or(audit));
            let after = load_state(&after, &options, audit);
            let code = commands::diff::run(&before, &after, &ports, &protocols, output, style);
            exiting(before);
            exiting(after);
            code
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}
