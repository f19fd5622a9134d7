//! `panopticon`: one binary, one subcommand per component. `ingest` runs the Kafka →
//! Elasticsearch pipeline; `rollup` turns closed windows of spans into metrics; `check` runs the
//! ingest validation over events in a file so producers can test their payloads offline.
//! `query` serves the dashboards' HTTP API; `alert` pushes error logs live over Socket.IO and
//! WebSocket. `sample` produces realistic traffic to Kafka for demos and benchmarks.
//!
//! Pipeline configuration comes from environment variables (declared in
//! `panopticon_model::config::vars`, listed by each subcommand's `--help` and in
//! docs/configuration.md); runtime knobs (log format, admin address) are flags.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
mod sample;

use panopticon_model::{DecodeContext, Limits, decode_log, decode_span, ids, split_payload};

/// mimalloc instead of the system allocator: ingest allocates per event (JSON trees, documents),
/// and glibc's per-thread arenas fragment under that load (measured by the ingest benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "panopticon", version, about = "Panopticon APM backend")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume logs and spans from Kafka and index them into Elasticsearch/OpenSearch.
    Ingest {
        #[command(flatten)]
        runtime: Runtime,
    },
    /// Roll closed windows of spans up into per-service and per-endpoint metrics.
    Rollup {
        #[command(flatten)]
        runtime: Runtime,
    },
    /// Serve the dashboards' query API (`/query/...`, OpenAPI at `/api-docs`).
    Query {
        #[command(flatten)]
        runtime: Runtime,
        /// Listen address of the API; default `0.0.0.0:$PORT` (3001).
        #[arg(long, env = "PANOPTICON_QUERY_ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Push error logs live to dashboards over Socket.IO (`/ws/error-logs`) and WebSocket.
    Alert {
        #[command(flatten)]
        runtime: Runtime,
        /// Listen address of Socket.IO, the WebSocket and the probes; default
        /// `0.0.0.0:$ERROR_STREAM_PORT` (3010).
        #[arg(long, env = "PANOPTICON_ALERT_ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Produce realistic traffic (spans and linked logs of several services) to the topics
    /// ingest consumes, at a chosen rate, for a count, a duration or until SIGTERM/Ctrl-C.
    Sample {
        #[command(flatten)]
        sample: sample::SampleArgs,
        /// Log line format.
        #[arg(
            long,
            env = "PANOPTICON_LOG_FORMAT",
            value_enum,
            default_value = "plain"
        )]
        log_format: LogFormatArg,
    },
    /// Validate events (one Kafka record value per line: an object or an array of objects) and
    /// print the documents Panopticon would store, or why each event would be dead-lettered.
    Check {
        /// Which topic's schema to apply.
        #[arg(long, value_enum)]
        kind: EventKind,
        /// File to read; standard input when absent.
        file: Option<PathBuf>,
    },
}

/// Flags every long-running component takes.
#[derive(Debug, clap::Args)]
struct Runtime {
    /// Address of the admin server (/health, /ready, /metrics).
    #[arg(long, env = "PANOPTICON_ADMIN_ADDR", default_value = "0.0.0.0:9464")]
    admin_addr: std::net::SocketAddr,
    /// Log line format.
    #[arg(
        long,
        env = "PANOPTICON_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: LogFormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Plain,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EventKind {
    Log,
    Span,
}

/// The command line, each subcommand's `--help` ending with the environment variables it reads
/// (generated from their declarations).
fn command_line() -> clap::Command {
    panopticon_model::config::vars::ALL
        .iter()
        .fold(Args::command(), |cli, reads| {
            cli.mut_subcommand(reads.command, |sub| sub.after_help(reads.help()))
        })
}

fn main() -> ExitCode {
    let matches = command_line().get_matches();
    let Args { command } = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let result = match command {
        Command::Check { kind, file } => check(kind, file),
        Command::Sample { sample, log_format } => {
            run_with_signals(log_format, |shutdown| async move {
                let target =
                    sample::Target::from_env(&panopticon_model::config::EnvSource::process())?;
                sample::run(
                    sample,
                    target,
                    &panopticon_kafka::KafkaSecrets::from_process_env(),
                    shutdown,
                )
                .await
            })
        }
        Command::Ingest { runtime } => serve(runtime, |shutdown, admin_addr| async move {
            let config = panopticon_model::config::IngestConfig::from_env(
                &panopticon_model::config::EnvSource::process(),
            )?;
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting ingest");
            panopticon_ingest::run(
                config,
                panopticon_ingest::RunOptions { admin_addr },
                shutdown,
            )
            .await
        }),
        Command::Rollup { runtime } => serve(runtime, |shutdown, admin_addr| async move {
            let config = panopticon_model::config::RollupConfig::from_env(
                &panopticon_model::config::EnvSource::process(),
            )?;
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting rollup");
            panopticon_rollup::run(
                config,
                panopticon_rollup::RunOptions { admin_addr },
                shutdown,
            )
            .await
        }),
        Command::Query { runtime, listen } => serve(runtime, |shutdown, admin_addr| async move {
            let config = panopticon_model::config::QueryConfig::from_env(
                &panopticon_model::config::EnvSource::process(),
            )?;
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting query");
            panopticon_query::run(
                config,
                panopticon_query::RunOptions {
                    listen,
                    admin_addr: Some(admin_addr),
                },
                shutdown,
            )
            .await
        }),
        Command::Alert { runtime, listen } => serve(runtime, |shutdown, admin_addr| async move {
            let config = panopticon_model::config::AlertConfig::from_env(
                &panopticon_model::config::EnvSource::process(),
            )?;
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting alert");
            panopticon_alert::run(
                config,
                panopticon_alert::RunOptions {
                    listen,
                    admin_addr: Some(admin_addr),
                },
                shutdown,
            )
            .await
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            // The process is about to exit; stderr is the only place left to say why.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(2)
        }
    }
}

/// Sets up logging and a runtime, and runs a component until SIGTERM/SIGINT.
fn serve<F, Fut>(runtime: Runtime, component: F) -> anyhow::Result<bool>
where
    F: FnOnce(tokio_util::sync::CancellationToken, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let Runtime {
        admin_addr,
        log_format,
    } = runtime;
    run_with_signals(log_format, |shutdown| {
        warn_about_retired_variables();
        component(shutdown, admin_addr)
    })
}

/// A WARN for each set variable that no component reads any more, naming what replaces it.
fn warn_about_retired_variables() {
    let env = panopticon_model::config::EnvSource::process();
    for retired in panopticon_model::config::retired::set_in(&env) {
        tracing::warn!(
            variable = retired.name,
            instead = retired.instead,
            "this variable is set but no longer read; remove it"
        );
    }
}

/// Sets up logging and a runtime, and runs `task` with a token cancelled on SIGTERM/SIGINT.
fn run_with_signals<F, Fut>(log_format: LogFormatArg, task: F) -> anyhow::Result<bool>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    panopticon_common::telemetry::init(match log_format {
        LogFormatArg::Plain => panopticon_common::telemetry::LogFormat::Plain,
        LogFormatArg::Json => panopticon_common::telemetry::LogFormat::Json,
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = panopticon_common::shutdown::on_signal();
        task(shutdown).await
    })
    .inspect_err(|error| tracing::error!(error = format!("{error:#}"), "stopped on an error"))?;
    Ok(true)
}

/// Returns whether every event was valid.
fn check(kind: EventKind, file: Option<PathBuf>) -> anyhow::Result<bool> {
    let input: Box<dyn BufRead> = match &file {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let limits = Limits::default();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut all_valid = true;
    for (line_no, line) in input.lines().enumerate() {
        let line = line.context("cannot read input")?;
        if line.trim().is_empty() {
            continue;
        }
        let ctx = DecodeContext {
            limits: &limits,
            now: chrono::Utc::now(),
        };
        let events = match split_payload(line.as_bytes()) {
            Ok(events) => events,
            Err(e) => {
                all_valid = false;
                writeln!(err, "line {}: {e}", line_no + 1)?;
                continue;
            }
        };
        for (index, event) in events.iter().enumerate() {
            let decoded = match kind {
                EventKind::Log => decode_log(event, &ctx).map(|d| serde_json::to_string(&d)),
                EventKind::Span => decode_span(event, &ctx).map(|d| {
                    let id = ids::span_id(&d.trace_id, &d.span_id);
                    serde_json::to_string(&serde_json::json!({"_id": id, "_source": d}))
                }),
            };
            match decoded {
                Ok(doc) => writeln!(out, "{}", doc?)?,
                Err(e) => {
                    all_valid = false;
                    writeln!(err, "line {} event {index}: {e}", line_no + 1)?;
                }
            }
        }
    }
    Ok(all_valid)
}
