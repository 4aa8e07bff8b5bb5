use std::collections::HashMap;
use std::fmt;

use super::code::{Bool, Num, Str};
use super::compile::{Code, Names, compile};
use super::error::{Fault, TransformError};
use super::frame::{Frame, Slot, Type};
use super::functions;
use super::parser::{Kind, parse};

/// Builds a [`Program`] from a feature view's inputs and on-demand features, in order.
#[derive(Default)]
pub struct Compiler {
    names: Names,
    inputs: Vec<String>,
    outputs: Vec<String>,
    labels: HashMap<String, Vec<String>>,
    steps: Vec<Step>,
    num_slots: usize,
    str_slots: usize,
}

/// The compiled on-demand features of one feature view. Immutable, so one instance
/// serves every request thread.
pub struct Program {
    names: Names,
    inputs: Vec<String>,
    outputs: Vec<String>,
    labels: HashMap<String, Vec<String>>,
    steps: Vec<Step>,
    num_slots: usize,
    str_slots: usize,
}

enum Step {
    Num { at: usize, code: Num },
    Bool { at: usize, code: Bool },
    Str { at: usize, code: Str },
    OneHot { start: usize, len: usize, input: Str, categories: Categories },
}

/// Few categories are found fastest by a scan; many by hashing.
enum Categories {
    Few(Vec<String>),
    Many(HashMap<String, usize>),
}

const SCAN_LIMIT: usize = 16;

impl Categories {
    fn new(labels: &[String]) -> Self {
        if labels.len() <= SCAN_LIMIT {
            Categories::Few(labels.to_vec())
        } else {
            Categories::Many(labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect())
        }
    }

    fn position(&self, s: &str) -> Option<usize> {
        match self {
            Categories::Few(labels) => labels.iter().position(|l| l == s),
            Categories::Many(index) => index.get(s).copied(),
        }
    }
}

impl Compiler {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an input value (request or precomputed feature). `ty` is Num, Bool or Str.
    ///
    /// # Errors
    /// A duplicate name, or a vector type.
    pub fn input(&mut self, name: &str, ty: Type) -> Result<Slot, TransformError> {
        let fail = |message: String| TransformError {
            feature: name.to_owned(),
            expr: String::new(),
            column: None,
            message,
        };
        if self.names.contains_key(name) {
            return Err(fail(format!("`{name}` is already declared")));
        }
        let slot = match ty {
            Type::Num | Type::Bool => Slot::Num(self.take_nums(1)),
            Type::Str => Slot::Str(self.take_str()),
            Type::Vector(_) => {
                return Err(fail(format!("an input must be a number, bool or string, not {ty}")));
            }
        };
        self.names.insert(name.to_owned(), (slot, ty));
        self.inputs.push(name.to_owned());
        Ok(slot)
    }

    /// Parses, type-checks and compiles one on-demand feature; its result is then visible
    /// to later definitions under `name`.
    ///
    /// # Errors
    /// A duplicate name, or any syntax, name, type, arity or argument mistake in `expr`.
    pub fn define(&mut self, name: &str, expr: &str) -> Result<(Slot, Type), TransformError> {
        let fail = |column: Option<usize>, message: String| TransformError {
            feature: name.to_owned(),
            expr: expr.to_owned(),
            column,
            message,
        };
        if self.names.contains_key(name) {
            return Err(fail(None, format!("`{name}` is already declared")));
        }
        let (step, slot, ty) = self.lower(name, expr).map_err(|f| fail(Some(f.col), f.message))?;
        self.steps.push(step);
        self.names.insert(name.to_owned(), (slot, ty.clone()));
        self.outputs.push(name.to_owned());
        Ok((slot, ty))
    }

    /// Compiles `expr` and reserves its output slot; nothing is reserved on error.
    fn lower(&mut self, feature: &str, expr: &str) -> Result<(Step, Slot, Type), Fault> {
        let ast = parse(expr)?;
        if let Kind::Call { name, args } = &ast.kind
            && name == "one_hot"
        {
            let (input, labels) = functions::one_hot(&self.names, ast.col, args)?;
            let len = labels.len();
            let start = self.take_nums(len);
            let step = Step::OneHot { start, len, input, categories: Categories::new(&labels) };
            self.labels.insert(feature.to_owned(), labels);
            return Ok((step, Slot::Vector { start, len }, Type::Vector(len)));
        }
        Ok(match compile(&self.names, &ast)? {
            Code::Num(code) => {
                let at = self.take_nums(1);
                (Step::Num { at, code }, Slot::Num(at), Type::Num)
            }
            Code::Bool(code) => {
                let at = self.take_nums(1);
                (Step::Bool { at, code }, Slot::Num(at), Type::Bool)
            }
            Code::Str(code) => {
                let at = self.take_str();
                (Step::Str { at, code }, Slot::Str(at), Type::Str)
            }
        })
    }

    fn take_nums(&mut self, len: usize) -> usize {
        let start = self.num_slots;
        self.num_slots += len;
        start
    }

    fn take_str(&mut self) -> usize {
        self.str_slots += 1;
        self.str_slots - 1
    }

    #[must_use]
    pub fn finish(self) -> Program {
        Program {
            names: self.names,
            inputs: self.inputs,
            outputs: self.outputs,
            labels: self.labels,
            steps: self.steps,
            num_slots: self.num_slots,
            str_slots: self.str_slots,
        }
    }
}

impl Program {
    /// A frame sized for every slot: numbers NaN (missing), strings empty.
    #[must_use]
    pub fn frame(&self) -> Frame {
        Frame { nums: vec![f64::NAN; self.num_slots], strs: vec![String::new(); self.str_slots] }
    }

    /// Evaluates every on-demand feature in definition order, writing each into its slot.
    /// Input slots are read, never written.
    pub fn run(&self, frame: &mut Frame) {
        // A frame that is too short (not made by `frame()`) is grown rather than allowed
        // to panic on a slot index; with a right-sized frame this costs two compares.
        if frame.nums.len() < self.num_slots {
            frame.nums.resize(self.num_slots, f64::NAN);
        }
        if frame.strs.len() < self.str_slots {
            frame.strs.resize(self.str_slots, String::new());
        }
        for step in &self.steps {
            step.run(frame);
        }
    }

    #[must_use]
    pub fn lookup(&self, name: &str) -> Option<(Slot, &Type)> {
        self.names.get(name).map(|(slot, ty)| (*slot, ty))
    }

    /// For a vector (`one_hot`) feature: the category labels, in column order.
    #[must_use]
    pub fn vector_labels(&self, name: &str) -> Option<&[String]> {
        self.labels.get(name).map(Vec::as_slice)
    }

    /// Names of the on-demand features in definition order.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(String::as_str)
    }
}

impl Step {
    fn run(&self, frame: &mut Frame) {
        match self {
            Step::Num { at, code } => frame.nums[*at] = code.eval(frame),
            Step::Bool { at, code } => frame.nums[*at] = f64::from(u8::from(code.eval(frame))),
            Step::Str { at, code } => {
                // The result may borrow from the frame, so the output buffer is taken out
                // while it is written; reusing it avoids an allocation per row.
                let mut out = std::mem::take(&mut frame.strs[*at]);
                out.clear();
                out.push_str(code.eval(frame));
                frame.strs[*at] = out;
            }
            Step::OneHot { start, len, input, categories } => {
                let hit = categories.position(input.eval(frame));
                let columns = &mut frame.nums[*start..*start + len];
                columns.fill(0.0);
                if let Some(i) = hit {
                    columns[i] = 1.0;
                }
            }
        }
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let typed = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .map(|n| match self.names.get(n) {
                    Some((_, ty)) => format!("{n}: {ty}"),
                    None => n.clone(),
                })
                .collect()
        };
        f.debug_struct("Program")
            .field("inputs", &typed(&self.inputs))
            .field("outputs", &typed(&self.outputs))
            .finish_non_exhaustive()
    }
}
