//! SLA expressions (`p99<=2ms`, `errors<=0.1%`, `throughput>=1000`) and their verdicts.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, anyhow, bail};
use serde::Serialize;

use crate::record::Totals;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency quantile in (0, 1].
    Quantile(f64),
    Max,
    Mean,
    /// Errors as a fraction of requests.
    ErrorRate,
    /// Errors as a count.
    Errors,
    /// Answered requests per second.
    Throughput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Le,
    Lt,
    Ge,
    Gt,
}

impl Op {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Self::Le => observed <= limit,
            Self::Lt => observed < limit,
            Self::Ge => observed >= limit,
            Self::Gt => observed > limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::Le => "<=",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Gt => ">",
        }
    }

    fn negated(self) -> &'static str {
        match self {
            Self::Le => ">",
            Self::Lt => ">=",
            Self::Ge => "<",
            Self::Gt => "<=",
        }
    }
}

/// One SLA: latencies are held in microseconds, error rates as fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub sla: String,
    pub observed: f64,
    pub limit: f64,
    pub unit: &'static str,
    pub passed: bool,
    /// e.g. `p99 1.84ms <= 2ms`.
    pub line: String,
}

impl Sla {
    pub fn judge(&self, totals: &Totals) -> Verdict {
        let observed = match self.metric {
            Metric::Quantile(q) => totals.quantile_us(q),
            Metric::Max => totals.max_us(),
            Metric::Mean => totals.mean_us(),
            Metric::ErrorRate => totals.error_rate(),
            Metric::Errors => totals.errors as f64,
            Metric::Throughput => totals.throughput(),
        };
        let passed = self.op.holds(observed, self.limit);
        let op = if passed { self.op.symbol() } else { self.op.negated() };
        let line = format!("{} {} {op} {}", self.name(), self.show(observed), self.show(self.limit));
        Verdict { sla: self.text.clone(), observed, limit: self.limit, unit: self.unit(), passed, line }
    }

    fn name(&self) -> String {
        match self.metric {
            Metric::Quantile(q) => format!("p{}", trim_float(q * 100.0)),
            Metric::Max => "max".into(),
            Metric::Mean => "mean".into(),
            Metric::ErrorRate | Metric::Errors => "errors".into(),
            Metric::Throughput => "throughput".into(),
        }
    }

    fn unit(&self) -> &'static str {
        match self.metric {
            Metric::Quantile(_) | Metric::Max | Metric::Mean => "us",
            Metric::ErrorRate => "fraction",
            Metric::Errors => "count",
            Metric::Throughput => "req/s",
        }
    }

    fn show(&self, value: f64) -> String {
        match self.metric {
            Metric::Quantile(_) | Metric::Max | Metric::Mean => format_us(value),
            Metric::ErrorRate => format!("{}%", trim_float(value * 100.0)),
            Metric::Errors => format!("{value}"),
            Metric::Throughput => format!("{value:.0} req/s"),
        }
    }
}

impl FromStr for Sla {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact
            .find(['<', '>'])
            .ok_or_else(|| anyhow!("expected METRIC<=VALUE, e.g. p99<=2ms or errors<=0.1%"))?;
        let (name, rest) = compact.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            unreachable!("found '<' or '>' above")
        };
        let name = name.to_ascii_lowercase();
        let (metric, limit) = match name.as_str() {
            "errors" | "error_rate" => match value.strip_suffix('%') {
                Some(percent) => (Metric::ErrorRate, number(percent)? / 100.0),
                None if name == "error_rate" => (Metric::ErrorRate, number(value)?),
                None => (Metric::Errors, number(value)?),
            },
            "throughput" | "rps" => (Metric::Throughput, number(value.trim_end_matches("/s"))?),
            "max" => (Metric::Max, latency_us(value)?),
            "mean" => (Metric::Mean, latency_us(value)?),
            _ => {
                let percentile = name
                    .strip_prefix('p')
                    .and_then(|p| p.parse::<f64>().ok())
                    .filter(|p| *p > 0.0 && *p <= 100.0)
                    .ok_or_else(|| {
                        anyhow!(
                            "unknown metric {name:?}: use p50, p99, p99.9, max, mean, errors or throughput"
                        )
                    })?;
                (Metric::Quantile(percentile / 100.0), latency_us(value)?)
            }
        };
        let upper_bound = matches!(op, Op::Le | Op::Lt);
        if metric == Metric::Throughput && upper_bound {
            bail!("a throughput SLA is a floor: use throughput>=N");
        }
        if metric != Metric::Throughput && !upper_bound {
            bail!("latency and error SLAs are ceilings: use <= or <");
        }
        Ok(Self { text: text.to_owned(), metric, op, limit })
    }
}

fn number(text: &str) -> Result<f64> {
    let v: f64 = text.parse().map_err(|_| anyhow!("expected a number, got {text:?}"))?;
    if !v.is_finite() || v < 0.0 {
        bail!("expected a non-negative number, got {text:?}");
    }
    Ok(v)
}

fn latency_us(text: &str) -> Result<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (value, unit) = text.split_at(split);
    let value = number(value)?;
    Ok(match unit {
        "us" | "µs" => value,
        "ms" => value * 1e3,
        "s" => value * 1e6,
        _ => bail!("expected a latency with a unit (us, ms, s), got {text:?}"),
    })
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Microseconds for people: `850us`, `1.84ms`, `2.10s`.
pub fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let p99: Sla = "p99<=2ms".parse().unwrap();
        assert_eq!((p99.metric, p99.op, p99.limit), (Metric::Quantile(0.99), Op::Le, 2000.0));
        let p999: Sla = "p99.9 < 500us".parse().unwrap();
        assert!(matches!(p999.metric, Metric::Quantile(q) if (q - 0.999).abs() < 1e-12));
        assert_eq!(p999.limit, 500.0);
        let errors: Sla = "errors<=0.1%".parse().unwrap();
        assert_eq!((errors.metric, errors.limit), (Metric::ErrorRate, 0.001));
        let count: Sla = "errors<=3".parse().unwrap();
        assert_eq!((count.metric, count.limit), (Metric::Errors, 3.0));
        let tput: Sla = "throughput>=1000".parse().unwrap();
        assert_eq!((tput.metric, tput.op), (Metric::Throughput, Op::Ge));
    }

    #[test]
    fn refuses_nonsense_with_a_reason() {
        for bad in ["p99", "p99<=2", "p101<=2ms", "q99<=2ms", "throughput<=5", "p99>=2ms", "errors<=-1%"] {
            assert!(bad.parse::<Sla>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn formats_latencies_for_people() {
        assert_eq!(format_us(850.0), "850us");
        assert_eq!(format_us(1840.0), "1.84ms");
        assert_eq!(format_us(2_100_000.0), "2.10s");
    }
}
