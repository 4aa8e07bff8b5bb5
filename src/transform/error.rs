use std::fmt;

/// Why a feature view's on-demand features (or inputs) were refused.
///
/// Displays as one line a data scientist can act on, e.g.
/// ``on-demand feature `speed`: unknown name `distnce` at column 1 in `distnce / hours` ``.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct TransformError {
    /// The feature being declared or defined.
    pub feature: String,
    /// Its expression; empty for an input declaration.
    pub expr: String,
    /// 1-based column (in characters) within `expr`, when the mistake has a position.
    pub column: Option<usize>,
    /// What was wrong, e.g. "expected a number, got string".
    pub message: String,
}

// Written by hand rather than with `#[error(...)]`: the column and the expression are
// optional parts of the sentence.
impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.expr.is_empty() { "feature" } else { "on-demand feature" };
        write!(f, "{kind} `{}`: {}", self.feature, self.message)?;
        if let Some(column) = self.column {
            write!(f, " at column {column}")?;
        }
        if !self.expr.is_empty() {
            write!(f, " in `{}`", self.expr)?;
        }
        Ok(())
    }
}

/// A mistake inside one expression, before it is tied to a feature name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fault {
    pub col: usize,
    pub message: String,
}

impl Fault {
    pub fn new(col: usize, message: impl Into<String>) -> Self {
        Fault { col, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_feature_column_and_expression() {
        let e = TransformError {
            feature: "speed".into(),
            expr: "distnce / hours".into(),
            column: Some(1),
            message: "unknown name `distnce`".into(),
        };
        assert_eq!(
            e.to_string(),
            "on-demand feature `speed`: unknown name `distnce` at column 1 in `distnce / hours`"
        );
    }

    #[test]
    fn display_without_expression_or_column() {
        let e = TransformError {
            feature: "amount".into(),
            expr: String::new(),
            column: None,
            message: "`amount` is already declared".into(),
        };
        assert_eq!(e.to_string(), "feature `amount`: `amount` is already declared");
    }
}
