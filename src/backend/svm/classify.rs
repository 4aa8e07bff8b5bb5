//! From a row to a class and scores, as onnxruntime does it.
//!
//! Dual form: one decision per class pair `(i, j)`, `i < j`, in the order (0,1), (0,2),
//! …, (1,2), …; a decision > 0 votes for `i`, anything else (0, NaN) for `j`; the label
//! is the first class with the most votes, with or without probabilities. With
//! `prob_a`/`prob_b`, each decision becomes a pairwise probability by Platt scaling and
//! the class probabilities come from pairwise coupling (Wu, Lin and Weng 2004, their
//! second method, as libsvm iterates it), for two classes too.

use super::{ClassForm, Classifier};
use crate::backend::post_transform::{PostTransform, logistic, probit, transform};

/// Classifier outputs: one class index per row and `rows x n_scores` scores.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmClassification {
    pub classes: Vec<usize>,
    pub scores: Vec<f32>,
}

/// Pairwise probabilities are kept inside `[MIN_PROB, 1 - MIN_PROB]` before coupling.
const MIN_PROB: f64 = 1e-7;

impl Classifier {
    /// `input` is `rows x width`, row-major.
    pub fn classify(&self, input: &[f32], rows: usize) -> SvmClassification {
        let k = self.n_scores();
        let mut out =
            SvmClassification { classes: Vec::with_capacity(rows), scores: Vec::with_capacity(rows * k) };
        let mut kernels = vec![0.0; self.n_vectors()];
        let mut row = Vec::with_capacity(self.n_classes.max(k));
        for x in input.chunks_exact(self.width).take(rows) {
            row.clear();
            let class = match &self.form {
                ClassForm::Dual { vectors, starts, coefficients } => {
                    for (kv, v) in kernels.iter_mut().zip(vectors.chunks_exact(self.width)) {
                        *kv = self.kernel.eval(x, v);
                    }
                    self.decide(&kernels, starts, coefficients, &mut row)
                }
                ClassForm::Primal { weights } => self.linear(x, weights, &mut row),
            };
            out.classes.push(class);
            out.scores.extend(row.iter().map(|&v| v as f32));
        }
        out
    }

    /// Dual form: the pairwise decisions, the vote, and the scores left in `row`.
    fn decide(&self, kernels: &[f64], starts: &[usize], coefficients: &[f64], row: &mut Vec<f64>) -> usize {
        let c = self.n_classes;
        let n = kernels.len();
        let dot = |class: usize, coef_row: usize| {
            let range = starts[class]..starts[class + 1];
            let coef = &coefficients[coef_row * n..(coef_row + 1) * n];
            range.map(|s| coef[s] * kernels[s]).sum::<f64>()
        };
        let mut votes = vec![0usize; c];
        let mut pair = 0;
        for i in 0..c {
            for j in i + 1..c {
                let d = dot(i, j - 1) + dot(j, i) + self.rho[pair];
                votes[if d > 0.0 { i } else { j }] += 1;
                row.push(d);
                pair += 1;
            }
        }
        let class = first_max(&votes);
        if let Some(platt) = &self.platt {
            let p = couple(row, platt, c);
            row.clear();
            row.extend(p);
            transform(row, self.post_transform);
        } else if c == 2 {
            binary_layout(row, self.post_transform);
        } else {
            transform(row, self.post_transform);
        }
        class
    }

    /// Linear form: `w_c·x + rho[0]` per class (onnxruntime adds rho[0] to every class).
    fn linear(&self, x: &[f32], weights: &[f64], row: &mut Vec<f64>) -> usize {
        for w in weights.chunks_exact(self.width) {
            row.push(x.iter().zip(w).map(|(&a, &b)| f64::from(a) * b).sum::<f64>() + self.rho[0]);
        }
        let mut class = first_max_f64(row);
        // Two classes without probabilities: onnxruntime also answers the second class
        // when the first wins with a score above 0 (0.5 when every weight is ≥ 0).
        if self.n_classes == 2 && self.platt.is_none() && class == 0 {
            let threshold = if self.weights_all_positive { 0.5 } else { 0.0 };
            class = usize::from(row[0] > threshold);
        }
        transform(row, self.post_transform);
        class
    }
}

/// One decision `d` → two columns, onnxruntime's layout for each post transform.
fn binary_layout(row: &mut Vec<f64>, post: PostTransform) {
    let d = row[0];
    let (a, b) = match post {
        PostTransform::None => (-d, d),
        PostTransform::Logistic => (logistic(-d), logistic(d)),
        PostTransform::Softmax | PostTransform::SoftmaxZero => (1.0 - d, d),
        // onnxruntime writes only the first column here (the second is whatever the
        // buffer held): keep the decision there.
        PostTransform::Probit => (probit(d), d),
    };
    row.clear();
    row.extend([a, b]);
}

/// Index of the first largest count.
fn first_max(votes: &[usize]) -> usize {
    let mut best = 0;
    for (k, &v) in votes.iter().enumerate() {
        if v > votes[best] {
            best = k;
        }
    }
    best
}

/// Index of the first largest score (NaN never wins).
fn first_max_f64(row: &[f64]) -> usize {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    best
}

/// Platt scaling: `1 / (1 + exp(A d + B))`, computed without overflow, clamped.
fn platt(d: f64, a: f64, b: f64) -> f64 {
    let f = d * a + b;
    let p = if f >= 0.0 { (-f).exp() / (1.0 + (-f).exp()) } else { 1.0 / (1.0 + f.exp()) };
    p.clamp(MIN_PROB, 1.0 - MIN_PROB)
}

/// Class probabilities from pairwise decisions: `r[i][j]` = P(i | i or j) by Platt
/// scaling, then the `p` minimising `Σ_i Σ_{j≠i} (r[j][i] p_i - r[i][j] p_j)²` with
/// `Σ p = 1`, by the fixed-point iteration of Wu, Lin and Weng, stopped when every
/// coordinate of the gradient is within `0.005 / k` of the others (libsvm's criterion,
/// which onnxruntime shares: the result is that approximation, not the exact optimum).
pub(super) fn couple(decisions: &[f64], platt_ab: &[(f64, f64)], k: usize) -> Vec<f64> {
    let mut r = vec![0.0; k * k];
    let mut pair = 0;
    for i in 0..k {
        for j in i + 1..k {
            let (a, b) = platt_ab[pair];
            r[i * k + j] = platt(decisions[pair], a, b);
            r[j * k + i] = 1.0 - r[i * k + j];
            pair += 1;
        }
    }
    let mut q = vec![0.0; k * k];
    for t in 0..k {
        for j in 0..k {
            if j != t {
                q[t * k + t] += r[j * k + t] * r[j * k + t];
                q[t * k + j] = -r[j * k + t] * r[t * k + j];
            }
        }
    }
    let mut p = vec![1.0 / k as f64; k];
    let mut qp = vec![0.0; k];
    let eps = 0.005 / k as f64;
    for _ in 0..k.max(100) {
        let mut pqp = 0.0;
        for t in 0..k {
            qp[t] = (0..k).map(|j| q[t * k + j] * p[j]).sum();
            pqp += p[t] * qp[t];
        }
        // `>` skips NaN (a NaN input row): the iteration then stops at once on 1/k.
        let mut max_error = 0.0;
        for &v in &qp {
            let error = (v - pqp).abs();
            if error > max_error {
                max_error = error;
            }
        }
        if max_error < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            let scale = 1.0 + diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / scale / scale;
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t * k + j]) / scale;
                p[j] /= scale;
            }
        }
    }
    p
}
