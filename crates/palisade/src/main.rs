//! `palisade`: Kubernetes NetworkPolicy analysis (and, later, enforcement).

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use palisade::commands::matrix::{Grouping, MatrixArgs, MatrixFormat};
use palisade::commands::{self, TextOrJson};
use palisade::inputs::{InputArgs, load_state};
use palisade::style::Style;
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
        /// Source: namespace/pod or an IP address.
        #[arg(long)]
        from: String,
        /// Destination: namespace/pod or an IP address.
        #[arg(long)]
        to: String,
        /// Destination port.
        #[arg(long, value_parser = parse_port)]
        port: u16,
        /// TCP, UDP or SCTP.
        #[arg(long, default_value = "TCP", value_parser = parse_protocol)]
        protocol: Protocol,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: TextOrJson,
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
        /// Ports (comma-separated); default: every declared container port.
        #[arg(long, value_delimiter = ',', value_parser = parse_port)]
        ports: Vec<u16>,
        /// Protocols (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "tcp", value_parser = parse_protocol)]
        protocols: Vec<Protocol>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: MatrixFormat,
        /// Group pods that behave identically.
        #[arg(long, value_enum, default_value = "auto")]
        group: Grouping,
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

fn run(cli: Cli) -> anyhow::Result<u8> {
    let style = Style::detect();
    Ok(match cli.command {
        Command::Check { input, from, to, port, protocol, output } => {
            let state = input.load();
            let args = commands::check::CheckArgs { from: &from, to: &to, port, protocol };
            commands::check::run(&state, &args, output, style)
        }
        Command::Explain { input, pod, output } => commands::explain::run(&input.load(), &pod, output, style),
        Command::Matrix { input, namespaces, ports, protocols, output, group } => {
            let args = MatrixArgs { namespaces, ports, protocols, format: output, group };
            commands::matrix::run(&input.load(), &args)
        }
        Command::Query { input } => {
            if input.filenames.iter().any(|f| f.as_os_str() == "-") {
                anyhow::bail!("query reads queries from stdin; pass manifests as files or directories");
            }
            let state = input.load();
            let mut reader = BufReader::with_capacity(1 << 16, std::io::stdin());
            let mut writer = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            palisade::query::run(&state.index, &mut reader, &mut writer).context("query stream")?;
            if state.had_errors() { commands::EXIT_ERROR } else { 0 }
        }
        Command::Lint { input, output } => commands::lint::run(&input.load(), output, style),
        Command::Diff { before, after, default_namespace, ports, protocols, output } => {
            let before = load_state(&before, &default_namespace);
            let after = load_state(&after, &default_namespace);
            commands::diff::run(&before, &after, &ports, &protocols, output, style)
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
