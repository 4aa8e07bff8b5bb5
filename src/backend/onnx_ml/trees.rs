//! TreeEnsembleClassifier / TreeEnsembleRegressor (ai.onnx.ml opsets 1 and 3) and
//! TreeEnsemble (opset 5) as tract operators backed by our engine ([`crate::backend::trees`]).
//!
//! String class labels: the backend's tensors are numeric, so the `label` output holds the
//! index into `classlabels_strings`; the manifest's `labels` turns it back into the name.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::Attrs;
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
    let attrs = Attrs::new(ctx, node);
    let spec = match kind {
        Kind::Opset5 => spec_v5(&attrs),
        _ => spec_v1(&attrs, kind == Kind::Classifier),
    }
    .and_then(Ensemble::build)
    .map_err(|e| format_err!("{} `{}`: {e}", node.op_type, node.name))?;
    let op = ScorerOp::new(Trees { ensemble: spec, classifier: kind == Kind::Classifier });
    Ok((expand(op), vec![]))
}

fn required<'a, T: ?Sized>(v: Option<&'a T>, name: &str) -> Result<&'a T, String> {
    v.ok_or_else(|| format!("attribute `{name}` is missing"))
}

fn same_len(name: &str, len: usize, expected: usize) -> Result<(), String> {
    if len == expected {
        Ok(())
    } else {
        Err(format!("attribute `{name}` has {len} values, expected {expected}"))
    }
}

fn spec_v1(a: &Attrs, classifier: bool) -> Result<Spec, String> {
    let task = if classifier {
        let labels = match (a.ints("classlabels_int64s"), a.strings("classlabels_strings")) {
            (Some(ints), _) if !ints.is_empty() => ints.to_vec(),
            (_, Some(strings)) if !strings.is_empty() => (0..strings.len() as i64).collect(),
            _ => return Err("no `classlabels_int64s` / `classlabels_strings`".into()),
        };
        Task::Classify { labels }
    } else {
        Task::Regress
    };
    let n_targets = match &task {
        Task::Classify { labels } => labels.len(),
        Task::Regress => usize::try_from(a.int("n_targets").unwrap_or(1)).map_err(|e| e.to_string())?,
    };

    let trees = required(a.ints("nodes_treeids"), "nodes_treeids")?;
    let n = trees.len();
    let ids = required(a.ints("nodes_nodeids"), "nodes_nodeids")?;
    let features = required(a.ints("nodes_featureids"), "nodes_featureids")?;
    let modes = a.strings("nodes_modes").ok_or("attribute `nodes_modes` is missing")?;
    let values = a.floats_or_tensor("nodes_values")?.unwrap_or_else(|| vec![0.0; n]);
    let yes = required(a.ints("nodes_truenodeids"), "nodes_truenodeids")?;
    let no = required(a.ints("nodes_falsenodeids"), "nodes_falsenodeids")?;
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
    let vote_trees = required(a.ints(&vt), &vt)?;
    let vote_nodes = required(a.ints(&vn), &vn)?;
    let vote_ids = required(a.ints(&vi), &vi)?;
    let weights =
        a.floats_or_tensor(&format!("{p}_weights"))?.ok_or(format!("attribute `{p}_weights` is missing"))?;
    let m = vote_trees.len();
    for (name, len) in
        [(&vn, vote_nodes.len()), (&vi, vote_ids.len()), (&format!("{p}_weights"), weights.len())]
    {
        same_len(name, len, m)?;
    }
    let votes = (0..m)
        .map(|i| Vote { tree: vote_trees[i], leaf: vote_nodes[i], target: vote_ids[i], weight: weights[i] })
        .collect();
    let aggregate = if classifier {
        Aggregate::Sum
    } else {
        Aggregate::parse(&a.string("aggregate_function").unwrap_or_else(|| "SUM".into()))?
    };
    Ok(Spec {
        nodes,
        votes,
        roots: None,
        n_targets,
        aggregate,
        post_transform: PostTransform::parse(&a.string("post_transform").unwrap_or_else(|| "NONE".into()))?,
        base_values: a.floats_or_tensor("base_values")?.unwrap_or_default(),
        task,
    })
}

fn spec_v5(a: &Attrs) -> Result<Spec, String> {
    let features = required(a.ints("nodes_featureids"), "nodes_featureids")?;
    let n = features.len();
    let splits = a.tensor_f64("nodes_splits")?.ok_or("attribute `nodes_splits` is missing")?;
    let modes = a.tensor_i64("nodes_modes")?.ok_or("attribute `nodes_modes` is missing")?;
    let yes = required(a.ints("nodes_truenodeids"), "nodes_truenodeids")?;
    let no = required(a.ints("nodes_falsenodeids"), "nodes_falsenodeids")?;
    let yes_leaf = required(a.ints("nodes_trueleafs"), "nodes_trueleafs")?;
    let no_leaf = required(a.ints("nodes_falseleafs"), "nodes_falseleafs")?;
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
    let targets = required(a.ints("leaf_targetids"), "leaf_targetids")?;
    let weights = a.tensor_f64("leaf_weights")?.ok_or("attribute `leaf_weights` is missing")?;
    same_len("leaf_weights", weights.len(), targets.len())?;
    let votes = (0..targets.len())
        .map(|i| Vote { tree: -1, leaf: i as i64, target: targets[i], weight: weights[i] })
        .collect();
    Ok(Spec {
        nodes,
        votes,
        roots: Some(required(a.ints("tree_roots"), "tree_roots")?.to_vec()),
        n_targets: usize::try_from(a.int("n_targets").unwrap_or(1)).map_err(|e| e.to_string())?,
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
