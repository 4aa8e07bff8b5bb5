//! The ai.onnx.ml operators tract lacks (or gets wrong), registered into tract's ONNX op
//! register so that a graph mixing them with standard ops still runs as one tract plan:
//! tree ensembles and SVMs on our engines ([`trees`], [`svm`], both through one operator,
//! [`scorer`]), preprocessing and ZipMap ([`preprocess`]), string class labels for
//! tract's LinearClassifier ([`linear`]), and ArrayFeatureExtractor with onnxruntime's
//! shapes ([`feature_extractor`]).

mod attrs;
mod categories;
mod feature_extractor;
mod linear;
mod preprocess;
mod scorer;
mod svm;
mod trees;

use tract_onnx::Onnx;
use tract_onnx::pb::ModelProto;

/// tract's ONNX framework with our operators registered over its own.
pub fn onnx() -> Onnx {
    let mut onnx = tract_onnx::onnx();
    trees::register(&mut onnx.op_register);
    preprocess::register(&mut onnx.op_register);
    svm::register(&mut onnx.op_register);
    linear::register(&mut onnx.op_register);
    feature_extractor::register(&mut onnx.op_register);
    onnx
}

/// The graph's operators that `onnx` cannot build, as "`Op` (domain)", sorted, once each.
pub fn unsupported_ops(onnx: &Onnx, model: &ModelProto) -> Vec<String> {
    let mut missing: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| g.node.iter())
        .filter(|n| !onnx.op_register.0.contains_key(&n.op_type))
        .map(|n| {
            let domain = if n.domain.is_empty() { "ai.onnx" } else { n.domain.as_str() };
            format!("`{}` ({domain})", n.op_type)
        })
        .collect();
    missing.sort();
    missing.dedup();
    missing
}
