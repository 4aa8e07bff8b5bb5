//! The outputs a manifest declares, planned against the graph's output tensors when a
//! version loads: which tensor each reads and how a row of it becomes a value (a column,
//! a thresholded label, an argmax, a class map). The plan is checked against real shapes
//! at warm-up; applying it to a row of tensors is [`super::named_outputs`]'s job.

use super::manifest::OutputSpec;
use crate::backend::{Tensor, TensorData};

#[derive(Debug, Clone)]
pub struct OutputPlan {
    pub name: String,
    /// Index of the graph output it reads.
    pub tensor: usize,
    pub kind: OutputKind,
}

#[derive(Debug, Clone)]
pub enum OutputKind {
    /// The row's values: one number, or a list.
    Row,
    Column(usize),
    Threshold {
        column: usize,
        threshold: f64,
        labels: Option<Vec<String>>,
    },
    Argmax {
        labels: Option<Vec<String>>,
    },
    /// `{label: value}` per row, in column order.
    Map {
        labels: Vec<String>,
    },
    /// An integer output holding an index into `labels`.
    Index {
        labels: Vec<String>,
    },
}

impl OutputPlan {
    pub fn new(spec: &OutputSpec, output_names: &[String]) -> Result<OutputPlan, String> {
        let tensor = output_names.iter().position(|n| *n == spec.tensor).ok_or_else(|| {
            format!(
                "output `{}` reads tensor `{}`, but the graph's outputs are: {}",
                spec.name,
                spec.tensor,
                output_names.join(", ")
            )
        })?;
        let kind = match (spec.column, spec.threshold, spec.argmax) {
            _ if spec.map => OutputKind::Map { labels: spec.labels.clone().unwrap_or_default() },
            (_, _, true) => OutputKind::Argmax { labels: spec.labels.clone() },
            (Some(column), Some(threshold), false) => {
                OutputKind::Threshold { column, threshold, labels: spec.labels.clone() }
            }
            (Some(column), None, false) => OutputKind::Column(column),
            (None, _, false) => match &spec.labels {
                Some(labels) => OutputKind::Index { labels: labels.clone() },
                None => OutputKind::Row,
            },
        };
        Ok(OutputPlan { name: spec.name.clone(), tensor, kind })
    }

    /// Checks the plan against real output shapes (from warm-up).
    pub fn check(&self, tensors: &[Tensor]) -> Result<(), String> {
        let width = tensors[self.tensor].row_width();
        let column = match &self.kind {
            OutputKind::Column(c) | OutputKind::Threshold { column: c, .. } => Some(*c),
            _ => None,
        };
        if let Some(c) = column
            && c >= width
        {
            return Err(format!(
                "output `{}` takes column {c}, but its tensor has {width} per row",
                self.name
            ));
        }
        match &self.kind {
            OutputKind::Argmax { labels: Some(labels) } | OutputKind::Map { labels }
                if labels.len() != width =>
            {
                Err(format!("output `{}` has {} labels for {width} classes", self.name, labels.len()))
            }
            OutputKind::Index { .. }
                if width != 1 || !matches!(tensors[self.tensor].data, TensorData::I64(_)) =>
            {
                Err(format!(
                    "output `{}` maps an index to `labels`, but its tensor is not one integer per row",
                    self.name
                ))
            }
            _ => Ok(()),
        }
    }
}
