//! The function table: arity and argument types of each function, and what it computes.

use std::collections::HashSet;

use super::code::{Bool, Num, Str, lift_all, map, zip};
use super::compile::{Code, Names, boolean, compile, did_you_mean, expected, num, string};
use super::error::Fault;
use super::frame::Type;
use super::parser::{Expr, Kind};

pub(super) const NAMES: &[&str] = &[
    "abs",
    "bucketize",
    "ceil",
    "clamp",
    "coalesce",
    "day_of_week",
    "exp",
    "floor",
    "haversine",
    "hour_of_day",
    "if",
    "is_missing",
    "ln",
    "log1p",
    "max",
    "min",
    "num",
    "one_hot",
    "pow",
    "round",
    "seconds_between",
    "sqrt",
];

/// Mean Earth radius (IUGG), the value the spec fixes so that training and serving agree.
const EARTH_RADIUS_KM: f64 = 6371.0088;
const SECONDS_PER_DAY: f64 = 86_400.0;

pub(super) fn call(names: &Names, name: &str, col: usize, args: &[Expr]) -> Result<Code, Fault> {
    let call = Call { names, name, col, args };
    match name {
        "ln" => call.unary(f64::ln),
        "log1p" => call.unary(f64::ln_1p),
        "exp" => call.unary(f64::exp),
        "sqrt" => call.unary(f64::sqrt),
        "abs" => call.unary(f64::abs),
        "floor" => call.unary(f64::floor),
        "ceil" => call.unary(f64::ceil),
        "round" => call.unary(f64::round),
        "hour_of_day" => call.unary(hour_of_day),
        "day_of_week" => call.unary(day_of_week),
        "pow" => call.binary(f64::powf),
        "seconds_between" => call.binary(|t1, t2| t2 - t1),
        // f64::min/max already return the other operand when one is NaN.
        "min" => call.fold(f64::min),
        "max" => call.fold(f64::max),
        "clamp" => call.clamp(),
        "haversine" => call.haversine(),
        "coalesce" => call.coalesce(),
        "if" => call.if_else(),
        "is_missing" => call.is_missing(),
        "num" => call.num_of_bool(),
        "bucketize" => call.bucketize(),
        "one_hot" => Err(Fault::new(
            col,
            "`one_hot` gives a vector, so it must be the whole expression of an on-demand feature",
        )),
        _ => {
            let hint = did_you_mean(name, NAMES.iter().copied());
            Err(Fault::new(col, format!("unknown function `{name}`{hint}")))
        }
    }
}

/// `one_hot(s, ['a', ...])`, allowed only as a whole expression: the string to match and
/// the categories, in column order.
pub(super) fn one_hot(names: &Names, col: usize, args: &[Expr]) -> Result<(Str, Vec<String>), Fault> {
    let call = Call { names, name: "one_hot", col, args };
    call.arity(2)?;
    let input = string(names, &args[0])?;
    let rule = "`one_hot` categories must be a list of literal strings, like ['a', 'b']";
    let Kind::List(items) = &args[1].kind else {
        return Err(Fault::new(args[1].col, rule));
    };
    if items.is_empty() {
        return Err(Fault::new(args[1].col, "`one_hot` needs at least one category"));
    }
    let mut categories: Vec<String> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        let Kind::Str(s) = &item.kind else {
            return Err(Fault::new(item.col, rule));
        };
        if !seen.insert(s.as_str()) {
            return Err(Fault::new(item.col, format!("duplicate category '{s}' in `one_hot`")));
        }
        categories.push(s.clone());
    }
    Ok((input, categories))
}

struct Call<'a> {
    names: &'a Names,
    name: &'a str,
    col: usize,
    args: &'a [Expr],
}

impl Call<'_> {
    fn arity(&self, n: usize) -> Result<(), Fault> {
        if self.args.len() == n {
            return Ok(());
        }
        let s = if n == 1 { "" } else { "s" };
        let message = format!("`{}` takes {n} argument{s}, got {}", self.name, self.args.len());
        Err(Fault::new(self.col, message))
    }

    fn at_least(&self, n: usize) -> Result<(), Fault> {
        if self.args.len() >= n {
            return Ok(());
        }
        let message = format!("`{}` takes at least {n} arguments, got {}", self.name, self.args.len());
        Err(Fault::new(self.col, message))
    }

    fn num(&self, i: usize) -> Result<Num, Fault> {
        num(self.names, &self.args[i])
    }

    fn unary(&self, op: impl Fn(f64) -> f64 + Send + Sync + 'static) -> Result<Code, Fault> {
        self.arity(1)?;
        Ok(Code::Num(map(self.num(0)?, op).into()))
    }

    fn binary(&self, op: impl Fn(f64, f64) -> f64 + Send + Sync + 'static) -> Result<Code, Fault> {
        self.arity(2)?;
        Ok(Code::Num(zip(self.num(0)?, self.num(1)?, op).into()))
    }

    fn fold(&self, op: impl Fn(f64, f64) -> f64 + Copy + Send + Sync + 'static) -> Result<Code, Fault> {
        self.at_least(2)?;
        let mut acc = self.num(0)?;
        for i in 1..self.args.len() {
            acc = zip(acc, self.num(i)?, op).into();
        }
        Ok(Code::Num(acc))
    }

    fn clamp(&self) -> Result<Code, Fault> {
        self.arity(3)?;
        let (x, lo, hi) = (self.num(0)?, self.num(1)?, self.num(2)?);
        if let (Some(lo), Some(hi)) = (lo.constant(), hi.constant()) {
            if lo > hi {
                let message = format!("`clamp` lower bound {lo} is above its upper bound {hi}");
                return Err(Fault::new(self.args[1].col, message));
            }
            return Ok(Code::Num(map(x, move |v| clamp(v, lo, hi)).into()));
        }
        Ok(Code::Num(lift_all([x, lo, hi], |[v, lo, hi]| clamp(v, lo, hi))))
    }

    fn haversine(&self) -> Result<Code, Fault> {
        self.arity(4)?;
        let args = [self.num(0)?, self.num(1)?, self.num(2)?, self.num(3)?];
        Ok(Code::Num(lift_all(args, |[lat1, lon1, lat2, lon2]| haversine(lat1, lon1, lat2, lon2))))
    }

    fn coalesce(&self) -> Result<Code, Fault> {
        self.at_least(2)?;
        let rest = &self.args[1..];
        match compile(self.names, &self.args[0])? {
            Code::Num(first) => {
                let rest: Vec<Num> = rest.iter().map(|a| num(self.names, a)).collect::<Result<_, _>>()?;
                let mut acc = first;
                for next in rest {
                    // Checked after every argument was type-checked: a constant that is
                    // present makes the remaining arguments irrelevant.
                    if acc.constant().is_some_and(|c| !c.is_nan()) {
                        break;
                    }
                    acc = zip(acc, next, |x, y| if x.is_nan() { y } else { x }).into();
                }
                Ok(Code::Num(acc))
            }
            Code::Str(first) => {
                let mut items = vec![first];
                for arg in rest {
                    items.push(string(self.names, arg)?);
                }
                let present = |s: &Str| matches!(s, Str::Lit(l) if !l.is_empty());
                if let Some(k) = items.iter().position(present) {
                    items.truncate(k + 1);
                }
                if items.len() == 1 {
                    return Ok(Code::Str(items.remove(0)));
                }
                Ok(Code::Str(Str::Coalesce(items)))
            }
            Code::Bool(_) => Err(expected("a number or string", &Type::Bool, self.args[0].col)),
        }
    }

    fn if_else(&self) -> Result<Code, Fault> {
        self.arity(3)?;
        let cond = boolean(self.names, &self.args[0])?;
        let (then, other) = (&self.args[1], &self.args[2]);
        let code = match (cond, compile(self.names, then)?) {
            (Bool::Const(c), Code::Num(a)) => Code::Num(pick(c, a, num(self.names, other)?)),
            (Bool::Const(c), Code::Bool(a)) => Code::Bool(pick(c, a, boolean(self.names, other)?)),
            (Bool::Const(c), Code::Str(a)) => Code::Str(pick(c, a, string(self.names, other)?)),
            (Bool::Dyn(c), Code::Num(a)) => {
                let (a, b) = (a.into_fn(), num(self.names, other)?.into_fn());
                Code::Num(Num::Dyn(Box::new(move |f| if c(f) { a(f) } else { b(f) })))
            }
            (Bool::Dyn(c), Code::Bool(a)) => {
                let (a, b) = (a.into_fn(), boolean(self.names, other)?.into_fn());
                Code::Bool(Bool::Dyn(Box::new(move |f| if c(f) { a(f) } else { b(f) })))
            }
            (Bool::Dyn(c), Code::Str(a)) => {
                Code::Str(Str::If(c, Box::new(a), Box::new(string(self.names, other)?)))
            }
        };
        Ok(code)
    }

    fn is_missing(&self) -> Result<Code, Fault> {
        self.arity(1)?;
        let code = match compile(self.names, &self.args[0])? {
            Code::Num(x) => Bool::from(map(x, f64::is_nan)),
            Code::Str(Str::Lit(s)) => Bool::Const(s.is_empty()),
            Code::Str(s) => Bool::Dyn(Box::new(move |f| s.eval(f).is_empty())),
            Code::Bool(_) => {
                return Err(expected("a number or string", &Type::Bool, self.args[0].col));
            }
        };
        Ok(Code::Bool(code))
    }

    fn num_of_bool(&self) -> Result<Code, Fault> {
        self.arity(1)?;
        let code = match boolean(self.names, &self.args[0])? {
            Bool::Const(b) => Num::Const(f64::from(u8::from(b))),
            Bool::Dyn(g) => Num::Dyn(Box::new(move |f| f64::from(u8::from(g(f))))),
        };
        Ok(Code::Num(code))
    }

    fn bucketize(&self) -> Result<Code, Fault> {
        self.arity(2)?;
        let x = self.num(0)?;
        let list = &self.args[1];
        let rule = "`bucketize` boundaries must be literal numbers in ascending order";
        let Kind::List(items) = &list.kind else {
            return Err(Fault::new(list.col, rule));
        };
        if items.is_empty() {
            return Err(Fault::new(list.col, "`bucketize` needs at least one boundary"));
        }
        let mut bounds: Vec<f64> = Vec::with_capacity(items.len());
        for item in items {
            let value = match &item.kind {
                Kind::Num(v) => *v,
                Kind::Neg(inner) => match inner.kind {
                    Kind::Num(v) => -v,
                    _ => return Err(Fault::new(item.col, rule)),
                },
                _ => return Err(Fault::new(item.col, rule)),
            };
            if value.is_nan() || bounds.last().is_some_and(|&prev| prev >= value) {
                return Err(Fault::new(item.col, rule));
            }
            bounds.push(value);
        }
        Ok(Code::Num(map(x, move |v| bucket(&bounds, v)).into()))
    }
}

fn pick<T>(cond: bool, a: T, b: T) -> T {
    if cond { a } else { b }
}

/// NaN stays missing; a NaN bound means "no bound" (like `min`/`max` skipping NaN).
/// Unlike `f64::clamp` this never panics on crossed bounds known only at run time: the
/// upper bound wins.
pub(super) fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() { x } else { x.max(lo).min(hi) }
}

pub(super) fn bucket(bounds: &[f64], x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss)] // a boundary count is far below 2^52
    let index = bounds.partition_point(|&b| b <= x) as f64;
    index
}

/// Great-circle distance in km between two points given in degrees.
pub(super) fn haversine(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let half_dlat = (p2 - p1) / 2.0;
    let half_dlon = (lon2 - lon1).to_radians() / 2.0;
    let a = half_dlat.sin().powi(2) + p1.cos() * p2.cos() * half_dlon.sin().powi(2);
    // Rounding can push `a` a hair above 1 for antipodes; clamp (not min) keeps NaN as NaN.
    2.0 * EARTH_RADIUS_KM * a.sqrt().clamp(0.0, 1.0).asin()
}

/// 0–23 from unix seconds, UTC. `rem_euclid` is floor-based, so times before 1970 work.
pub(super) fn hour_of_day(ts: f64) -> f64 {
    if !ts.is_finite() {
        return f64::NAN;
    }
    // `rem_euclid` of a tiny negative number rounds up to exactly one day.
    (ts.rem_euclid(SECONDS_PER_DAY) / 3600.0).floor().min(23.0)
}

/// 0 = Monday … 6 = Sunday from unix seconds, UTC; 1970-01-01 was a Thursday (3).
pub(super) fn day_of_week(ts: f64) -> f64 {
    if !ts.is_finite() {
        return f64::NAN;
    }
    ((ts / SECONDS_PER_DAY).floor() + 3.0).rem_euclid(7.0)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // these helpers return exact small integers
mod tests {
    use super::*;

    #[test]
    fn time_of_day_and_week_in_utc() {
        // Python: datetime.fromtimestamp(t, timezone.utc) -> (hour, weekday())
        let cases = [
            (1_764_000_000.0, 16.0, 0.0), // 2025-11-24 16:00 Monday
            (1_700_000_000.0, 22.0, 1.0), // 2023-11-14 22:13:20 Tuesday
            (951_782_400.0, 0.0, 1.0),    // 2000-02-29 00:00 Tuesday
            (0.0, 0.0, 3.0),              // 1970-01-01 Thursday
            (-1.0, 23.0, 2.0),            // 1969-12-31 23:59:59 Wednesday
            (-86_400.5, 23.0, 1.0),       // 1969-12-30 23:59:59.5 Tuesday
            (-1e-9, 23.0, 2.0),
        ];
        for (ts, hour, dow) in cases {
            assert_eq!(hour_of_day(ts), hour, "hour_of_day({ts})");
            assert_eq!(day_of_week(ts), dow, "day_of_week({ts})");
        }
        assert_eq!(hour_of_day(1_764_003_599.9), 16.0);
        assert_eq!(day_of_week(1_764_000_000.0 + 6.0 * SECONDS_PER_DAY), 6.0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(hour_of_day(bad).is_nan());
            assert!(day_of_week(bad).is_nan());
        }
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Python, same formula: Stockholm -> Gothenburg = 396.8929665787369 km.
        let d = haversine(59.3293, 18.0686, 57.7089, 11.9746);
        assert!((d - 396.892_966_578_736_9).abs() < 1e-9, "{d}");
        assert_eq!(haversine(10.0, 20.0, 10.0, 20.0), 0.0);
        let antipodes = haversine(0.0, 0.0, 0.0, 180.0);
        assert!((antipodes - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
        assert!(haversine(f64::NAN, 0.0, 0.0, 0.0).is_nan());
    }

    #[test]
    fn bucket_counts_boundaries_at_or_below() {
        let b = [0.0, 10.0, 100.0];
        assert_eq!(bucket(&b, -5.0), 0.0);
        assert_eq!(bucket(&b, 0.0), 1.0);
        assert_eq!(bucket(&b, 9.99), 1.0);
        assert_eq!(bucket(&b, 10.0), 2.0);
        assert_eq!(bucket(&b, 100.0), 3.0);
        assert_eq!(bucket(&b, f64::INFINITY), 3.0);
        assert!(bucket(&b, f64::NAN).is_nan());
    }

    #[test]
    fn clamp_keeps_missing_and_never_panics() {
        assert_eq!(clamp(5.0, 0.0, 1.0), 1.0);
        assert_eq!(clamp(-5.0, 0.0, 1.0), 0.0);
        assert!(clamp(f64::NAN, 0.0, 1.0).is_nan());
        assert_eq!(clamp(5.0, f64::NAN, 1.0), 1.0);
        assert_eq!(clamp(5.0, 3.0, 1.0), 1.0);
    }

    #[test]
    fn every_listed_name_is_a_function() {
        let names = Names::new();
        for name in NAMES {
            let err = call(&names, name, 1, &[]).err().map(|f| f.message).unwrap_or_default();
            assert!(err.contains("argument") || err.contains("whole expression"), "{name}: {err}");
        }
    }
}
