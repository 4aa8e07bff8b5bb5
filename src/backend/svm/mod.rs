//! Our support-vector machine engine: ai.onnx.ml `SVMClassifier` and `SVMRegressor`,
//! evaluated with onnxruntime's output rules (its outputs are the reference; where they
//! differ from libsvm or the ONNX text, the comments say so). It knows nothing about
//! tract or ONNX protobufs: [`super::onnx_ml`] plugs it into tract.
//!
//! Both come in two forms. The dual form holds support vectors and scores a row through
//! the [`Kernel`] (scikit-learn's SVC, SVR, NuSVR, OneClassSVM export this way). The
//! linear form has no support vectors: `coefficients` are weight rows dotted with the
//! input. Arithmetic is f64; onnxruntime's is f32, so outputs agree to its rounding
//! (~1e-6 relative on the corpus).

mod classify;
mod kernel;

pub use classify::SvmClassification;
pub use kernel::Kernel;

use crate::backend::post_transform::PostTransform;

/// What an `SVMClassifier` node says, independent of how ONNX spells it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSpec {
    pub n_classes: usize,
    pub kernel: Kernel,
    /// Empty for the linear form.
    pub vectors_per_class: Vec<usize>,
    pub support_vectors: Vec<f64>,
    pub coefficients: Vec<f64>,
    pub rho: Vec<f64>,
    /// Platt scaling per class pair; both empty without probabilities.
    pub prob_a: Vec<f64>,
    pub prob_b: Vec<f64>,
    pub post_transform: PostTransform,
}

/// What an `SVMRegressor` node says.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressorSpec {
    pub kernel: Kernel,
    /// 0 for the linear form.
    pub n_supports: usize,
    pub support_vectors: Vec<f64>,
    pub coefficients: Vec<f64>,
    pub rho: Vec<f64>,
    /// OneClassSVM: the output is 1 when the decision is > 0, else -1.
    pub one_class: bool,
}

/// A compiled classifier; [`Classifier::classify`] evaluates a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    width: usize,
    n_classes: usize,
    kernel: Kernel,
    form: ClassForm,
    rho: Vec<f64>,
    /// `(A, B)` per class pair.
    platt: Option<Vec<(f64, f64)>>,
    post_transform: PostTransform,
    /// Linear form only: every weight ≥ 0 moves onnxruntime's binary threshold to 0.5.
    weights_all_positive: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum ClassForm {
    /// `vectors` row-major (`width` each), class `c` owning rows `starts[c]..starts[c + 1]`;
    /// `coefficients` is `(n_classes - 1) x n_vectors` as libsvm lays out its dual
    /// coefficients.
    Dual { vectors: Vec<f64>, starts: Vec<usize>, coefficients: Vec<f64> },
    /// One weight row per class.
    Primal { weights: Vec<f64> },
}

/// A compiled regressor; [`Regressor::regress`] evaluates a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Regressor {
    width: usize,
    kernel: Kernel,
    /// Support vectors row-major, or empty for the linear form.
    vectors: Vec<f64>,
    coefficients: Vec<f64>,
    rho: f64,
    one_class: bool,
}

fn expect_len(name: &str, len: usize, expected: usize) -> Result<(), String> {
    if len == expected {
        Ok(())
    } else {
        Err(format!("attribute `{name}` has {len} values, expected {expected}"))
    }
}

/// The width of `total` values laid out as `rows` rows.
fn row_width(name: &str, total: usize, rows: usize) -> Result<usize, String> {
    if rows == 0 || total == 0 || !total.is_multiple_of(rows) {
        return Err(format!("attribute `{name}` has {total} values, not a whole number of {rows} rows"));
    }
    Ok(total / rows)
}

impl Classifier {
    pub fn build(spec: ClassifierSpec) -> Result<Classifier, String> {
        let c = spec.n_classes;
        if c < 2 {
            return Err(format!("{c} class labels: a classifier needs at least 2"));
        }
        let pairs = c * (c - 1) / 2;
        let dual = !spec.support_vectors.is_empty();
        let (width, form, rho_len) = if dual {
            expect_len("vectors_per_class", spec.vectors_per_class.len(), c)?;
            let n: usize = spec.vectors_per_class.iter().sum();
            let width = row_width("support_vectors", spec.support_vectors.len(), n)?;
            expect_len("coefficients", spec.coefficients.len(), (c - 1) * n)?;
            let mut starts = vec![0];
            for v in &spec.vectors_per_class {
                starts.push(starts[starts.len() - 1] + v);
            }
            let form =
                ClassForm::Dual { vectors: spec.support_vectors, starts, coefficients: spec.coefficients };
            (width, form, pairs)
        } else {
            let width = row_width("coefficients", spec.coefficients.len(), c)?;
            (width, ClassForm::Primal { weights: spec.coefficients }, 1)
        };
        // onnxruntime reads only rho[0] in the linear form.
        if spec.rho.len() < rho_len || (dual && spec.rho.len() != rho_len) {
            return Err(format!("attribute `rho` has {} values, expected {rho_len}", spec.rho.len()));
        }
        let platt = match (spec.prob_a.len(), spec.prob_b.len()) {
            (0, 0) => None,
            (a, b) if a == pairs && b == pairs => {
                Some(spec.prob_a.iter().copied().zip(spec.prob_b.iter().copied()).collect())
            }
            (a, b) => {
                return Err(format!(
                    "`prob_a` / `prob_b` have {a} / {b} values, expected {pairs} (one per class pair)"
                ));
            }
        };
        let weights_all_positive = match &form {
            ClassForm::Primal { weights } => weights.iter().all(|&w| w >= 0.0),
            ClassForm::Dual { .. } => false,
        };
        Ok(Classifier {
            width,
            n_classes: c,
            kernel: spec.kernel,
            form,
            rho: spec.rho,
            platt,
            post_transform: spec.post_transform,
            weights_all_positive,
        })
    }

    /// The number of input columns.
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Columns of the score output: one per class, except for the dual form without
    /// probabilities and more than two classes, which answers one decision per class pair.
    pub fn n_scores(&self) -> usize {
        let c = self.n_classes;
        match self.form {
            ClassForm::Dual { .. } if self.platt.is_none() && c > 2 => c * (c - 1) / 2,
            _ => c,
        }
    }

    pub fn n_vectors(&self) -> usize {
        match &self.form {
            ClassForm::Dual { starts, .. } => starts[starts.len() - 1],
            ClassForm::Primal { .. } => 0,
        }
    }
}

impl Regressor {
    pub fn build(spec: RegressorSpec) -> Result<Regressor, String> {
        let n = spec.n_supports;
        let width = if n > 0 {
            expect_len("coefficients", spec.coefficients.len(), n)?;
            row_width("support_vectors", spec.support_vectors.len(), n)?
        } else {
            row_width("coefficients", spec.coefficients.len(), 1)?
        };
        let Some(&rho) = spec.rho.first() else { return Err("attribute `rho` is empty".into()) };
        let vectors = if n > 0 { spec.support_vectors } else { Vec::new() };
        Ok(Regressor {
            width,
            kernel: spec.kernel,
            vectors,
            coefficients: spec.coefficients,
            rho,
            one_class: spec.one_class,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn n_vectors(&self) -> usize {
        self.vectors.len() / self.width
    }

    /// One value per row. onnxruntime ignores `post_transform` here, and so do we.
    pub fn regress(&self, input: &[f32], rows: usize) -> Vec<f32> {
        (0..rows)
            .map(|r| {
                let x = &input[r * self.width..(r + 1) * self.width];
                let sum: f64 = if self.vectors.is_empty() {
                    x.iter().zip(&self.coefficients).map(|(&a, &w)| f64::from(a) * w).sum()
                } else {
                    self.vectors
                        .chunks_exact(self.width)
                        .zip(&self.coefficients)
                        .map(|(v, &w)| w * self.kernel.eval(x, v))
                        .sum()
                };
                let y = sum + self.rho;
                if self.one_class { if y > 0.0 { 1.0 } else { -1.0 } } else { y as f32 }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
