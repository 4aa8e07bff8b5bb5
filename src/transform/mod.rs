//! On-demand feature expressions (see `docs/feature-views.md`, "Expression language").
//!
//! A model version's feature view is turned into a [`Program`] once, when the version
//! loads; every request then only evaluates it.
//!
//! - [`Compiler::input`] declares the values a request brings (request and group
//!   features) and assigns each a [`Slot`] in a [`Frame`].
//! - [`Compiler::define`] takes one on-demand feature through `lexer` → `parser` (an AST
//!   with columns for error messages) → `compile` (type check and lowering to closures,
//!   with the function table in `functions` and the closure building blocks in `code`).
//!   Any mistake comes back as a [`TransformError`] that names the feature, the
//!   expression and the column.
//! - [`Compiler::finish`] yields the [`Program`]; [`Program::run`] fills the on-demand
//!   slots of a frame whose input slots the caller has filled, without allocating.

mod code;
mod compile;
mod error;
mod frame;
mod functions;
mod lexer;
mod parser;
mod program;

#[cfg(test)]
mod tests;

pub use error::TransformError;
pub use frame::{Frame, Slot, Type};
pub use program::{Compiler, Program};
