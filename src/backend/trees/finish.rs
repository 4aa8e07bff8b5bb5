//! From raw scores to outputs, with onnxruntime's rules (its outputs are the reference):
//! base values, averaging, post transforms, the binary layouts (one score column → two
//! class columns) and the label.

use super::layout::Ensemble;
use super::spec::{Aggregate, Task};
use crate::backend::post_transform::{PostTransform, logistic, probit, transform};

/// Classifier outputs: one label per row and `rows x classes` probabilities/scores.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeClassification {
    pub labels: Vec<i64>,
    pub scores: Vec<f32>,
}

impl Ensemble {
    /// Regressor output, `rows x n_targets`.
    pub fn regress(&self, input: &[f32], rows: usize, width: usize) -> Vec<f32> {
        let s = self.scores(input, rows, width);
        let t = self.n_targets;
        let mut out = Vec::with_capacity(rows * t);
        let mut row = vec![0.0f64; t];
        for r in 0..rows {
            let (values, has) = (&s.values[r * t..(r + 1) * t], &s.has[r * t..(r + 1) * t]);
            if t == 1 {
                // onnxruntime's single-target path: base_values of length 1, PROBIT only.
                let origin = if self.base_values.len() == 1 { self.base_values[0] } else { 0.0 };
                let v = match self.aggregate {
                    Aggregate::Sum => values[0] + origin,
                    Aggregate::Average => values[0] / self.n_trees() as f64 + origin,
                    Aggregate::Min | Aggregate::Max => (if has[0] { values[0] } else { 0.0 }) + origin,
                };
                let v = if self.post_transform == PostTransform::Probit { probit(v) } else { v };
                out.push(v as f32);
                continue;
            }
            let use_base = self.base_values.len() == t;
            for k in 0..t {
                let base = if use_base { self.base_values[k] } else { 0.0 };
                row[k] = base
                    + match self.aggregate {
                        Aggregate::Sum => values[k],
                        Aggregate::Average => values[k] / self.n_trees() as f64,
                        Aggregate::Min | Aggregate::Max => {
                            if has[k] {
                                values[k]
                            } else {
                                0.0
                            }
                        }
                    };
            }
            transform(&mut row, self.post_transform);
            out.extend(row.iter().map(|&v| v as f32));
        }
        out
    }

    /// Classifier outputs. `labels` are the class labels (indices for string labels).
    pub fn classify(&self, input: &[f32], rows: usize, width: usize) -> TreeClassification {
        let Task::Classify { labels } = &self.task else {
            return TreeClassification { labels: vec![0; rows], scores: self.regress(input, rows, width) };
        };
        let s = self.scores(input, rows, width);
        let c = self.n_targets;
        let mut out =
            TreeClassification { labels: Vec::with_capacity(rows), scores: Vec::with_capacity(rows * c) };
        let (mut row, mut has) = (vec![0.0; c], vec![false; c]);
        for r in 0..rows {
            row.copy_from_slice(&s.values[r * c..(r + 1) * c]);
            has.copy_from_slice(&s.has[r * c..(r + 1) * c]);
            let label = if c > 2 {
                for (k, b) in self.base_values.iter().enumerate().take(c) {
                    row[k] += b;
                    has[k] = true;
                }
                transform(&mut row, self.post_transform);
                labels[first_max(&row, &has)]
            } else {
                self.binary(&mut row, &has, labels)
            };
            out.labels.push(label);
            out.scores.extend(row.iter().map(|&v| v as f32));
        }
        out
    }

    /// Two classes. Exporters write either one score column (LightGBM, XGBoost,
    /// GradientBoosting, scikit-learn forests: the positive class) or two.
    fn binary(&self, row: &mut [f64], has: &[bool], labels: &[i64]) -> i64 {
        let b = &self.base_values;
        match b.len() {
            2 if has[1] => {
                row[1] = b[1] + row[0];
                row[0] = -row[1];
            }
            2 => {
                row[1] += b[1];
                row[0] += b[0];
            }
            1 => row[0] += b[0],
            _ => {}
        }
        let two_columns = has[1] || b.len() == 2;
        let score = if has[1] { row[1] } else { row[0] };
        // onnxruntime decides on the raw score: > 0.5 when every weight is a probability,
        // > 0 for margins.
        let threshold = if self.weights_all_positive { 0.5 } else { 0.0 };
        if two_columns {
            transform(row, self.post_transform);
            if self.binary_single_column {
                return labels[usize::from(score > threshold)];
            }
            // Both classes voted: onnxruntime answers the raw label 1 when the second
            // score is > 0, whatever the labels and the first score; the argmax is right.
            return labels[first_max(row, &[true, true])];
        }
        let positive = score > threshold;
        (row[0], row[1]) = match self.post_transform {
            PostTransform::Probit => (probit(score), 0.0),
            _ if self.weights_all_positive => (1.0 - score, score),
            PostTransform::Logistic => (logistic(-score), logistic(score)),
            _ if positive => (-score, score),
            _ => (score, -score),
        };
        labels[usize::from(positive)]
    }
}

/// Index of the first maximum among cells that received a score.
fn first_max(row: &[f64], has: &[bool]) -> usize {
    let mut best: Option<usize> = None;
    for (k, &v) in row.iter().enumerate() {
        if has[k] && best.is_none_or(|b| v > row[b]) {
            best = Some(k);
        }
    }
    best.unwrap_or(0)
}
