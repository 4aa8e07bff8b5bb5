//! Offering load: open loop on a schedule, closed loop at fixed concurrency, and steps of
//! rising rate. Every run is bounded: by its duration, then by the per-request timeout.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;

use crate::cli::{Mode, Plan};
use crate::corpus;
use crate::record::{Answer, Recorder};
use crate::report::{self, Step};
use crate::sla::{Verdict, format_us};
use crate::target::Target;

/// Below this much time before a request is due, the pacer stops sleeping and yields
/// instead: a sleeping thread wakes ~50–100 µs late on this kind of VM, and every
/// microsecond of pacer lateness is charged to the server's latency.
const SPIN_BELOW: Duration = Duration::from_micros(120);

pub struct Outcome {
    pub passed: bool,
}

impl Outcome {
    pub fn exit_code(&self) -> ExitCode {
        if self.passed { ExitCode::SUCCESS } else { ExitCode::from(2) }
    }
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    let bodies = corpus::bodies(plan)?;
    let target = Arc::new(Target::connect(plan, &bodies).await?);
    if let Answer::Error(kind) = target.call(0).await {
        eprintln!("fti-loadtest: warning: the first request failed ({kind}); running anyway");
    }
    let started_at = SystemTime::now();
    let begin = Instant::now();
    let recorder = Arc::new(Recorder::new(begin + plan.warmup));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn(tick(plan.clone(), recorder.clone(), done.clone()));

    let mut steps = Vec::new();
    let totals = match &plan.mode {
        Mode::Open { rate, duration } => {
            open_loop(plan, &target, &recorder, *rate, begin, recorder.measure_from() + *duration).await;
            drain(plan, &recorder).await;
            recorder.take_totals(*duration)
        }
        Mode::Closed { concurrency, duration } => {
            closed_loop(plan, &target, &recorder, *concurrency, recorder.measure_from() + *duration).await;
            recorder.take_totals(*duration)
        }
        Mode::Step { rates, each } => {
            if !plan.warmup.is_zero() {
                open_loop(plan, &target, &recorder, rates[0], begin, recorder.measure_from()).await;
                drain(plan, &recorder).await;
                recorder.take_totals(plan.warmup);
            }
            for &rate in rates {
                let start = Instant::now();
                open_loop(plan, &target, &recorder, rate, start, start + *each).await;
                drain(plan, &recorder).await;
                let totals = recorder.take_totals(*each);
                let verdicts: Vec<Verdict> = plan.slas.iter().map(|s| s.judge(&totals)).collect();
                let passed = verdicts.iter().all(|v| v.passed);
                if !plan.quiet {
                    let broken: Vec<&str> =
                        verdicts.iter().filter(|v| !v.passed).map(|v| v.line.as_str()).collect();
                    eprintln!(
                        "step {rate:>8.0} req/s: p50 {} p99 {} errors {:.3}% -> {}",
                        format_us(totals.quantile_us(0.5)),
                        format_us(totals.quantile_us(0.99)),
                        totals.error_rate() * 100.0,
                        if passed { "held".to_owned() } else { format!("broke ({})", broken.join("; ")) }
                    );
                }
                steps.push(Step { rate, totals, verdicts, passed });
                if !passed {
                    break;
                }
            }
            match report::reported(&steps) {
                Some(step) => step.totals.clone(),
                None => recorder.take_totals(Duration::ZERO),
            }
        }
    };
    done.store(true, Ordering::Release);
    let _ = ticker.await;
    let passed = report::finish(plan, &recorder, &totals, &steps, started_at)?;
    Ok(Outcome { passed })
}

/// Sends requests on a fixed schedule from `from` until `until`, whatever the server does.
/// The pacer is a blocking thread of its own, so a busy runtime cannot delay the schedule;
/// each request runs as a task and is timed from when it was *due*.
async fn open_loop(
    plan: &Plan,
    target: &Arc<Target>,
    recorder: &Arc<Recorder>,
    rate: f64,
    from: Instant,
    until: Instant,
) {
    let handle = tokio::runtime::Handle::current();
    let (target, recorder) = (target.clone(), recorder.clone());
    let (timeout, limit) = (plan.timeout, plan.max_in_flight);
    let pacer = tokio::task::spawn_blocking(move || {
        let mut n: u64 = 0;
        loop {
            let due = from + Duration::from_secs_f64(n as f64 / rate);
            if due >= until {
                break;
            }
            wait_until(due);
            let index = n as usize;
            n += 1;
            if !recorder.try_start(limit) {
                let now = Instant::now();
                recorder.record(due, now, now, Answer::Error("client_overload".into()));
                continue;
            }
            let (target, recorder) = (target.clone(), recorder.clone());
            handle.spawn(async move {
                let sent = Instant::now();
                let answer = call_within(&target, index, timeout).await;
                recorder.finish(due, sent, Instant::now(), answer);
            });
        }
    });
    let _ = pacer.await;
}

/// One request, ended by `timeout` at the latest.
async fn call_within(target: &Target, index: usize, timeout: Duration) -> Answer {
    match tokio::time::timeout(timeout, target.call(index)).await {
        Ok(answer) => answer,
        Err(_) => Answer::Error("timeout".into()),
    }
}

fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > SPIN_BELOW {
            std::thread::sleep(left - SPIN_BELOW / 2);
        } else {
            std::thread::yield_now();
        }
    }
}

/// `concurrency` clients, each sending its next request when the last one answered.
/// Latency runs from the actual send: a closed loop measures service time and throughput,
/// not what users waiting in a queue would see (use the open loop for that).
async fn closed_loop(
    plan: &Plan,
    target: &Arc<Target>,
    recorder: &Arc<Recorder>,
    concurrency: usize,
    until: Instant,
) {
    let clients: Vec<_> = (0..concurrency)
        .map(|client| {
            let (target, recorder, timeout) = (target.clone(), recorder.clone(), plan.timeout);
            tokio::spawn(async move {
                let mut index = client;
                while Instant::now() < until {
                    recorder.try_start(usize::MAX);
                    let sent = Instant::now();
                    let answer = call_within(&target, index, timeout).await;
                    recorder.finish(sent, sent, Instant::now(), answer);
                    index += concurrency;
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.await;
    }
}

/// Waits for outstanding requests; each ends by its timeout at the latest.
async fn drain(plan: &Plan, recorder: &Recorder) {
    let deadline = Instant::now() + plan.timeout + Duration::from_millis(200);
    while recorder.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Closes one timeline interval per `--interval` and shows progress on the terminal.
async fn tick(plan: Plan, recorder: Arc<Recorder>, done: Arc<AtomicBool>) {
    let terminal = std::io::stderr().is_terminal();
    let mut next = recorder.measure_from();
    let mut ok = 0u64;
    let mut errors = 0u64;
    tokio::time::sleep_until(next.into()).await;
    loop {
        next += plan.interval;
        while Instant::now() < next && !done.load(Ordering::Acquire) {
            let left = next.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
            tokio::time::sleep(left).await;
        }
        let last = done.load(Ordering::Acquire);
        let point = recorder.tick(Instant::now().min(next), last);
        ok += point.ok;
        errors += point.errors;
        let empty_end = last && point.ok + point.errors == 0;
        if !plan.quiet && !empty_end && (terminal || (point.t.round() as u64).is_multiple_of(5)) {
            let versions: Vec<String> = point.versions.keys().map(|v| format!("v{v}")).collect();
            let line = format!(
                "[{:>6.1}s] {:>8.0} req/s  p50 {:>8}  p99 {:>8}  ok {ok}  errors {errors}  in flight {}  {}",
                point.t,
                point.throughput,
                point.p50_us.map_or("-".into(), |v| format_us(v as f64)),
                point.p99_us.map_or("-".into(), |v| format_us(v as f64)),
                recorder.in_flight(),
                versions.join(",")
            );
            if terminal { eprint!("\r{line}\x1b[K") } else { eprintln!("{line}") }
        }
        if last {
            if terminal && !plan.quiet {
                eprintln!();
            }
            return;
        }
    }
}
