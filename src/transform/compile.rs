//! Type checking and lowering of one expression tree to [`Code`], in a single pass.

use std::collections::HashMap;

use super::code::{Bool, Num, Str, map, zip};
use super::error::Fault;
use super::frame::{Slot, Type};
use super::functions;
use super::parser::{BinOp, Expr, Kind};

/// Every name visible to the expression being compiled.
pub(super) type Names = HashMap<String, (Slot, Type)>;

pub(super) enum Code {
    Num(Num),
    Bool(Bool),
    Str(Str),
}

impl Code {
    pub fn ty(&self) -> Type {
        match self {
            Code::Num(_) => Type::Num,
            Code::Bool(_) => Type::Bool,
            Code::Str(_) => Type::Str,
        }
    }
}

pub(super) fn compile(names: &Names, e: &Expr) -> Result<Code, Fault> {
    match &e.kind {
        Kind::Num(v) => Ok(Code::Num(Num::Const(*v))),
        Kind::Str(s) => Ok(Code::Str(Str::Lit(s.clone()))),
        Kind::Bool(b) => Ok(Code::Bool(Bool::Const(*b))),
        Kind::Name(name) => lookup(names, name, e.col),
        Kind::List(_) => Err(Fault::new(
            e.col,
            "a list `[...]` is only allowed as the last argument of `bucketize` or `one_hot`",
        )),
        Kind::Neg(x) => Ok(Code::Num(map(num(names, x)?, |v| -v).into())),
        Kind::Not(x) => Ok(Code::Bool(boolean(names, x)?.not())),
        Kind::Binary { op, op_col, lhs, rhs } => binary(names, *op, *op_col, lhs, rhs),
        Kind::Call { name, args } => functions::call(names, name, e.col, args),
    }
}

pub(super) fn num(names: &Names, e: &Expr) -> Result<Num, Fault> {
    match compile(names, e)? {
        Code::Num(n) => Ok(n),
        other => Err(expected("a number", &other.ty(), e.col)),
    }
}

pub(super) fn boolean(names: &Names, e: &Expr) -> Result<Bool, Fault> {
    match compile(names, e)? {
        Code::Bool(b) => Ok(b),
        other => Err(expected("a bool", &other.ty(), e.col)),
    }
}

pub(super) fn string(names: &Names, e: &Expr) -> Result<Str, Fault> {
    match compile(names, e)? {
        Code::Str(s) => Ok(s),
        other => Err(expected("a string", &other.ty(), e.col)),
    }
}

pub(super) fn expected(what: &str, got: &Type, col: usize) -> Fault {
    Fault::new(col, format!("expected {what}, got {got}"))
}

fn lookup(names: &Names, name: &str, col: usize) -> Result<Code, Fault> {
    match names.get(name) {
        Some((Slot::Num(i), Type::Bool)) => Ok(Code::Bool(Bool::slot(*i))),
        Some((Slot::Num(i), _)) => Ok(Code::Num(Num::Slot(*i))),
        Some((Slot::Str(i), _)) => Ok(Code::Str(Str::Slot(*i))),
        Some((Slot::Vector { .. }, ty)) => Err(Fault::new(
            col,
            format!("`{name}` is a {ty} from `one_hot`; it can feed the model but not an expression"),
        )),
        None if functions::NAMES.contains(&name) => {
            Err(Fault::new(col, format!("`{name}` is a function; call it as `{name}(...)`")))
        }
        None => {
            let hint = did_you_mean(name, names.keys().map(String::as_str));
            Err(Fault::new(col, format!("unknown name `{name}`{hint}")))
        }
    }
}

// `==` on numbers is meant to be exact IEEE equality, as the spec says.
#[allow(clippy::float_cmp)]
fn binary(names: &Names, op: BinOp, op_col: usize, lhs: &Expr, rhs: &Expr) -> Result<Code, Fault> {
    let nums = || Ok::<_, Fault>((num(names, lhs)?, num(names, rhs)?));
    let code = match op {
        BinOp::Add => Code::Num(arith(nums()?, |a, b| a + b)),
        BinOp::Sub => Code::Num(arith(nums()?, |a, b| a - b)),
        BinOp::Mul => Code::Num(arith(nums()?, |a, b| a * b)),
        BinOp::Div => Code::Num(arith(nums()?, |a, b| a / b)),
        BinOp::Rem => Code::Num(arith(nums()?, |a, b| a % b)),
        BinOp::Lt => Code::Bool(compare(nums()?, |a, b| a < b)),
        BinOp::Le => Code::Bool(compare(nums()?, |a, b| a <= b)),
        BinOp::Gt => Code::Bool(compare(nums()?, |a, b| a > b)),
        BinOp::Ge => Code::Bool(compare(nums()?, |a, b| a >= b)),
        BinOp::And | BinOp::Or => {
            Code::Bool(Bool::logic(op == BinOp::And, boolean(names, lhs)?, boolean(names, rhs)?))
        }
        BinOp::Eq | BinOp::Ne => {
            let want_equal = op == BinOp::Eq;
            match (compile(names, lhs)?, compile(names, rhs)?) {
                // IEEE: NaN is unequal to everything, so `!=` with a missing value is true.
                (Code::Num(a), Code::Num(b)) if want_equal => Code::Bool(zip(a, b, |x, y| x == y).into()),
                (Code::Num(a), Code::Num(b)) => Code::Bool(zip(a, b, |x, y| x != y).into()),
                (Code::Bool(a), Code::Bool(b)) => Code::Bool(Bool::eq(a, b, want_equal)),
                (Code::Str(a), Code::Str(b)) => Code::Bool(Str::eq(a, b, want_equal)),
                (a, b) => {
                    let message =
                        format!("cannot compare {} with {} using `{}`", a.ty(), b.ty(), op.symbol());
                    return Err(Fault::new(op_col, message));
                }
            }
        }
    };
    Ok(code)
}

fn arith((a, b): (Num, Num), op: impl Fn(f64, f64) -> f64 + Send + Sync + 'static) -> Num {
    zip(a, b, op).into()
}

fn compare((a, b): (Num, Num), op: impl Fn(f64, f64) -> bool + Send + Sync + 'static) -> Bool {
    zip(a, b, op).into()
}

/// " (did you mean `x`?)" for the closest candidate, else "". A third of the word may
/// be wrong (at least one edit), so short names do not suggest unrelated ones.
pub(super) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let limit = (word.chars().count() / 3).max(1);
    let best = candidates.into_iter().map(|c| (edit_distance(word, c), c)).filter(|&(d, _)| d <= limit).min();
    best.map_or_else(String::new, |(_, c)| format!(" (did you mean `{c}`?)"))
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours (the commonest typo) each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j - 1] + cost).min(rows[i - 1][j] + 1).min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("amout", "amount"), 1);
        assert_eq!(edit_distance("lg", "ln"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("cta", "cat"), 1);
        assert_eq!(edit_distance("cta", "a"), 2);
    }

    #[test]
    fn suggestions_pick_the_closest_and_skip_far_ones() {
        assert_eq!(did_you_mean("amout", ["amount", "hours", "amounts"]), " (did you mean `amount`?)");
        assert_eq!(did_you_mean("zzz", ["amount", "hours"]), "");
        assert_eq!(did_you_mean("cta", ["a", "cat"]), " (did you mean `cat`?)");
        assert_eq!(did_you_mean("ab", ["xy"]), "");
    }
}
