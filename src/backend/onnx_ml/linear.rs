//! LinearClassifier with string class labels: tract's own operator only builds with
//! integer labels, so the node is handed to it with `classlabels_ints = 0..n` instead.
//! The label output then holds the index into the string labels, as for tree ensembles.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, NodeProto};
use tract_onnx::tract_hir::internal::*;

use super::attrs::Attrs;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("LinearClassifier", linear_classifier);
}

fn linear_classifier(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    // tract's builder, looked up in a register of its own (ours maps the name here).
    let Some(tract_builder) = tract_onnx::onnx().op_register.0.get("LinearClassifier").copied() else {
        bail!("tract has no LinearClassifier");
    };
    let strings = Attrs::new(ctx, node).strings("classlabels_strings").map_or(0, |s| s.len());
    if strings == 0 {
        return tract_builder(ctx, node);
    }
    let mut node = node.clone();
    node.attribute.retain(|a| a.name != "classlabels_strings");
    node.attribute.push(AttributeProto {
        name: "classlabels_ints".into(),
        r#type: AttributeType::Ints as i32,
        ints: (0..strings as i64).collect(),
        ..AttributeProto::default()
    });
    tract_builder(ctx, &node)
}
