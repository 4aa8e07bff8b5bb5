//! The end of a run: a table on the terminal, the SLA verdict line, the JSON summary for CI
//! and the plot.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{Mode, Plan};
use crate::plot;
use crate::record::{Recorder, Totals};
use crate::sla::{Verdict, format_us};

/// One step of a step-mode run.
pub struct Step {
    pub rate: f64,
    pub totals: Totals,
    pub verdicts: Vec<Verdict>,
    pub passed: bool,
}

/// The step a step-mode run reports: the highest that held, else the first.
pub fn reported(steps: &[Step]) -> Option<&Step> {
    steps.iter().rev().find(|s| s.passed).or(steps.first())
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn of(totals: &Totals) -> Self {
        Self {
            p50: totals.quantile_us(0.5),
            p90: totals.quantile_us(0.9),
            p99: totals.quantile_us(0.99),
            p99_9: totals.quantile_us(0.999),
            max: totals.max_us(),
            mean: (totals.mean_us() * 10.0).round() / 10.0,
        }
    }
}

fn counts(totals: &Totals) -> Value {
    json!({
        "requests": totals.requests(),
        "ok": totals.ok,
        "errors": totals.errors_by_kind,
        "error_count": totals.errors,
        "error_rate": totals.error_rate(),
        "throughput_rps": (totals.throughput() * 10.0).round() / 10.0,
        "latency_us": Latency::of(totals),
        "error_latency_us": totals
            .error_latencies()
            .map(|(kind, [p50, p99, max])| (kind.to_string(), json!({"p50": p50, "p99": p99, "max": max})))
            .collect::<serde_json::Map<_, _>>(),
        "versions": totals.versions,
    })
}

/// Prints and writes the results; true when every SLA held (step mode: when at least
/// one step held).
pub fn finish(
    plan: &Plan,
    recorder: &Recorder,
    totals: &Totals,
    steps: &[Step],
    started_at: SystemTime,
) -> Result<bool> {
    let (timeline, changes) = recorder.timeline();
    let verdicts: Vec<Verdict> = match &plan.mode {
        Mode::Step { .. } => reported(steps).map(|s| s.verdicts.clone()).unwrap_or_default(),
        _ => plan.slas.iter().map(|s| s.judge(totals)).collect(),
    };
    let max_rate = steps.iter().filter(|s| s.passed).map(|s| s.rate).reduce(f64::max);
    let passed = match &plan.mode {
        Mode::Step { .. } => max_rate.is_some(),
        _ => verdicts.iter().all(|v| v.passed),
    };

    print_table(plan, totals);
    if !changes.is_empty() {
        for c in &changes {
            println!("version change at {:.1}s: v{} -> v{}", c.t, c.from, c.to);
        }
    }
    if let Mode::Step { .. } = plan.mode {
        match max_rate {
            Some(rate) => println!("highest rate that held the SLA: {rate:.0} req/s"),
            None => println!(
                "no step held the SLA (lowest rate {:.0} req/s)",
                steps.first().map_or(0.0, |s| s.rate)
            ),
        }
    }
    let verdict_line = verdict_line(passed, &verdicts, plan, max_rate);
    if let Some(line) = &verdict_line {
        println!("{line}");
    }

    if let Some(path) = &plan.summary {
        let (offered, concurrency, duration) = match &plan.mode {
            Mode::Open { rate, duration } => (Some(*rate), None, duration.as_secs_f64()),
            Mode::Closed { concurrency, duration } => (None, Some(*concurrency), duration.as_secs_f64()),
            Mode::Step { each, .. } => (None, None, each.as_secs_f64()),
        };
        let mut summary = json!({
            "tool": "fti-loadtest",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "started_at_unix": started_at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "url": plan.url,
            "target": plan.target,
            "model": plan.model,
            "pinned_version": plan.version,
            "mode": plan.mode.name(),
            "offered_rps": offered,
            "concurrency": concurrency,
            "duration_s": duration,
            "warmup_s": plan.warmup.as_secs_f64(),
            "connections": plan.connections,
            "keys": plan.keys.to_string(),
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut summary, counts(totals)) {
            map.extend(more);
            // Only an open loop has a schedule to lag behind.
            let lag = match plan.mode {
                Mode::Closed { .. } => Value::Null,
                _ => json!({"p50": totals.lag_quantile_us(0.5), "p99": totals.lag_quantile_us(0.99)}),
            };
            map.insert("client_lag_us".into(), lag);
            map.insert("version_changes".into(), json!(changes));
            map.insert("sla".into(), json!(verdicts));
            map.insert("passed".into(), json!(passed));
            map.insert("verdict".into(), json!(verdict_line));
            if !steps.is_empty() {
                let steps: Vec<Value> = steps
                    .iter()
                    .map(|s| {
                        let mut step = counts(&s.totals);
                        step["rate"] = json!(s.rate);
                        step["passed"] = json!(s.passed);
                        step["sla"] = json!(s.verdicts);
                        step
                    })
                    .collect();
                map.insert("steps".into(), json!(steps));
                map.insert("max_rate_within_sla".into(), json!(max_rate));
            }
            map.insert("timeline".into(), json!(timeline));
        }
        let text = serde_json::to_string_pretty(&summary).context("encoding the summary")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("--summary: cannot write {}", path.display()))?;
    }
    if let Some(path) = &plan.plot {
        plot::draw(path, plan, &timeline, &changes)
            .with_context(|| format!("--plot: cannot write {}", path.display()))?;
    }
    Ok(passed)
}

fn print_table(plan: &Plan, totals: &Totals) {
    let mode = match &plan.mode {
        Mode::Step { .. } => "step mode (the highest step that held)".into(),
        other => other.to_string(),
    };
    println!("{} {} — {mode}, {} target", plan.url, plan.model, plan.target);
    println!(
        "requests {}  ok {}  errors {} ({:.3}%)  throughput {:.0} req/s",
        totals.requests(),
        totals.ok,
        totals.errors,
        totals.error_rate() * 100.0,
        totals.throughput()
    );
    println!(
        "latency  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        format_us(totals.quantile_us(0.5)),
        format_us(totals.quantile_us(0.9)),
        format_us(totals.quantile_us(0.99)),
        format_us(totals.quantile_us(0.999)),
        format_us(totals.max_us()),
    );
    if let Mode::Open { .. } | Mode::Step { .. } = plan.mode {
        println!(
            "client lag behind schedule  p50 {}  p99 {}  (counted in latency)",
            format_us(totals.lag_quantile_us(0.5)),
            format_us(totals.lag_quantile_us(0.99))
        );
    }
    if !totals.errors_by_kind.is_empty() {
        let kinds: Vec<String> = totals.errors_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("errors by kind: {}", kinds.join(", "));
        for (kind, [p50, p99, _]) in totals.error_latencies() {
            println!("{kind} latency  p50 {}  p99 {}", format_us(p50), format_us(p99));
        }
    }
    if !totals.versions.is_empty() {
        let versions: BTreeMap<_, _> = totals.versions.iter().collect();
        let shown: Vec<String> = versions.iter().map(|(v, n)| format!("v{v} {n}")).collect();
        println!("answered by: {}", shown.join(", "));
    }
}

fn verdict_line(passed: bool, verdicts: &[Verdict], plan: &Plan, max_rate: Option<f64>) -> Option<String> {
    if verdicts.is_empty() {
        return None;
    }
    let lines: Vec<&str> = verdicts.iter().map(|v| v.line.as_str()).collect();
    Some(match (&plan.mode, passed) {
        (Mode::Step { .. }, true) => {
            format!("SLA PASS up to {:.0} req/s: {}", max_rate.unwrap_or(0.0), lines.join("; "))
        }
        (_, true) => format!("SLA PASS: {}", lines.join("; ")),
        (_, false) => {
            let broken: Vec<&str> = verdicts.iter().filter(|v| !v.passed).map(|v| v.line.as_str()).collect();
            format!("SLA FAIL: {}", broken.join("; "))
        }
    })
}
