//! What a tree ensemble says, independent of how ONNX spells it: node tuples, leaf votes
//! and the aggregation/post-processing settings. The ONNX parsers fill a [`Spec`]; the
//! [`super::Ensemble`] compiles it into the evaluation layout.

use crate::backend::post_transform::PostTransform;

/// How a split node compares the feature `x` with its threshold `t` ("true" branch when
/// it holds). `Member` is ai.onnx.ml opset 5 set membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Member,
}

impl Mode {
    /// ONNX `nodes_modes` strings (opsets 1 and 3); `None` for `LEAF`.
    pub fn parse(s: &str) -> Result<Option<Mode>, String> {
        Ok(Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => return Ok(None),
            other => return Err(format!("unknown node mode `{other}`")),
        }))
    }

    /// ai.onnx.ml opset 5 `nodes_modes` codes.
    pub fn from_code(code: i64) -> Result<Mode, String> {
        Ok(match code {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 => Mode::Eq,
            5 => Mode::Neq,
            6 => Mode::Member,
            other => return Err(format!("unknown node mode {other}")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(s: &str) -> Result<Aggregate, String> {
        Ok(match s {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => return Err(format!("unknown aggregate function `{other}`")),
        })
    }

    /// ai.onnx.ml opset 5 codes.
    pub fn from_code(code: i64) -> Result<Aggregate, String> {
        Ok(match code {
            0 => Aggregate::Average,
            1 => Aggregate::Sum,
            2 => Aggregate::Min,
            3 => Aggregate::Max,
            other => return Err(format!("unknown aggregate function {other}")),
        })
    }
}

/// A child of a split node: another node of the same tree, or (opset 5) a leaf directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    Node(i64),
    Leaf(i64),
}

/// One node tuple. Leaves (opsets 1/3) are nodes with `mode == None`.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub tree: i64,
    pub id: i64,
    pub mode: Option<Mode>,
    pub feature: i64,
    pub threshold: f64,
    /// For `Mode::Member`: the set.
    pub members: Vec<f64>,
    pub yes: Child,
    pub no: Child,
    pub missing_goes_yes: bool,
}

/// One vote of a leaf: `weight` added to score column `target`.
#[derive(Debug, Clone, Copy)]
pub struct Vote {
    pub tree: i64,
    /// The leaf: a node id (opsets 1/3) or an index into the leaf arrays (opset 5).
    pub leaf: i64,
    pub target: i64,
    pub weight: f64,
}

/// Classifier or regressor: decides how scores become outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// `labels` are the int64 class labels, or indices for string labels.
    Classify {
        labels: Vec<i64>,
    },
    Regress,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub nodes: Vec<NodeSpec>,
    pub votes: Vec<Vote>,
    /// Opset 5 names roots explicitly (node indices); older opsets find them.
    pub roots: Option<Vec<i64>>,
    pub n_targets: usize,
    pub aggregate: Aggregate,
    pub post_transform: PostTransform,
    pub base_values: Vec<f64>,
    pub task: Task,
}
