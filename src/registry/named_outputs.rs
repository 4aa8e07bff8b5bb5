//! A version's output plans applied to one row of the model's tensors: the named values
//! a response carries.

use serde::Serialize;

use super::outputs::{OutputKind, OutputPlan};
use crate::backend::{Tensor, TensorData};

/// One named output value of one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutputValue {
    Int(i64),
    Num(f64),
    Str(String),
    List(Vec<f64>),
    /// Keys in column (class) order.
    Map(Vec<(String, f64)>),
}

/// The value of `plan` for row `row`. Plans were checked against the graph's real output
/// shapes at warm-up, and every output has one row per input row.
pub fn extract(plan: &OutputPlan, tensors: &[Tensor], row: usize) -> OutputValue {
    let t = &tensors[plan.tensor];
    let width = t.row_width();
    let base = row * width;
    let label = |i: usize, labels: &Option<Vec<String>>| match labels {
        Some(l) => OutputValue::Str(l[i].clone()),
        None => OutputValue::Int(i as i64),
    };
    match &plan.kind {
        OutputKind::Row if width == 1 => match &t.data {
            TensorData::I64(v) => OutputValue::Int(v[base]),
            _ => OutputValue::Num(t.get_f64(base)),
        },
        OutputKind::Row => OutputValue::List((base..base + width).map(|i| t.get_f64(i)).collect()),
        OutputKind::Column(c) => OutputValue::Num(t.get_f64(base + c)),
        OutputKind::Threshold { column, threshold, labels } => {
            label(usize::from(t.get_f64(base + column) >= *threshold), labels)
        }
        OutputKind::Map { labels } => OutputValue::Map(
            labels.iter().enumerate().map(|(i, l)| (l.clone(), t.get_f64(base + i))).collect(),
        ),
        OutputKind::Index { labels } => {
            let index = t.get_f64(base) as i64;
            match usize::try_from(index).ok().and_then(|i| labels.get(i)) {
                Some(l) => OutputValue::Str(l.clone()),
                None => OutputValue::Int(index),
            }
        }
        OutputKind::Argmax { labels } => {
            // First maximum wins ties, as numpy's argmax does.
            let best = (0..width)
                .fold(0, |best, i| if t.get_f64(base + i) > t.get_f64(base + best) { i } else { best });
            label(best, labels)
        }
    }
}
