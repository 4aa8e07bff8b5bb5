//! TreeEnsembleClassifier / TreeEnsembleRegressor (ai.onnx.ml opsets 1 and 3) and
//! TreeEnsemble (opset 5) as tract operators backed by our engine ([`crate::backend::trees`]).
//!
//! String class labels: the backend's tensors are numeric, so the `label` output holds the
//! index into `classlabels_strings`; the manifest's `labels` turns it back into the name.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{Attrs, parse_node, required, same_len};
use super::scorer::{Scored, Scorer, ScorerOp};
use crate::backend::trees::{Aggregate, Child, Ensemble, Mode, NodeSpec, PostTransform, Spec, Task, Vote};

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", |ctx, node| build(ctx, node, Kind::Classifier));
    reg.insert("TreeEnsembleRegressor", |ctx, node| build(ctx, node, Kind::Regressor));
    reg.insert("TreeEnsemble", |ctx, node| build(ctx, node, Kind::Opset5));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Classifier,
    Regressor,
    Opset5,
}

fn build(
    ctx: &ParsingContext,
    node: &NodeProto,
    kind: Kind,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let spec = parse_node(ctx, node, |a| {
        let spec = match kind {
            Kind::Opset5 => spec_v5(a),
            _ => spec_v1(a, kind == Kind::Classifier),
        }?;
        Ensemble::build(spec)
    })?;
    let op = ScorerOp::new(Trees { ensemble: spec, classifier: kind == Kind::Classifier });
    Ok((expand(op), vec![]))
}

fn spec_v1(a: &Attrs, classifier: bool) -> Result<Spec, String> {
    let task = if classifier {
        Task::Classify { labels: a.class_labels("classlabels_int64s")? }
    } else {
        Task::Regress
    };
    let n_targets = match &task {
        Task::Classify { labels } => labels.len(),
        Task::Regress => a.count_or("n_targets", 1)?,
    };

    let trees = a.need_ints("nodes_treeids")?;
    let n = trees.len();
    let ids = a.need_ints("nodes_nodeids")?;
    let features = a.need_ints("nodes_featureids")?;
    let modes = a.need_strings("nodes_modes")?;
    let values = a.floats_or_tensor("nodes_values")?.unwrap_or_else(|| vec![0.0; n]);
    let yes = a.need_ints("nodes_truenodeids")?;
    let no = a.need_ints("nodes_falsenodeids")?;
    let missing = a.ints("nodes_missing_value_tracks_true").filter(|m| !m.is_empty());
    for (name, len) in [
        ("nodes_nodeids", ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", values.len()),
        ("nodes_truenodeids", yes.len()),
        ("nodes_falsenodeids", no.len()),
        ("nodes_missing_value_tracks_true", missing.map_or(n, <[i64]>::len)),
    ] {
        same_len(name, len, n)?;
    }
    let nodes = (0..n)
        .map(|i| {
            Ok(NodeSpec {
                tree: trees[i],
                id: ids[i],
                mode: Mode::parse(&modes[i])?,
                feature: features[i],
                threshold: values[i],
                members: Vec::new(),
                yes: Child::Node(yes[i]),
                no: Child::Node(no[i]),
                missing_goes_yes: missing.is_some_and(|m| m[i] != 0),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;

    let p = if classifier { "class" } else { "target" };
    let (vt, vn, vi) = (format!("{p}_treeids"), format!("{p}_nodeids"), format!("{p}_ids"));
    let vote_trees = a.need_ints(&vt)?;
    let vote_nodes = a.need_ints(&vn)?;
    let vote_ids = a.need_ints(&vi)?;
    let vw = format!("{p}_weights");
    let weights = required(a.floats_or_tensor(&vw)?, &vw)?;
    let m = vote_trees.len();
    for (name, len) in [(&vn, vote_nodes.len()), (&vi, vote_ids.len()), (&vw, weights.len())] {
        same_len(name, len, m)?;
    }
    let votes = (0..m)
        .map(|i| Vote { tree: vote_trees[i], leaf: vote_nodes[i], target: vote_ids[i], weight: weights[i] })
        .collect();
    let aggregate = if classifier {
        Aggregate::Sum
    } else {
        Aggregate::parse(&a.string_or("aggregate_function", "SUM"))?
    };
    Ok(Spec {
        nodes,
        votes,
        roots: None,
        n_targets,
        aggregate,
        post_transform: a.post_transform()?,
        base_values: a.floats_or_tensor("base_values")?.unwrap_or_default(),
        task,
    })
}

fn spec_v5(a: &Attrs) -> Result<Spec, String> {
    let features = a.need_ints("nodes_featureids")?;
    let n = features.len();
    let splits = required(a.tensor_f64("nodes_splits")?, "nodes_splits")?;
    let modes = required(a.tensor_i64("nodes_modes")?, "nodes_modes")?;
    let yes = a.need_ints("nodes_truenodeids")?;
    let no = a.need_ints("nodes_falsenodeids")?;
    let yes_leaf = a.need_ints("nodes_trueleafs")?;
    let no_leaf = a.need_ints("nodes_falseleafs")?;
    let missing = a.ints("nodes_missing_value_tracks_true").filter(|m| !m.is_empty());
    for (name, len) in [
        ("nodes_splits", splits.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", yes.len()),
        ("nodes_falsenodeids", no.len()),
        ("nodes_trueleafs", yes_leaf.len()),
        ("nodes_falseleafs", no_leaf.len()),
        ("nodes_missing_value_tracks_true", missing.map_or(n, <[i64]>::len)),
    ] {
        same_len(name, len, n)?;
    }
    // One NaN-terminated set per MEMBER node, in node order.
    let members = a.tensor_f64("membership_values")?.unwrap_or_default();
    let mut sets = members.split(|v| v.is_nan());
    let child = |leaf: i64, id: i64| if leaf != 0 { Child::Leaf(id) } else { Child::Node(id) };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let mode = Mode::from_code(modes[i])?;
        let set = if mode == Mode::Member {
            sets.next().ok_or("`membership_values` has fewer sets than MEMBER nodes")?.to_vec()
        } else {
            Vec::new()
        };
        nodes.push(NodeSpec {
            tree: -1,
            id: i as i64,
            mode: Some(mode),
            feature: features[i],
            threshold: splits[i],
            members: set,
            yes: child(yes_leaf[i], yes[i]),
            no: child(no_leaf[i], no[i]),
            missing_goes_yes: missing.is_some_and(|m| m[i] != 0),
        });
    }
    let targets = a.need_ints("leaf_targetids")?;
    let weights = required(a.tensor_f64("leaf_weights")?, "leaf_weights")?;
    same_len("leaf_weights", weights.len(), targets.len())?;
    let votes = (0..targets.len())
        .map(|i| Vote { tree: -1, leaf: i as i64, target: targets[i], weight: weights[i] })
        .collect();
    Ok(Spec {
        nodes,
        votes,
        roots: Some(a.need_ints("tree_roots")?.to_vec()),
        n_targets: a.count_or("n_targets", 1)?,
        aggregate: Aggregate::from_code(a.int("aggregate_function").unwrap_or(1))?,
        post_transform: PostTransform::from_code(a.int("post_transform").unwrap_or(0))?,
        base_values: Vec::new(),
        task: Task::Regress,
    })
}

/// A compiled ensemble as a [`Scorer`].
#[derive(Debug)]
struct Trees {
    ensemble: Ensemble,
    classifier: bool,
}

impl Scorer for Trees {
    fn op_name(&self) -> &'static str {
        if self.classifier { "TreeEnsembleClassifier" } else { "TreeEnsembleRegressor" }
    }

    fn is_classifier(&self) -> bool {
        self.classifier
    }

    fn n_scores(&self) -> usize {
        self.ensemble.n_targets
    }

    fn info(&self) -> String {
        let e = &self.ensemble;
        format!("{} trees, {} split nodes, {} targets", e.n_trees(), e.nodes.len(), e.n_targets)
    }

    fn score(&self, input: &[f32], rows: usize, width: usize) -> Result<Scored, String> {
        let e = &self.ensemble;
        if width < e.n_features {
            return Err(format!(
                "the trees read feature {}, the input has {width} columns",
                e.n_features - 1
            ));
        }
        Ok(if self.classifier {
            let out = e.classify(input, rows, width);
            Scored { labels: Some(out.labels), scores: out.scores }
        } else {
            Scored { labels: None, scores: e.regress(input, rows, width) }
        })
    }
}
