//! The expression language's value types, where each named value lives ([`Slot`]) and
//! one row's values ([`Frame`]).

use std::fmt;

/// The type of a value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// f64; NaN means missing.
    Num,
    Bool,
    /// Empty means missing.
    Str,
    /// Only produced by `one_hot`, and only as the whole expression of a feature.
    Vector(usize),
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Num => f.write_str("number"),
            Type::Bool => f.write_str("bool"),
            Type::Str => f.write_str("string"),
            Type::Vector(n) => write!(f, "vector[{n}]"),
        }
    }
}

/// Where a named value lives in a [`Frame`]. Bools live in `nums` as 0.0/1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    Num(usize),
    Str(usize),
    /// Occupies `nums[start..start + len]`, one column per category.
    Vector {
        start: usize,
        len: usize,
    },
}

/// One row's values. The caller fills the input slots, then calls `Program::run`.
///
/// A frame can be reused across rows: `run` overwrites every on-demand slot, and string
/// outputs keep their buffers, so steady-state evaluation does not allocate.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub nums: Vec<f64>,
    pub strs: Vec<String>,
}

/// How a bool is read back from its number slot. Anything but 0.0 or NaN is true, so a
/// missing bool (NaN) reads as false rather than poisoning the expression.
pub(super) fn truthy(x: f64) -> bool {
    x != 0.0 && !x.is_nan()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_display_as_in_the_spec() {
        assert_eq!(Type::Num.to_string(), "number");
        assert_eq!(Type::Bool.to_string(), "bool");
        assert_eq!(Type::Str.to_string(), "string");
        assert_eq!(Type::Vector(3).to_string(), "vector[3]");
    }

    #[test]
    fn missing_bool_reads_false() {
        assert!(truthy(1.0));
        assert!(!truthy(0.0));
        assert!(!truthy(f64::NAN));
    }
}
