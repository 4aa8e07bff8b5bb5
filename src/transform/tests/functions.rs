use super::{Value, boolean, close, eval, num, string};

#[test]
fn unary_math() {
    assert!(close(num("ln(b)"), 10f64.ln()));
    assert!(close(num("log1p(a)"), 3f64.ln()));
    assert!(close(num("exp(a)"), 2f64.exp()));
    assert!(close(num("sqrt(a * 8)"), 4.0));
    assert_eq!(num("abs(-b)"), 10.0);
    assert_eq!(num("floor(-2.5)"), -3.0);
    assert_eq!(num("ceil(a / 4)"), 1.0);
    assert_eq!(num("round(2.5)"), 3.0, "half away from zero, as f64::round");
    assert_eq!(num("round(-a - 0.5)"), -3.0);
    assert_eq!(num("round(a + 0.4)"), 2.0);
    assert!(num("ln(-a)").is_nan());
    assert_eq!(num("ln(0)"), f64::NEG_INFINITY);
    for f in ["ln", "log1p", "exp", "sqrt", "abs", "floor", "ceil", "round"] {
        assert!(num(&format!("{f}(m)")).is_nan(), "{f} of missing");
    }
}

#[test]
fn pow() {
    assert_eq!(num("pow(a, b)"), 1024.0);
    assert_eq!(num("pow(4, 0.5)"), 2.0);
    assert!(num("pow(m, 2)").is_nan());
}

#[test]
fn min_and_max_skip_missing() {
    assert_eq!(num("min(a, b)"), 2.0);
    assert_eq!(num("max(a, b)"), 10.0);
    assert_eq!(num("min(b, 7, a, 5)"), 2.0);
    assert_eq!(num("max(a, m, 3)"), 3.0);
    assert_eq!(num("min(m, b)"), 10.0);
    assert_eq!(num("max(m, a)"), 2.0);
    assert!(num("min(m, m)").is_nan());
    assert!(num("max(m, nan, m)").is_nan());
    assert_eq!(num("max(nan, 1)"), 1.0);
}

#[test]
fn clamp() {
    assert_eq!(num("clamp(b, 0, 5)"), 5.0);
    assert_eq!(num("clamp(-b, 0, 5)"), 0.0);
    assert_eq!(num("clamp(a, 0, 5)"), 2.0);
    assert_eq!(num("clamp(b, a, 5)"), 5.0, "run-time bound");
    assert_eq!(num("clamp(0, a, b)"), 2.0);
    assert!(num("clamp(m, 0, 5)").is_nan(), "missing stays missing");
    assert!(num("clamp(m, a, b)").is_nan());
}

#[test]
fn coalesce_numbers_and_strings() {
    assert_eq!(num("coalesce(m, a)"), 2.0);
    assert_eq!(num("coalesce(a, b)"), 2.0);
    assert_eq!(num("coalesce(m, m, 7)"), 7.0);
    assert_eq!(num("coalesce(m, 0)"), 0.0);
    assert!(num("coalesce(m, nan)").is_nan());
    assert_eq!(num("coalesce(3, m)"), 3.0);
    assert_eq!(string("coalesce(blank, cat)"), "travel");
    assert_eq!(string("coalesce(blank, 'unknown')"), "unknown");
    assert_eq!(string("coalesce(cat, 'unknown')"), "travel");
    assert_eq!(string("coalesce(blank, '')"), "");
    assert_eq!(string("coalesce('x', blank)"), "x");
}

#[test]
fn if_on_every_type() {
    assert_eq!(num("if(a < b, a, b)"), 2.0);
    assert_eq!(num("if(a > b, a, b)"), 10.0);
    assert_eq!(num("if(true, 1, a)"), 1.0);
    assert_eq!(num("if(false, 1, a)"), 2.0);
    assert!(boolean("if(yes, yes, no)"));
    assert!(!boolean("if(no, yes, no)"));
    assert_eq!(string("if(cat == 'travel', 'far', cat)"), "far");
    assert_eq!(string("if(no, 'far', cat)"), "travel");
    assert_eq!(string("if(true, 'x', cat)"), "x");
}

#[test]
fn is_missing() {
    assert!(boolean("is_missing(m)"));
    assert!(!boolean("is_missing(a)"));
    assert!(boolean("is_missing(a / 0 - a / 0)"));
    assert!(boolean("is_missing(blank)"));
    assert!(!boolean("is_missing(cat)"));
    assert!(boolean("is_missing('')"));
    assert!(boolean("is_missing(nan)"));
}

#[test]
fn haversine() {
    // Python, same formula and radius: 396.8929665787369 km.
    let d = num("haversine(59.3293, 18.0686, 57.7089, 11.9746)");
    assert!((d - 396.892_966_578_736_9).abs() < 1e-9, "{d}");
    assert_eq!(num("haversine(a, b, a, b)"), 0.0);
    let one_degree = num("haversine(0, 0, 0, a - 1)");
    assert!((one_degree - 111.195_08).abs() < 1e-3, "{one_degree}");
    assert!(num("haversine(m, 0, 0, 0)").is_nan());
}

#[test]
fn time_functions() {
    assert_eq!(num("hour_of_day(ts)"), 16.0);
    assert_eq!(num("day_of_week(ts)"), 0.0, "2025-11-24 was a Monday");
    assert_eq!(num("day_of_week(ts + 86400 * 6)"), 6.0);
    assert_eq!(num("hour_of_day(ts - 1)"), 15.0);
    assert_eq!(num("day_of_week(0)"), 3.0, "1970-01-01 was a Thursday");
    assert_eq!(num("hour_of_day(-1)"), 23.0);
    assert_eq!(num("day_of_week(-1)"), 2.0);
    assert!(num("hour_of_day(m)").is_nan());
    assert!(num("day_of_week(m)").is_nan());
    assert_eq!(num("seconds_between(ts, ts + 90)"), 90.0);
    assert_eq!(num("seconds_between(b, a)"), -8.0);
    assert!(num("seconds_between(m, ts)").is_nan());
}

#[test]
fn bucketize_edges() {
    let bucket = |x: &str| num(&format!("bucketize({x}, [-1, 0, 2, 10])"));
    assert_eq!(bucket("-5"), 0.0);
    assert_eq!(bucket("-1"), 1.0, "a value on a boundary belongs to the bucket above");
    assert_eq!(bucket("-0.5"), 1.0);
    assert_eq!(bucket("0"), 2.0);
    assert_eq!(bucket("a"), 3.0);
    assert_eq!(bucket("b - 0.001"), 3.0);
    assert_eq!(bucket("b"), 4.0);
    assert_eq!(bucket("b * 1000"), 4.0);
    assert!(bucket("m").is_nan());
    assert_eq!(num("bucketize(a, [5])"), 0.0);
}

#[test]
fn one_hot() {
    let v = eval("one_hot(cat, ['grocery', 'travel', 'online'])");
    assert_eq!(v, Value::Vector(vec![0.0, 1.0, 0.0]));
    let v = eval("one_hot(cat, ['travel'])");
    assert_eq!(v, Value::Vector(vec![1.0]));
    let v = eval("one_hot(blank, ['grocery', 'travel'])");
    assert_eq!(v, Value::Vector(vec![0.0, 0.0]), "unknown or missing category: all zeros");
    let v = eval("one_hot(coalesce(blank, 'online'), ['grocery', 'online'])");
    assert_eq!(v, Value::Vector(vec![0.0, 1.0]));
}

#[test]
fn one_hot_with_many_categories() {
    let labels: Vec<String> = (0..40).map(|i| format!("'c{i}'")).collect();
    let with_travel = format!("one_hot(cat, [{}, 'travel'])", labels.join(", "));
    let Value::Vector(v) = eval(&with_travel) else { panic!("not a vector") };
    assert_eq!(v.len(), 41);
    assert_eq!(v[40], 1.0);
    assert_eq!(v.iter().sum::<f64>(), 1.0);
    let without = format!("one_hot(cat, [{}])", labels.join(", "));
    let Value::Vector(v) = eval(&without) else { panic!("not a vector") };
    assert!(v.iter().all(|&x| x == 0.0));
}

#[test]
fn num_of_bool() {
    assert_eq!(num("num(yes)"), 1.0);
    assert_eq!(num("num(no)"), 0.0);
    assert_eq!(num("num(a < b) + num(true)"), 2.0);
    assert_eq!(num("num(m > 0)"), 0.0);
}
