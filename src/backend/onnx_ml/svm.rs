//! SVMClassifier / SVMRegressor (ai.onnx.ml opset 1) as tract operators backed by our
//! engine ([`crate::backend::svm`]).
//!
//! String class labels: as for tree ensembles, the `label` output holds the index into
//! `classlabels_strings`; the manifest's `labels` turns it back into the name.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::Attrs;
use super::scorer::{Scored, Scorer, ScorerOp};
use crate::backend::post_transform::PostTransform;
use crate::backend::svm::{Classifier, ClassifierSpec, Kernel, Regressor, RegressorSpec};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("SVMClassifier", |ctx, node| build(ctx, node, classifier));
    reg.insert("SVMRegressor", |ctx, node| build(ctx, node, regressor));
}

fn build(
    ctx: &ParsingContext,
    node: &NodeProto,
    parse: fn(&Attrs) -> Result<ScorerOp, String>,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let op =
        parse(&Attrs::new(ctx, node)).map_err(|e| format_err!("{} `{}`: {e}", node.op_type, node.name))?;
    Ok((expand(op), vec![]))
}

fn floats(a: &Attrs, name: &str) -> Vec<f64> {
    a.floats(name).map(|v| v.iter().map(|&x| f64::from(x)).collect()).unwrap_or_default()
}

fn kernel(a: &Attrs) -> Result<Kernel, String> {
    Kernel::parse(&a.string("kernel_type").unwrap_or_else(|| "LINEAR".into()), &floats(a, "kernel_params"))
}

fn post_transform(a: &Attrs) -> Result<PostTransform, String> {
    PostTransform::parse(&a.string("post_transform").unwrap_or_else(|| "NONE".into()))
}

fn classifier(a: &Attrs) -> Result<ScorerOp, String> {
    let labels = match (a.ints("classlabels_ints"), a.strings("classlabels_strings")) {
        (Some(ints), _) if !ints.is_empty() => ints.to_vec(),
        (_, Some(strings)) if !strings.is_empty() => (0..strings.len() as i64).collect(),
        _ => return Err("no `classlabels_ints` / `classlabels_strings`".into()),
    };
    let vectors_per_class = a
        .ints("vectors_per_class")
        .unwrap_or_default()
        .iter()
        .map(|&n| usize::try_from(n).map_err(|_| format!("`vectors_per_class` holds {n}")))
        .collect::<Result<Vec<_>, String>>()?;
    let model = Classifier::build(ClassifierSpec {
        n_classes: labels.len(),
        kernel: kernel(a)?,
        vectors_per_class,
        support_vectors: floats(a, "support_vectors"),
        coefficients: floats(a, "coefficients"),
        rho: floats(a, "rho"),
        prob_a: floats(a, "prob_a"),
        prob_b: floats(a, "prob_b"),
        post_transform: post_transform(a)?,
    })?;
    Ok(ScorerOp::new(Svc { model, labels }))
}

fn regressor(a: &Attrs) -> Result<ScorerOp, String> {
    let n_supports = a.int("n_supports").unwrap_or(0);
    let model = Regressor::build(RegressorSpec {
        kernel: kernel(a)?,
        n_supports: usize::try_from(n_supports).map_err(|_| format!("`n_supports` is {n_supports}"))?,
        support_vectors: floats(a, "support_vectors"),
        coefficients: floats(a, "coefficients"),
        rho: floats(a, "rho"),
        one_class: a.int("one_class").unwrap_or(0) != 0,
    })?;
    // onnxruntime ignores the regressor's post_transform; refusing an unknown name still helps.
    post_transform(a)?;
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
