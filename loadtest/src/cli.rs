//! Flags, and the validated plan they become (every mistake is one message naming the flag).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::corpus::Keys;
use crate::sla::Sla;

/// The longest run (or step series) the tool agrees to start.
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);

/// Load generator for fti-serve that checks a latency SLA.
///
/// Examples:
///
///   fti-loadtest --url http://127.0.0.1:8080 --corpus models/fraud/2/golden.jsonl
///       --entities examples/fraud/data/features/card_profile.csv --keys zipf:1.1
///       --rate 2000 --duration 30s --sla 'p99<=2ms' --sla 'errors<=0.1%'
///       --summary run.json --plot run.svg
///
///   fti-loadtest --url http://127.0.0.1:8081 --target grpc --corpus ... --concurrency 32
///
///   fti-loadtest --url http://127.0.0.1:8080 --corpus ... --step 500:500:10000 --sla 'p99<=1ms'
#[derive(Debug, Parser)]
#[command(name = "fti-loadtest", verbatim_doc_comment)]
pub struct Args {
    /// Server base URL: the HTTP port for `http`/`oip`, the gRPC port for `grpc`/`oip-grpc`.
    #[arg(long)]
    pub url: String,
    /// The API under load.
    #[arg(long, value_enum, default_value_t = TargetKind::Http)]
    pub target: TargetKind,
    /// Model name.
    #[arg(long, default_value = "fraud")]
    pub model: String,
    /// Pin a model version; without it the `production` alias answers (promotions show).
    #[arg(long)]
    pub version: Option<u64>,
    /// `post` target: the path each corpus line is POSTed to as it is; `get` target: the
    /// path to GET.
    #[arg(long)]
    pub path: Option<String>,
    /// JSONL request corpus. Each line is a predict body (`{"entities": .., "features": ..}`),
    /// an OIP infer body (`{"inputs": [..]}`), or a golden record holding `request` and/or
    /// `input` (the model's input vector), as in `models/<m>/<v>/golden.jsonl`. Not used by
    /// the `get` target.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Entity IDs to draw from (`--keys uniform|zipf`): a text file with one ID per line, or a
    /// CSV file whose column named like the entity key holds them. Default: the IDs in the corpus.
    #[arg(long)]
    pub entities: Option<PathBuf>,
    /// Entity key to vary when rows have several (default: the rows' only key).
    #[arg(long)]
    pub entity_key: Option<String>,
    /// How entity IDs are chosen: `corpus` (as written), `uniform`, or `zipf[:S]` (skew S,
    /// default 1.0; the first ID of the list is the most frequent).
    #[arg(long, default_value = "corpus")]
    pub keys: String,
    /// Input tensor name for OIP bodies built from golden `input` vectors.
    #[arg(long, default_value = "input")]
    pub input_name: String,

    /// Open loop: offer this many requests per second, on schedule, whatever the server does.
    #[arg(long, group = "mode")]
    pub rate: Option<f64>,
    /// Closed loop: this many clients, each sending its next request when the last answers.
    #[arg(long, group = "mode")]
    pub concurrency: Option<usize>,
    /// Step mode, FROM:BY:TO requests per second: open-loop steps of rising rate until the SLA
    /// breaks; reports the highest rate that held. Needs at least one --sla.
    #[arg(long, group = "mode")]
    pub step: Option<String>,
    /// How long to measure (open and closed loop), e.g. 30s, 2m.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Length of each step in step mode.
    #[arg(long, default_value = "5s")]
    pub step_duration: String,
    /// Load offered before measuring starts (not counted).
    #[arg(long, default_value = "1s")]
    pub warmup: String,
    /// Per-request deadline; a request past it counts as a `timeout` error.
    #[arg(long, default_value = "1s")]
    pub timeout: String,
    /// Connections to open (lazily). Default: 64 for HTTP targets, 2 for gRPC targets
    /// (HTTP/2 multiplexes many requests over one connection).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Threads of the client's async runtime (the open-loop pacer has one more of its own).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Open loop: requests outstanding beyond this are not sent and count as
    /// `client_overload` errors, so an overloaded server cannot exhaust the client's memory.
    #[arg(long, default_value_t = 20_000)]
    pub max_in_flight: usize,

    /// An SLA to check, e.g. `p99<=2ms`, `p99.9<5ms`, `max<=50ms`, `errors<=0.1%`,
    /// `errors<=3`, `throughput>=1000`. Repeat for several. Exit status 2 when one breaks.
    #[arg(long)]
    pub sla: Vec<String>,
    /// Write the JSON summary here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Write an SVG plot of latency percentiles and throughput over time here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Width of one point of the timeline (progress, plot, summary).
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Seed for entity draws (runs are reproducible).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests pre-encoded before the run and cycled through.
    #[arg(long, default_value_t = 65_536)]
    pub ring: usize,
    /// No progress line on the terminal.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// POST /v1/models/{model}/predict (entity lookup + on-demand features).
    Http,
    /// fti.v1.PredictionService/Predict over gRPC.
    Grpc,
    /// Open Inference Protocol v2 REST: POST /v2/models/{model}/infer (input tensor).
    Oip,
    /// Open Inference Protocol v2 gRPC: inference.GRPCInferenceService/ModelInfer.
    OipGrpc,
    /// Any HTTP server: each corpus line POSTed as it is to `--path` (a 2xx answer is a
    /// success), e.g. another feature server for a comparison.
    Post,
    /// Any HTTP server: GET `--path` with no body (a 2xx answer is a success), e.g. a
    /// trivial endpoint, to measure the HTTP round trip alone at the same rate.
    Get,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
            Self::Oip => "oip",
            Self::OipGrpc => "oip-grpc",
            Self::Post => "post",
            Self::Get => "get",
        })
    }
}

impl TargetKind {
    pub fn is_grpc(self) -> bool {
        matches!(self, Self::Grpc | Self::OipGrpc)
    }

    /// Whether the target takes predict bodies (entities + features) or input tensors.
    pub fn takes_tensors(self) -> bool {
        matches!(self, Self::Oip | Self::OipGrpc)
    }
}

#[derive(Debug, Clone)]
pub enum Mode {
    Open { rate: f64, duration: Duration },
    Closed { concurrency: usize, duration: Duration },
    Step { rates: Vec<f64>, each: Duration },
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open { rate, .. } => write!(f, "open loop at {rate:.0} req/s"),
            Self::Closed { concurrency, .. } => write!(f, "closed loop, {concurrency} clients"),
            Self::Step { rates, .. } => {
                write!(f, "steps from {:.0} req/s", rates.first().copied().unwrap_or(0.0))
            }
        }
    }
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Closed { .. } => "closed",
            Self::Step { .. } => "step",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub target: TargetKind,
    pub model: String,
    pub version: Option<u64>,
    /// `post` and `get` targets: the path to POST to or GET.
    pub path: Option<String>,
    pub corpus: PathBuf,
    pub entities: Option<PathBuf>,
    pub entity_key: Option<String>,
    pub keys: Keys,
    pub input_name: String,
    pub mode: Mode,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connections: usize,
    pub threads: usize,
    pub max_in_flight: usize,
    pub slas: Vec<Sla>,
    pub summary: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub interval: Duration,
    pub seed: u64,
    pub ring: usize,
    pub quiet: bool,
}

impl Plan {
    pub fn from_args(args: Args) -> Result<Self> {
        let duration = parse_duration(&args.duration).context("--duration")?;
        let mode = match (args.rate, args.concurrency, &args.step) {
            (Some(rate), None, None) => {
                if !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
                    bail!("--rate: expected requests per second in (0, 1000000], got {rate}");
                }
                Mode::Open { rate, duration }
            }
            (None, Some(concurrency), None) => {
                if concurrency == 0 || concurrency > 10_000 {
                    bail!("--concurrency: expected 1..=10000, got {concurrency}");
                }
                Mode::Closed { concurrency, duration }
            }
            (None, None, Some(step)) => {
                let rates = parse_steps(step).context("--step")?;
                let each = parse_duration(&args.step_duration).context("--step-duration")?;
                if args.sla.is_empty() {
                    bail!("--step: step mode raises the rate until an SLA breaks; give at least one --sla");
                }
                Mode::Step { rates, each }
            }
            _ => bail!(
                "choose one mode: --rate (open loop), --concurrency (closed loop) or --step (rising rate)"
            ),
        };
        let plain = matches!(args.target, TargetKind::Post | TargetKind::Get);
        match (&args.path, args.target) {
            (None, TargetKind::Post) => bail!("--target post: give the --path to POST to"),
            (None, TargetKind::Get) => bail!("--target get: give the --path to GET"),
            (Some(path), _) if plain && !path.starts_with('/') => {
                bail!("--path: expected an absolute path such as /get-online-features, got {path:?}")
            }
            (Some(_), _) if !plain => bail!("--path: only for --target post or get"),
            _ => {}
        }
        let corpus = match (args.corpus, args.target) {
            (Some(corpus), _) => corpus,
            (None, TargetKind::Get) => PathBuf::new(),
            (None, target) => bail!("--corpus: required for --target {target}"),
        };
        let warmup = parse_duration_or_zero(&args.warmup).context("--warmup")?;
        let run_time = match &mode {
            Mode::Open { duration, .. } | Mode::Closed { duration, .. } => *duration,
            Mode::Step { rates, each } => each.saturating_mul(rates.len() as u32),
        };
        if run_time + warmup > MAX_RUN {
            bail!("--duration: the run would last {run_time:?} plus warm-up; the limit is 24h");
        }
        let timeout = parse_duration(&args.timeout).context("--timeout")?;
        let interval = parse_duration(&args.interval).context("--interval")?;
        if interval < Duration::from_millis(100) {
            bail!("--interval: expected at least 100ms, got {interval:?}");
        }
        let connections = args.connections.unwrap_or(if args.target.is_grpc() { 2 } else { 64 });
        if connections == 0 || connections > 10_000 {
            bail!("--connections: expected 1..=10000, got {connections}");
        }
        if args.threads == 0 || args.threads > 256 {
            bail!("--threads: expected 1..=256, got {}", args.threads);
        }
        if args.ring == 0 {
            bail!("--ring: expected at least 1");
        }
        if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
            bail!("--url: expected http://host:port, got {:?}", args.url);
        }
        let keys = args.keys.parse().context("--keys")?;
        let slas = args
            .sla
            .iter()
            .map(|s| s.parse::<Sla>().with_context(|| format!("--sla {s:?}")))
            .collect::<Result<_>>()?;
        Ok(Self {
            url: args.url.trim_end_matches('/').to_owned(),
            target: args.target,
            model: args.model,
            version: args.version,
            path: args.path,
            corpus,
            entities: args.entities,
            entity_key: args.entity_key,
            keys,
            input_name: args.input_name,
            mode,
            warmup,
            timeout,
            connections,
            threads: args.threads,
            max_in_flight: args.max_in_flight.max(1),
            slas,
            summary: args.summary,
            plot: args.plot,
            interval,
            seed: args.seed,
            ring: args.ring,
            quiet: args.quiet,
        })
    }
}

/// `250us`, `1.5ms`, `10s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let d = parse_duration_or_zero(text)?;
    if d.is_zero() {
        bail!("expected a positive duration, got {text:?}");
    }
    Ok(d)
}

fn parse_duration_or_zero(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("expected a duration such as 500ms or 30s, got {text:?}"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "" if value == 0.0 => 0.0,
        other => bail!("unknown unit {other:?} in {text:?} (use us, ms, s, m or h)"),
    };
    if !seconds.is_finite() || seconds > MAX_RUN.as_secs_f64() {
        bail!("duration {text:?} is out of range");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `FROM:BY:TO` (inclusive) or a comma-separated list of rates.
fn parse_steps(text: &str) -> Result<Vec<f64>> {
    let number = |s: &str| -> Result<f64> {
        let v: f64 = s.trim().parse().map_err(|_| anyhow::anyhow!("expected a rate, got {s:?}"))?;
        if !(v.is_finite() && v > 0.0 && v <= 1e6) {
            bail!("expected a rate in (0, 1000000], got {s:?}");
        }
        Ok(v)
    };
    let rates: Vec<f64> = if text.contains(':') {
        let parts: Vec<&str> = text.split(':').collect();
        let [from, by, to] = parts.as_slice() else {
            bail!("expected FROM:BY:TO, got {text:?}");
        };
        let (from, by, to) = (number(from)?, number(by)?, number(to)?);
        if to < from {
            bail!("TO ({to}) is below FROM ({from})");
        }
        let count = ((to - from) / by).floor() as usize + 1;
        (0..count).map(|i| from + by * i as f64).collect()
    } else {
        text.split(',').map(number).collect::<Result<_>>()?
    };
    if rates.is_empty() || rates.len() > 1000 {
        bail!("expected 1 to 1000 steps, got {}", rates.len());
    }
    if rates.windows(2).any(|w| w[1] <= w[0]) {
        bail!("rates must rise from step to step: {text:?}");
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_are_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1.5ms").unwrap(), Duration::from_micros(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_duration_or_zero("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn steps_parse_as_ranges_or_lists() {
        assert_eq!(parse_steps("500:500:2000").unwrap(), vec![500.0, 1000.0, 1500.0, 2000.0]);
        assert_eq!(parse_steps("100,300").unwrap(), vec![100.0, 300.0]);
        assert!(parse_steps("300,100").is_err());
        assert!(parse_steps("1:0:5").is_err());
        assert!(parse_steps("1:1:5000").is_err(), "more than 1000 steps");
    }
}
