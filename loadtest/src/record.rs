//! What a run observed: HDR histograms of latency (whole run and per interval), errors by
//! kind, the model versions that answered, and the promotions those versions reveal.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms hold (µs); slower answers are clamped to it.
const HIGHEST_US: u64 = 120_000_000;

/// How one request ended, as the target saw it.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A successful answer, with the model version that produced it when the API says.
    Ok { version: Option<String> },
    /// A failure, by kind: `http_503:store_unavailable`, `grpc_unavailable`, `timeout`,
    /// `connect`, `client_overload`, ...
    Error(String),
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

/// Counts over some span of the run (the whole measured run, or one step).
#[derive(Debug, Clone)]
pub struct Totals {
    latency: Histogram<u64>,
    /// Latency of the error answers, by kind (refusals such as `http_429:overloaded`
    /// included): how fast a server says no.
    error_latency: BTreeMap<String, Histogram<u64>>,
    /// How late the client itself sent requests behind their schedule (open loop).
    lag: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub versions: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

impl Totals {
    fn new() -> Self {
        Self {
            latency: histogram(),
            error_latency: BTreeMap::new(),
            lag: histogram(),
            ok: 0,
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            versions: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn requests(&self) -> u64 {
        self.ok + self.errors
    }

    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64
    }

    pub fn max_us(&self) -> f64 {
        self.latency.max() as f64
    }

    /// The error kinds that answered, with p50, p99 and max of their latencies (µs).
    pub fn error_latencies(&self) -> impl Iterator<Item = (&str, [f64; 3])> {
        self.error_latency.iter().map(|(kind, h)| {
            (
                kind.as_str(),
                [h.value_at_quantile(0.5) as f64, h.value_at_quantile(0.99) as f64, h.max() as f64],
            )
        })
    }

    pub fn mean_us(&self) -> f64 {
        self.latency.mean()
    }

    pub fn lag_quantile_us(&self, q: f64) -> f64 {
        self.lag.value_at_quantile(q) as f64
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests() == 0 { 0.0 } else { self.errors as f64 / self.requests() as f64 }
    }

    /// Successful answers per second of measured time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.ok as f64 / secs } else { 0.0 }
    }

    fn add(&mut self, latency_us: u64, lag_us: u64, answer: Answer) {
        match answer {
            Answer::Ok { version } => {
                self.ok += 1;
                self.latency.saturating_record(latency_us.max(1));
                self.lag.saturating_record(lag_us.max(1));
                if let Some(v) = version {
                    *self.versions.entry(v).or_default() += 1;
                }
            }
            Answer::Error(kind) => {
                self.errors += 1;
                self.error_latency
                    .entry(kind.clone())
                    .or_insert_with(histogram)
                    .saturating_record(latency_us.max(1));
                *self.errors_by_kind.entry(kind).or_default() += 1;
            }
        }
    }
}

/// One point of the timeline: what completed during one interval.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// End of the interval, seconds since measuring started.
    pub t: f64,
    pub ok: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub versions: BTreeMap<String, u64>,
}

/// The version answering most requests changed: a promotion or a rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// When the new version first answered, seconds since measuring started.
    pub t: f64,
    pub from: String,
    pub to: String,
}

struct State {
    totals: Totals,
    interval: Totals,
    interval_started: Instant,
    /// When each version first answered in this interval and in the previous one.
    first_seen: BTreeMap<String, f64>,
    first_seen_before: BTreeMap<String, f64>,
    dominant: Option<String>,
    timeline: Vec<Point>,
    changes: Vec<Change>,
}

/// Shared by every in-flight request; one short critical section per answer.
pub struct Recorder {
    /// Requests due before this instant are warm-up: sent, but not counted.
    measure_from: Instant,
    state: Mutex<State>,
    in_flight: AtomicUsize,
}

impl Recorder {
    pub fn new(measure_from: Instant) -> Self {
        Self {
            measure_from,
            state: Mutex::new(State {
                totals: Totals::new(),
                interval: Totals::new(),
                interval_started: measure_from,
                first_seen: BTreeMap::new(),
                first_seen_before: BTreeMap::new(),
                dominant: None,
                timeline: Vec::new(),
                changes: Vec::new(),
            }),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn measure_from(&self) -> Instant {
        self.measure_from
    }

    /// Counts a request as outstanding; false (and not counted) when `limit` are already.
    pub fn try_start(&self, limit: usize) -> bool {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Records one request that was due at `due`, left the client at `sent` and ended at
    /// `done`. Latency runs from `due`: in open loop that is the schedule, so time spent
    /// queued behind a slow server counts (no coordinated omission).
    pub fn finish(&self, due: Instant, sent: Instant, done: Instant, answer: Answer) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.record(due, sent, done, answer);
    }

    /// Records a request that never left the client (e.g. over the in-flight limit).
    pub fn record(&self, due: Instant, sent: Instant, done: Instant, answer: Answer) {
        if due < self.measure_from {
            return;
        }
        let latency = done.saturating_duration_since(due).as_micros() as u64;
        let lag = sent.saturating_duration_since(due).as_micros() as u64;
        let at = done.saturating_duration_since(self.measure_from).as_secs_f64();
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Answer::Ok { version: Some(v) } = &answer
            && !state.first_seen.contains_key(v)
        {
            state.first_seen.insert(v.clone(), at);
        }
        state.totals.add(latency, lag, answer.clone());
        state.interval.add(latency, lag, answer);
    }

    /// Closes the current interval at `now` and returns its point. `last` marks the run's
    /// final, partial interval.
    pub fn tick(&self, now: Instant, last: bool) -> Point {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let span = now.saturating_duration_since(state.interval_started);
        let mut interval = std::mem::replace(&mut state.interval, Totals::new());
        interval.elapsed = span;
        state.interval_started = now;
        let t = now.saturating_duration_since(self.measure_from).as_secs_f64();
        let answered = interval.ok > 0;
        let point = Point {
            t,
            ok: interval.ok,
            errors: interval.errors,
            throughput: interval.throughput(),
            p50_us: answered.then(|| interval.latency.value_at_quantile(0.5)),
            p90_us: answered.then(|| interval.latency.value_at_quantile(0.9)),
            p99_us: answered.then(|| interval.latency.value_at_quantile(0.99)),
            max_us: answered.then(|| interval.latency.max()),
            versions: interval.versions.clone(),
        };
        let dominant = interval.versions.iter().max_by_key(|(_, n)| **n).map(|(v, _)| v.clone());
        if let Some(now_dominant) = dominant {
            if let Some(before) = state.dominant.clone()
                && before != now_dominant
            {
                let seen = [&state.first_seen_before, &state.first_seen]
                    .iter()
                    .filter_map(|m| m.get(&now_dominant).copied())
                    .fold(t, f64::min);
                state.changes.push(Change { t: seen, from: before, to: now_dominant.clone() });
            }
            state.dominant = Some(now_dominant);
        }
        state.first_seen_before = std::mem::take(&mut state.first_seen);
        // The final, partial interval is often empty (the run ended just after a tick): it
        // would read as a drop to zero. An empty interval mid-run stays: that is a stall.
        if !last || point.ok + point.errors > 0 {
            state.timeline.push(point.clone());
        }
        point
    }

    /// Takes the counts so far (ending a step) and starts new ones; the timeline goes on.
    pub fn take_totals(&self, elapsed: Duration) -> Totals {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut totals = std::mem::replace(&mut state.totals, Totals::new());
        totals.elapsed = elapsed;
        totals
    }

    pub fn timeline(&self) -> (Vec<Point>, Vec<Change>) {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.timeline.clone(), state.changes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> Answer {
        Answer::Ok { version: Some(v.into()) }
    }

    #[test]
    fn latency_runs_from_the_schedule_and_warm_up_is_not_counted() {
        let t0 = Instant::now();
        let start = t0 + Duration::from_secs(1);
        let rec = Recorder::new(start);
        rec.record(t0, t0, t0 + Duration::from_millis(5), ok("1"));
        let due = start + Duration::from_millis(10);
        // Sent 300 µs late, answered 2 ms after the schedule.
        rec.record(due, due + Duration::from_micros(300), due + Duration::from_millis(2), ok("1"));
        rec.record(due, due, due + Duration::from_millis(1), Answer::Error("timeout".into()));
        let totals = rec.take_totals(Duration::from_secs(1));
        assert_eq!((totals.ok, totals.errors), (1, 1));
        assert!((totals.quantile_us(0.5) - 2000.0).abs() <= 2.0, "{}", totals.quantile_us(0.5));
        assert!((totals.lag_quantile_us(0.5) - 300.0).abs() <= 1.0);
        assert_eq!(totals.errors_by_kind["timeout"], 1);
        // Errors have latencies of their own, apart from the answers'.
        let kinds: Vec<(&str, [f64; 3])> = totals.error_latencies().collect();
        assert_eq!(kinds.len(), 1);
        assert_eq!(kinds[0].0, "timeout");
        assert!((kinds[0].1[0] - 1000.0).abs() <= 1.0, "{kinds:?}");
        assert_eq!(totals.versions["1"], 1);
        assert!((totals.error_rate() - 0.5).abs() < 1e-12);
        assert!((totals.throughput() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_change_of_answering_version_is_a_promotion_at_its_first_answer() {
        let start = Instant::now();
        let rec = Recorder::new(start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        for ms in [100, 200, 300] {
            rec.record(at(ms), at(ms), at(ms), ok("2"));
        }
        rec.tick(at(1000), false);
        // Version 1 shows up late in the second interval, while 2 still answers most.
        rec.record(at(1100), at(1100), at(1100), ok("2"));
        rec.record(at(1200), at(1200), at(1200), ok("2"));
        rec.record(at(1900), at(1900), at(1900), ok("1"));
        rec.tick(at(2000), false);
        for ms in [2100, 2200, 2300] {
            rec.record(at(ms), at(ms), at(ms), ok("1"));
        }
        rec.tick(at(3000), true);
        let (timeline, changes) = rec.timeline();
        assert_eq!(timeline.len(), 3);
        assert_eq!(timeline[1].versions.len(), 2);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].from.as_str(), changes[0].to.as_str()), ("2", "1"));
        assert!((changes[0].t - 1.9).abs() < 1e-6, "first answer of v1 at 1.9 s, got {}", changes[0].t);
    }
}
