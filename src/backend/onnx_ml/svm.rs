//! SVMClassifier / SVMRegressor (ai.onnx.ml opset 1) as tract operators backed by our
//! engine ([`crate::backend::svm`]).
//!
//! String class labels: as for tree ensembles, the `label` output holds the index into
//! `classlabels_strings`; the manifest's `labels` turns it back into the name.

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{Attrs, parse_node};
use super::scorer::{Scored, Scorer, ScorerOp};
use crate::backend::svm::{Classifier, ClassifierSpec, Kernel, Regressor, RegressorSpec};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("SVMClassifier", |ctx, node| Ok((expand(parse_node(ctx, node, classifier)?), vec![])));
    reg.insert("SVMRegressor", |ctx, node| Ok((expand(parse_node(ctx, node, regressor)?), vec![])));
}

fn kernel(a: &Attrs) -> Result<Kernel, String> {
    Kernel::parse(&a.string_or("kernel_type", "LINEAR"), &a.floats_f64("kernel_params"))
}

fn classifier(a: &Attrs) -> Result<ScorerOp, String> {
    let labels = a.class_labels("classlabels_ints")?;
    let model = Classifier::build(ClassifierSpec {
        n_classes: labels.len(),
        kernel: kernel(a)?,
        vectors_per_class: a.counts("vectors_per_class")?,
        support_vectors: a.floats_f64("support_vectors"),
        coefficients: a.floats_f64("coefficients"),
        rho: a.floats_f64("rho"),
        prob_a: a.floats_f64("prob_a"),
        prob_b: a.floats_f64("prob_b"),
        post_transform: a.post_transform()?,
    })?;
    Ok(ScorerOp::new(Svc { model, labels }))
}

fn regressor(a: &Attrs) -> Result<ScorerOp, String> {
    let model = Regressor::build(RegressorSpec {
        kernel: kernel(a)?,
        n_supports: a.count_or("n_supports", 0)?,
        support_vectors: a.floats_f64("support_vectors"),
        coefficients: a.floats_f64("coefficients"),
        rho: a.floats_f64("rho"),
        one_class: a.int("one_class").unwrap_or(0) != 0,
    })?;
    // onnxruntime ignores the regressor's post_transform; refusing an unknown name still helps.
    a.post_transform()?;
    Ok(ScorerOp::new(Svr(model)))
}

fn check_width(expected: usize, width: usize) -> Result<(), String> {
    if width == expected {
        Ok(())
    } else {
        Err(format!("the model reads {expected} features, the input has {width} columns"))
    }
}

#[derive(Debug)]
struct Svc {
    model: Classifier,
    /// Label values by class index (indices for string labels).
    labels: Vec<i64>,
}

impl Scorer for Svc {
    fn op_name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn is_classifier(&self) -> bool {
        true
    }

    fn n_scores(&self) -> usize {
        self.model.n_scores()
    }

    fn width(&self) -> Option<usize> {
        Some(self.model.width())
    }

    fn info(&self) -> String {
        format!("{} classes, {} support vectors", self.model.n_classes(), self.model.n_vectors())
    }

    fn score(&self, input: &[f32], rows: usize, width: usize) -> Result<Scored, String> {
        check_width(self.model.width(), width)?;
        let out = self.model.classify(input, rows);
        Ok(Scored { labels: Some(out.classes.iter().map(|&c| self.labels[c]).collect()), scores: out.scores })
    }
}

#[derive(Debug)]
struct Svr(Regressor);

impl Scorer for Svr {
    fn op_name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn is_classifier(&self) -> bool {
        false
    }

    fn n_scores(&self) -> usize {
        1
    }

    fn width(&self) -> Option<usize> {
        Some(self.0.width())
    }

    fn info(&self) -> String {
        format!("{} support vectors", self.0.n_vectors())
    }

    fn score(&self, input: &[f32], rows: usize, width: usize) -> Result<Scored, String> {
        check_width(self.0.width(), width)?;
        Ok(Scored { labels: None, scores: self.0.regress(input, rows) })
    }
}
