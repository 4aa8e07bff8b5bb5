//! `fti-serve`: the command line. Each subcommand parses its arguments and calls the
//! library; nothing here knows how a prediction is made.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use fti_serve::cli::materialize::{self, MaterializeArgs};
use fti_serve::cli::transform::{self, TransformArgs};
use fti_serve::config::{Config, LogFormat, StoreKind};
use fti_serve::registry::lifecycle::Move;

/// mimalloc instead of glibc malloc: at saturation glibc's malloc/free and its arena locks
/// were a large share of the server's CPU (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Low-latency online inference: versioned ONNX models, Redis features, on-demand features.
#[derive(Parser)]
#[command(name = "fti-serve", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve predictions over HTTP until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Load a feature file (CSV or Parquet) into the Redis online store.
    Materialize(MaterializeCmd),
    /// Compute a feature view's on-demand features (or its model input vectors) for a
    /// CSV or JSONL file, with the server's own code.
    Transform(TransformCmd),
    /// Operator commands on the model registry: list, show, promote, rollback, history.
    Models(ModelsCmd),
    /// The prediction log: export it to Parquet for training.
    #[command(subcommand)]
    Log(LogCmd),
    /// Exit 0 when GET on an http:// URL answers 200 (a container health check with no
    /// curl in the image).
    Probe {
        #[arg(default_value = "http://127.0.0.1:8080/health/live")]
        url: String,
    },
}

#[derive(Subcommand)]
enum LogCmd {
    /// Write the prediction log (files or a Redis Stream) to Parquet, one column per
    /// feature, for a point-in-time join with labels.
    Export(LogExportArgs),
}

#[derive(Args)]
struct LogExportArgs {
    /// Read the log files in this directory (`prediction_log.files.dir`).
    #[arg(long, conflicts_with = "stream", required_unless_present = "stream")]
    files: Option<PathBuf>,
    /// Read a Redis Stream at this URL (`redis://host:port[/db]`).
    #[arg(long, env = "FTI_LOG_STREAM_URL", hide_env_values = true)]
    stream: Option<String>,
    /// The stream's key; `{model}` is replaced by --model.
    #[arg(long, default_value = "fti:predictions:{model}")]
    key: String,
    /// A file holding the stream's Redis password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,
    /// Only this model's records.
    #[arg(long)]
    model: Option<String>,
    /// Only this version's records.
    #[arg(long)]
    version: Option<u64>,
    /// From this time on (RFC 3339, or seconds since the epoch), inclusive.
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339, or seconds since the epoch).
    #[arg(long)]
    until: Option<String>,
}

#[derive(Args)]
struct ConfigArgs {
    /// Config file (TOML); `FTI__SECTION__KEY` environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Use this Redis as the online store (overrides `store.kind` and `store.redis.url`).
    #[arg(long, env = "FTI_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Listen here instead of `server.http_addr`.
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Serve gRPC here instead of `server.grpc_addr`.
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
}

#[derive(Args)]
struct MaterializeCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Feature group the file holds (its key columns come from the registry's views).
    #[arg(long)]
    group: String,
    /// Feature file: .csv (with header) or .parquet.
    #[arg(long)]
    file: PathBuf,
    /// Redis URL (default: `store.redis.url` from the config).
    #[arg(long, env = "FTI_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Key prefix (default: `store.prefix` from the config).
    #[arg(long)]
    prefix: Option<String>,
    /// Entity key columns, comma-separated (default: the group's keys in the registry).
    #[arg(long, value_delimiter = ',')]
    keys: Option<Vec<String>>,
    /// Rows per pipelined, atomic write.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Feast groups: the column holding each row's event time.
    #[arg(long, default_value = fti_serve::features::feast_write::TIMESTAMP_COLUMN)]
    timestamp_column: String,
    /// Skip bad rows and report them, instead of stopping at the first.
    #[arg(long)]
    keep_going: bool,
}

#[derive(Args)]
struct ModelsCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Registry directory (default: `registry.path` from the config, else ./models).
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    action: ModelsAction,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Every model version with its aliases.
    List,
    /// One model: aliases, versions, manifests; with --server, a running replica's live
    /// rollout figures too.
    Show {
        model: String,
        /// A replica's HTTP address (e.g. http://127.0.0.1:8080) to read live figures from.
        #[arg(long)]
        server: Option<String>,
    },
    /// Point an alias at a version, after loading and validating it. Every replica
    /// watching the registry follows within about a second.
    Promote {
        model: String,
        version: u64,
        #[arg(long, default_value = "production")]
        alias: String,
        /// Recorded in the history.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Return an alias to the version it had before its latest promotion.
    Rollback {
        model: String,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Every alias move of a model.
    History { model: String },
    /// A canary on an alias: a second version taking a share of its traffic.
    Canary {
        #[command(subcommand)]
        step: CanaryCmd,
    },
    /// A shadow on an alias: a sample of its requests also runs on another version, off
    /// the response path, and is compared.
    Shadow {
        #[command(subcommand)]
        step: ShadowCmd,
    },
    /// A guard on an alias: rules that end its canary and shadow by themselves.
    Guard {
        #[command(subcommand)]
        step: GuardCmd,
    },
}

#[derive(Subcommand)]
enum ShadowCmd {
    /// Mirror SAMPLE (0 < SAMPLE <= 1) of the alias's requests to VERSION, after loading
    /// and validating it.
    Start {
        model: String,
        version: u64,
        #[arg(long, default_value_t = 1.0)]
        sample: f64,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// End the shadow.
    Stop {
        model: String,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum GuardCmd {
    /// Set the alias's guard (replacing any): each rule given trips on its own.
    Set {
        model: String,
        /// The sliding window, in seconds.
        #[arg(long, default_value_t = 60)]
        window_s: u64,
        /// Requests each compared side needs in the window before a rate or p99 rule applies.
        #[arg(long, default_value_t = 100)]
        min_requests: u64,
        /// Canary error rate above stable's by more than this (0.01 = 1 point).
        #[arg(long)]
        max_error_rate_increase: Option<f64>,
        /// Canary p99 above stable's by more than this percent.
        #[arg(long)]
        max_p99_increase_pct: Option<f64>,
        /// Shadow label disagreement above this share.
        #[arg(long)]
        max_disagreement: Option<f64>,
        /// Do not trip on non-finite outputs (on by default).
        #[arg(long)]
        allow_non_finite: bool,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove the alias's guard.
    Clear {
        model: String,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum CanaryCmd {
    /// Send WEIGHT (0 < WEIGHT < 1) of the alias's requests to VERSION, after loading and
    /// validating it.
    Start {
        model: String,
        version: u64,
        #[arg(long)]
        weight: f64,
        /// One entity, one version: assign by a hash of the request's entity key.
        #[arg(long)]
        sticky: bool,
        /// With --sticky: the entity key hashed (default: the request's first).
        #[arg(long, requires = "sticky")]
        sticky_key: Option<String>,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Change the canary's share.
    Weight {
        model: String,
        weight: f64,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Move the alias to the canary (all traffic) and end the canary.
    Promote {
        model: String,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// End the canary; the alias keeps its version.
    Abort {
        model: String,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Args)]
struct TransformCmd {
    /// A feature view TOML, or a version's manifest.toml.
    #[arg(long)]
    feature_view: PathBuf,
    /// Rows to transform: .csv (with header) or .jsonl.
    #[arg(long)]
    input: PathBuf,
    /// Where to write: .csv or .jsonl, or `-` for CSV on standard output.
    #[arg(long, default_value = "-")]
    output: PathBuf,
    /// Write the kept columns, then exactly the model input vector in order.
    #[arg(long)]
    model_input: bool,
    /// Columns to pass through first with --model-input (comma-separated).
    #[arg(long, value_delimiter = ',')]
    keep: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn log_export(args: LogExportArgs) -> anyhow::Result<()> {
    use fti_serve::cli::log::{ExportArgs, Source, export};
    let source = match (args.files, args.stream) {
        (Some(dir), _) => Source::Files(dir),
        (None, Some(url)) => {
            let password = match &args.password_file {
                Some(file) => Some(fti_serve::secret::Secret::read_file(file).map_err(anyhow::Error::msg)?),
                None => None,
            };
            Source::Stream { url, password, key: args.key }
        }
        (None, None) => bail!("pass --files DIR or --stream URL"),
    };
    let run_args = ExportArgs {
        source,
        out: args.out,
        model: args.model,
        version: args.version,
        since: args.since,
        until: args.until,
    };
    let rows = runtime()?.block_on(export(&run_args)).map_err(anyhow::Error::msg).context("log export")?;
    eprintln!("exported {rows} records to {}", run_args.out.display());
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let mut config = Config::load(args.config.config.as_deref())?;
            if let Some(url) = args.redis_url {
                config.store.kind = StoreKind::Redis;
                config.store.redis.url = url;
            }
            if let Some(addr) = args.http_addr {
                config.server.http_addr = addr;
            }
            if let Some(addr) = args.grpc_addr {
                config.server.grpc_addr = addr;
            }
            config.validate()?;
            init_logging(&config);
            runtime()?.block_on(fti_serve::app::run(config))?;
            Ok(())
        }
        Command::Materialize(args) => {
            let config = Config::load(args.config.config.as_deref())?;
            init_logging(&config);
            let schema = materialize::registry_schema(&config, &args.group).map_err(anyhow::Error::msg)?;
            let schema = match (args.keys.clone(), schema) {
                (Some(keys), known) => fti_serve::features::files::GroupSchema {
                    keys,
                    dtypes: known.as_ref().map(|s| s.dtypes.clone()).unwrap_or_default(),
                    feast: known.and_then(|s| s.feast),
                },
                (None, Some(known)) => known,
                (None, None) => bail!(
                    "no feature view in registry {} reads group `{}`: pass --keys to name its key columns",
                    config.registry.path.display(),
                    args.group
                ),
            };
            if args.batch_size == 0 {
                bail!("--batch-size must be at least 1");
            }
            let run_args = MaterializeArgs {
                group: args.group,
                file: args.file,
                redis_url: args.redis_url.unwrap_or(config.store.redis.url),
                prefix: args.prefix.unwrap_or(config.store.prefix),
                keys: args.keys,
                batch_size: args.batch_size,
                timestamp_column: args.timestamp_column,
                keep_going: args.keep_going,
                progress: std::io::stderr().is_terminal(),
            };
            let report = runtime()?.block_on(materialize::run(&run_args, schema))?;
            println!(
                "wrote {} rows of group `{}` from {}{}",
                report.written,
                run_args.group,
                run_args.file.display(),
                if report.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {} bad rows", report.skipped.len())
                }
            );
            Ok(())
        }
        Command::Transform(args) => {
            let run_args = TransformArgs {
                feature_view: args.feature_view,
                input: args.input,
                output: args.output,
                model_input: args.model_input,
                keep: args.keep,
            };
            let rows = transform::run(&run_args).context("transform")?;
            if run_args.output.as_os_str() != "-" {
                eprintln!("transformed {rows} rows into {}", run_args.output.display());
            }
            Ok(())
        }
        Command::Models(args) => models(args),
        Command::Log(LogCmd::Export(args)) => log_export(args),
        Command::Probe { url } => probe(&url),
    }
}

fn models(args: ModelsCmd) -> anyhow::Result<()> {
    use fti_serve::cli::models;
    use fti_serve::registry::RegistryDir;
    use fti_serve::registry::mlflow::Mlflow;
    use fti_serve::registry::rollout::{Assignment, GuardSpec};
    use fti_serve::registry::rollout_steps::RolloutStep;

    let config = match (&args.config.config, &args.registry) {
        (Some(file), _) => Config::load(Some(file))?,
        (None, _) => Config::default(),
    };
    let options = fti_serve::app::load_options(&config);
    let dir = RegistryDir::new(args.registry.unwrap_or(config.registry.path.clone()));
    // With an MLflow source the directory is its cache: bring it up to date first, and
    // make moves in MLflow too.
    let runtime = runtime()?;
    let source = match &config.registry.mlflow {
        Some(mlflow) => {
            let _entered = runtime.enter();
            let metrics = fti_serve::metrics::Metrics::new();
            let models = config.registry.models.clone();
            let source = Mlflow::new(mlflow, models, dir.clone(), runtime.handle().clone(), metrics)
                .map_err(anyhow::Error::msg)?;
            runtime.block_on(source.sync());
            if let Some(error) = source.status().error {
                eprintln!("warning: MLflow: {error}; showing the local cache");
            }
            Some(source)
        }
        None => None,
    };
    let source = source.as_ref();
    let stepped = |o: fti_serve::registry::rollout_steps::RolloutOutcome| {
        let mut line = format!("{}: alias {} serves version {}", o.model, o.alias, o.stable);
        if let Some(r) = &o.rollout {
            line.push_str(&format!(", canary version {} at {}%", r.canary, r.weight * 100.0));
        }
        if let Some(s) = &o.shadow {
            line.push_str(&format!(", shadow version {} on {}%", s.version, s.sample * 100.0));
        }
        if o.rollout.is_none() && o.shadow.is_none() {
            line.push_str(", nothing in rollout");
        }
        if o.guard.is_some() {
            line.push_str(", guarded");
        }
        println!("{line} ({})", o.action.label());
    };
    let moved = |o: fti_serve::registry::lifecycle::MoveOutcome| {
        let from = o.from.map_or_else(|| "nothing".to_string(), |v| format!("version {v}"));
        println!("{}: alias {} moved from {from} to version {} ({:?})", o.model, o.alias, o.to, o.action);
    };
    match args.action {
        ModelsAction::List => print!("{}", models::list(&dir)?),
        ModelsAction::Show { model, server } => {
            print!("{}", models::show(&dir, &model)?);
            if let Some(server) = server {
                let url = format!("{}/v1/models/{model}", server.trim_end_matches('/'));
                let info: serde_json::Value = runtime
                    .block_on(async {
                        let _ = rustls::crypto::ring::default_provider().install_default();
                        let response = reqwest::get(&url).await?.error_for_status()?;
                        response.json().await
                    })
                    .with_context(|| format!("reading live figures from {url}"))?;
                print!("{}", models::live_figures(&info));
            }
        }
        ModelsAction::History { model } => print!("{}", models::history(&dir, &model)?),
        ModelsAction::Promote { model, version, alias, reason } => {
            let action = Move::Promote(version);
            moved(models::move_alias(&dir, &model, action, &alias, &reason, &options, source)?);
        }
        ModelsAction::Rollback { model, alias, reason } => {
            moved(models::move_alias(&dir, &model, Move::Rollback, &alias, &reason, &options, source)?);
        }
        ModelsAction::Canary { step } => {
            let (model, step, alias, reason) = match step {
                CanaryCmd::Start { model, version, weight, sticky, sticky_key, alias, reason } => {
                    let assignment = if sticky { Assignment::Sticky } else { Assignment::Random };
                    (model, RolloutStep::Canary { version, weight, assignment, sticky_key }, alias, reason)
                }
                CanaryCmd::Weight { model, weight, alias, reason } => {
                    (model, RolloutStep::Weight(weight), alias, reason)
                }
                CanaryCmd::Promote { model, alias, reason } => (model, RolloutStep::Promote, alias, reason),
                CanaryCmd::Abort { model, alias, reason } => (model, RolloutStep::Abort, alias, reason),
            };
            stepped(models::rollout_step(&dir, &model, step, &alias, &reason, &options, source)?);
        }
        ModelsAction::Shadow { step } => {
            let (model, step, alias, reason) = match step {
                ShadowCmd::Start { model, version, sample, alias, reason } => {
                    (model, RolloutStep::Shadow { version, sample }, alias, reason)
                }
                ShadowCmd::Stop { model, alias, reason } => (model, RolloutStep::StopShadow, alias, reason),
            };
            stepped(models::rollout_step(&dir, &model, step, &alias, &reason, &options, source)?);
        }
        ModelsAction::Guard { step } => {
            let (model, spec, alias, reason) = match step {
                GuardCmd::Set {
                    model,
                    window_s,
                    min_requests,
                    max_error_rate_increase,
                    max_p99_increase_pct,
                    max_disagreement,
                    allow_non_finite,
                    alias,
                    reason,
                } => {
                    let spec = GuardSpec {
                        window_s,
                        min_requests,
                        max_error_rate_increase,
                        max_p99_increase_pct,
                        max_disagreement,
                        non_finite: !allow_non_finite,
                    };
                    (model, Some(spec), alias, reason)
                }
                GuardCmd::Clear { model, alias, reason } => (model, None, alias, reason),
            };
            stepped(models::rollout_step(
                &dir,
                &model,
                RolloutStep::Guard(spec),
                &alias,
                &reason,
                &options,
                source,
            )?);
        }
    }
    Ok(())
}

/// A bare HTTP/1.1 GET: the runtime image has no curl, and the health check needs no TLS.
fn probe(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;

    let Some(rest) = url.strip_prefix("http://") else { bail!("only http:// URLs are supported: {url}") };
    let (authority, path) =
        rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let timeout = Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => bail!("{url} answered {code}"),
        None => bail!("{url} sent no HTTP status line"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
