//! Compiled expressions: closures over a [`Frame`], with constants and slot reads kept as
//! plain data so that operators over them fold at compile time or read the frame directly
//! instead of paying another indirect call.

use super::frame::{Frame, truthy};

pub(super) type Eval<R> = Box<dyn Fn(&Frame) -> R + Send + Sync>;

pub(super) enum Num {
    Const(f64),
    Slot(usize),
    Dyn(Eval<f64>),
}

pub(super) enum Bool {
    Const(bool),
    Dyn(Eval<bool>),
}

/// Strings are a small tree rather than closures: a closure cannot hand out a `&str`
/// borrowed from what it captured, and copying into a new `String` would allocate per row.
pub(super) enum Str {
    Lit(String),
    Slot(usize),
    /// First non-empty; empty when all are.
    Coalesce(Vec<Str>),
    If(Eval<bool>, Box<Str>, Box<Str>),
}

impl Num {
    pub fn eval(&self, f: &Frame) -> f64 {
        match self {
            Num::Const(c) => *c,
            Num::Slot(i) => f.nums[*i],
            Num::Dyn(g) => g(f),
        }
    }

    pub fn constant(&self) -> Option<f64> {
        match self {
            Num::Const(c) => Some(*c),
            _ => None,
        }
    }

    pub fn into_fn(self) -> Eval<f64> {
        match self {
            Num::Const(c) => Box::new(move |_| c),
            Num::Slot(i) => Box::new(move |f| f.nums[i]),
            Num::Dyn(g) => g,
        }
    }
}

impl Bool {
    pub fn slot(i: usize) -> Bool {
        Bool::Dyn(Box::new(move |f| truthy(f.nums[i])))
    }

    pub fn eval(&self, f: &Frame) -> bool {
        match self {
            Bool::Const(b) => *b,
            Bool::Dyn(g) => g(f),
        }
    }

    pub fn into_fn(self) -> Eval<bool> {
        match self {
            Bool::Const(b) => Box::new(move |_| b),
            Bool::Dyn(g) => g,
        }
    }

    pub fn not(self) -> Bool {
        match self {
            Bool::Const(b) => Bool::Const(!b),
            Bool::Dyn(g) => Bool::Dyn(Box::new(move |f| !g(f))),
        }
    }

    /// `and` when `all` is true, else `or`. A constant operand decides or drops out,
    /// which is safe because evaluation has no side effects.
    pub fn logic(all: bool, a: Bool, b: Bool) -> Bool {
        match (a, b) {
            (Bool::Const(x), other) | (other, Bool::Const(x)) => {
                if x == all {
                    other
                } else {
                    Bool::Const(x)
                }
            }
            (Bool::Dyn(g), Bool::Dyn(h)) if all => Bool::Dyn(Box::new(move |f| g(f) && h(f))),
            (Bool::Dyn(g), Bool::Dyn(h)) => Bool::Dyn(Box::new(move |f| g(f) || h(f))),
        }
    }

    pub fn eq(a: Bool, b: Bool, want_equal: bool) -> Bool {
        match (a, b) {
            (Bool::Const(x), Bool::Const(y)) => Bool::Const((x == y) == want_equal),
            (a, b) => {
                let (g, h) = (a.into_fn(), b.into_fn());
                Bool::Dyn(Box::new(move |f| (g(f) == h(f)) == want_equal))
            }
        }
    }
}

impl Str {
    pub fn eval<'a>(&'a self, f: &'a Frame) -> &'a str {
        match self {
            Str::Lit(s) => s,
            Str::Slot(i) => &f.strs[*i],
            Str::Coalesce(items) => items.iter().map(|s| s.eval(f)).find(|s| !s.is_empty()).unwrap_or(""),
            Str::If(c, a, b) => {
                if c(f) {
                    a.eval(f)
                } else {
                    b.eval(f)
                }
            }
        }
    }

    pub fn eq(a: Str, b: Str, want_equal: bool) -> Bool {
        match (a, b) {
            (Str::Lit(x), Str::Lit(y)) => Bool::Const((x == y) == want_equal),
            (a, b) => Bool::Dyn(Box::new(move |f| (a.eval(f) == b.eval(f)) == want_equal)),
        }
    }
}

/// Reading one operand, monomorphised per kind so that `zip` over slots and constants
/// compiles to a single closure with no inner calls.
trait Operand: Send + Sync + 'static {
    fn get(&self, f: &Frame) -> f64;
}

impl Operand for f64 {
    fn get(&self, _: &Frame) -> f64 {
        *self
    }
}

struct At(usize);

impl Operand for At {
    fn get(&self, f: &Frame) -> f64 {
        f.nums[self.0]
    }
}

impl Operand for Eval<f64> {
    fn get(&self, f: &Frame) -> f64 {
        self(f)
    }
}

/// Result of lifting an operator: a folded constant or a closure.
pub(super) enum Lifted<R> {
    Const(R),
    Dyn(Eval<R>),
}

impl From<Lifted<f64>> for Num {
    fn from(l: Lifted<f64>) -> Num {
        match l {
            Lifted::Const(c) => Num::Const(c),
            Lifted::Dyn(g) => Num::Dyn(g),
        }
    }
}

impl From<Lifted<bool>> for Bool {
    fn from(l: Lifted<bool>) -> Bool {
        match l {
            Lifted::Const(c) => Bool::Const(c),
            Lifted::Dyn(g) => Bool::Dyn(g),
        }
    }
}

pub(super) fn map<R, F>(x: Num, op: F) -> Lifted<R>
where
    R: 'static,
    F: Fn(f64) -> R + Send + Sync + 'static,
{
    match x {
        Num::Const(c) => Lifted::Const(op(c)),
        Num::Slot(i) => Lifted::Dyn(Box::new(move |f| op(f.nums[i]))),
        Num::Dyn(g) => Lifted::Dyn(Box::new(move |f| op(g(f)))),
    }
}

pub(super) fn zip<R, F>(a: Num, b: Num, op: F) -> Lifted<R>
where
    R: 'static,
    F: Fn(f64, f64) -> R + Send + Sync + 'static,
{
    fn make<R, A: Operand, B: Operand>(
        a: A,
        b: B,
        op: impl Fn(f64, f64) -> R + Send + Sync + 'static,
    ) -> Lifted<R> {
        Lifted::Dyn(Box::new(move |f| op(a.get(f), b.get(f))))
    }
    match (a, b) {
        (Num::Const(x), Num::Const(y)) => Lifted::Const(op(x, y)),
        (Num::Const(x), Num::Slot(j)) => make(x, At(j), op),
        (Num::Const(x), Num::Dyn(h)) => make(x, h, op),
        (Num::Slot(i), Num::Const(y)) => make(At(i), y, op),
        (Num::Slot(i), Num::Slot(j)) => make(At(i), At(j), op),
        (Num::Slot(i), Num::Dyn(h)) => make(At(i), h, op),
        (Num::Dyn(g), Num::Const(y)) => make(g, y, op),
        (Num::Dyn(g), Num::Slot(j)) => make(g, At(j), op),
        (Num::Dyn(g), Num::Dyn(h)) => make(g, h, op),
    }
}

/// Lifts an operator of any arity; folds when every argument is a constant.
pub(super) fn lift_all<const N: usize, F>(args: [Num; N], op: F) -> Num
where
    F: Fn([f64; N]) -> f64 + Send + Sync + 'static,
{
    let mut values = [0.0; N];
    let mut all_const = true;
    for (value, arg) in values.iter_mut().zip(&args) {
        match arg.constant() {
            Some(c) => *value = c,
            None => all_const = false,
        }
    }
    if all_const {
        return Num::Const(op(values));
    }
    let fns = args.map(Num::into_fn);
    Num::Dyn(Box::new(move |f| op(std::array::from_fn(|k| fns[k](f)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame { nums: vec![2.0, 10.0, 1.0, 0.0], strs: vec!["x".into(), String::new()] }
    }

    fn dyn_num(v: f64) -> Num {
        Num::Dyn(Box::new(move |_| v))
    }

    #[test]
    fn zip_reads_every_operand_kind_in_order() {
        let kind = |k| [Num::Const(3.0), Num::Slot(1), dyn_num(5.0)].into_iter().nth(k).unwrap();
        let values = [3.0, 10.0, 5.0];
        for i in 0..3 {
            for j in 0..3 {
                let got = Num::from(zip(kind(i), kind(j), |x, y| x - y)).eval(&frame());
                assert!((got - (values[i] - values[j])).abs() < 1e-12, "{i},{j}: {got}");
            }
        }
    }

    #[test]
    fn constants_fold() {
        assert!(
            matches!(Num::from(zip(Num::Const(1.0), Num::Const(2.0), |a, b| a + b)), Num::Const(v) if v > 2.9)
        );
        assert!(matches!(Num::from(map(Num::Const(4.0), f64::sqrt)), Num::Const(v) if v > 1.9));
        assert!(
            matches!(lift_all([Num::Const(1.0), Num::Const(2.0)], |[a, b]| a * b), Num::Const(v) if v > 1.9)
        );
        assert!(matches!(lift_all([Num::Slot(0), Num::Const(2.0)], |[a, b]| a * b), Num::Dyn(_)));
        assert!(matches!(Bool::logic(true, Bool::Const(false), Bool::slot(2)), Bool::Const(false)));
        assert!(matches!(Bool::logic(false, Bool::Const(true), Bool::slot(3)), Bool::Const(true)));
        assert!(matches!(Str::eq(Str::Lit("a".into()), Str::Lit("a".into()), true), Bool::Const(true)));
    }

    #[test]
    fn logic_with_a_neutral_constant_keeps_the_other_side() {
        let f = frame();
        assert!(Bool::logic(true, Bool::Const(true), Bool::slot(2)).eval(&f));
        assert!(!Bool::logic(true, Bool::slot(3), Bool::Const(true)).eval(&f));
        assert!(!Bool::logic(false, Bool::Const(false), Bool::slot(3)).eval(&f));
        assert!(Bool::logic(false, Bool::slot(3), Bool::slot(2)).eval(&f));
        assert!(!Bool::logic(true, Bool::slot(3), Bool::slot(2)).eval(&f));
    }

    #[test]
    fn strings_evaluate_without_copying() {
        let f = frame();
        let s = Str::Coalesce(vec![Str::Slot(1), Str::Slot(0), Str::Lit("z".into())]);
        assert_eq!(s.eval(&f), "x");
        let s = Str::If(Box::new(|_| false), Box::new(Str::Lit("a".into())), Box::new(Str::Slot(1)));
        assert_eq!(s.eval(&f), "");
    }
}
