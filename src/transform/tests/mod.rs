//! End-to-end tests through the public API: declare inputs, define, run, read slots.

#![allow(clippy::float_cmp)] // expected values here are exact

mod errors;
mod functions;
mod operators;
mod program;

use super::{Compiler, Frame, Program, Slot, TransformError, Type};

/// The inputs every test expression can use, with their values:
/// `a` = 2, `b` = 10, `m` = NaN (missing), `ts` = 1764000000 (2025-11-24 16:00 UTC),
/// `yes` = true, `no` = false, `cat` = "travel", `blank` = "" (missing).
fn compiler() -> Compiler {
    let mut c = Compiler::new();
    for (name, ty) in [
        ("a", Type::Num),
        ("b", Type::Num),
        ("m", Type::Num),
        ("ts", Type::Num),
        ("yes", Type::Bool),
        ("no", Type::Bool),
        ("cat", Type::Str),
        ("blank", Type::Str),
    ] {
        c.input(name, ty).unwrap();
    }
    c
}

fn fill(program: &Program) -> Frame {
    let mut frame = program.frame();
    for (name, value) in
        [("a", 2.0), ("b", 10.0), ("m", f64::NAN), ("ts", 1_764_000_000.0), ("yes", 1.0), ("no", 0.0)]
    {
        let Some((Slot::Num(i), _)) = program.lookup(name) else { panic!("{name} has no number slot") };
        frame.nums[i] = value;
    }
    for (name, value) in [("cat", "travel"), ("blank", "")] {
        let Some((Slot::Str(i), _)) = program.lookup(name) else { panic!("{name} has no string slot") };
        frame.strs[i] = value.to_owned();
    }
    frame
}

#[derive(Debug, PartialEq)]
enum Value {
    Num(f64),
    Bool(bool),
    Str(String),
    Vector(Vec<f64>),
}

fn eval(expr: &str) -> Value {
    let mut c = compiler();
    let (slot, ty) = c.define("out", expr).unwrap_or_else(|e| panic!("{e}"));
    let program = c.finish();
    let mut frame = fill(&program);
    program.run(&mut frame);
    match (slot, ty) {
        (Slot::Num(i), Type::Bool) => {
            let v = frame.nums[i];
            assert!(v == 0.0 || v == 1.0, "bool stored as {v}");
            Value::Bool(v == 1.0)
        }
        (Slot::Num(i), Type::Num) => Value::Num(frame.nums[i]),
        (Slot::Str(i), Type::Str) => Value::Str(frame.strs[i].clone()),
        (Slot::Vector { start, len }, Type::Vector(n)) if n == len => {
            Value::Vector(frame.nums[start..start + len].to_vec())
        }
        other => panic!("slot and type disagree: {other:?}"),
    }
}

fn num(expr: &str) -> f64 {
    match eval(expr) {
        Value::Num(v) => v,
        other => panic!("`{expr}` gave {other:?}, not a number"),
    }
}

fn boolean(expr: &str) -> bool {
    match eval(expr) {
        Value::Bool(v) => v,
        other => panic!("`{expr}` gave {other:?}, not a bool"),
    }
}

fn string(expr: &str) -> String {
    match eval(expr) {
        Value::Str(v) => v,
        other => panic!("`{expr}` gave {other:?}, not a string"),
    }
}

fn error(expr: &str) -> TransformError {
    match compiler().define("out", expr) {
        Ok(ok) => panic!("`{expr}` compiled to {ok:?}"),
        Err(e) => e,
    }
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-12 * want.abs().max(1.0)
}
