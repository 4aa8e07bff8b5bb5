//! The engine on hand-written trees: every comparison, missing-value tracking, leaves
//! with several votes, the aggregates and the binary layouts.

use super::*;

/// Tree `tree`: node 0 splits feature `f` at `t` with `mode`; true → leaf 1, false → leaf 2.
fn stump(tree: i64, f: i64, t: f64, mode: Mode, missing_yes: bool) -> Vec<NodeSpec> {
    let leaf = |id| NodeSpec {
        tree,
        id,
        mode: None,
        feature: 0,
        threshold: 0.0,
        members: vec![],
        yes: Child::Node(0),
        no: Child::Node(0),
        missing_goes_yes: false,
    };
    vec![
        NodeSpec {
            tree,
            id: 0,
            mode: Some(mode),
            feature: f,
            threshold: t,
            members: vec![],
            yes: Child::Node(1),
            no: Child::Node(2),
            missing_goes_yes: missing_yes,
        },
        leaf(1),
        leaf(2),
    ]
}

fn votes(tree: i64, yes: f64, no: f64) -> Vec<Vote> {
    vec![Vote { tree, leaf: 1, target: 0, weight: yes }, Vote { tree, leaf: 2, target: 0, weight: no }]
}

fn regressor(nodes: Vec<NodeSpec>, votes: Vec<Vote>, aggregate: Aggregate) -> Ensemble {
    Ensemble::build(Spec {
        nodes,
        votes,
        roots: None,
        n_targets: 1,
        aggregate,
        post_transform: PostTransform::None,
        base_values: vec![],
        task: Task::Regress,
    })
    .unwrap()
}

#[test]
fn every_mode_compares_as_onnx_says() {
    let cases = [
        (Mode::Leq, [1.0, 1.0, 0.0]),
        (Mode::Lt, [1.0, 0.0, 0.0]),
        (Mode::Gte, [0.0, 1.0, 1.0]),
        (Mode::Gt, [0.0, 0.0, 1.0]),
        (Mode::Eq, [0.0, 1.0, 0.0]),
        (Mode::Neq, [1.0, 0.0, 1.0]),
    ];
    for (mode, want) in cases {
        let e = regressor(stump(0, 0, 0.5, mode, false), votes(0, 1.0, 0.0), Aggregate::Sum);
        assert_eq!(e.regress(&[0.25, 0.5, 0.75], 3, 1), want.map(|v| v as f32), "{mode:?}");
    }
}

#[test]
fn missing_values_follow_their_tracking_flag() {
    for (missing_yes, want) in [(true, 1.0), (false, 0.0)] {
        let e = regressor(stump(0, 0, 0.5, Mode::Leq, missing_yes), votes(0, 1.0, 0.0), Aggregate::Sum);
        assert_eq!(e.regress(&[f32::NAN], 1, 1), [want]);
    }
}

#[test]
fn mixed_modes_and_member_sets_walk_per_node() {
    let mut nodes = stump(0, 0, 0.5, Mode::Member, false);
    nodes[0].members = vec![1.0, 3.0];
    nodes.extend(stump(1, 1, 0.5, Mode::Gt, false));
    let mut v = votes(0, 1.0, 0.0);
    v.extend(votes(1, 10.0, 0.0));
    let e = regressor(nodes, v, Aggregate::Sum);
    assert!(matches!(e.modes, layout::Modes::PerNode(_)));
    assert_eq!(e.regress(&[3.0, 1.0, 2.0, 0.0], 2, 2), [11.0, 0.0]);
}

#[test]
fn aggregates_min_max_average() {
    let mut nodes = stump(0, 0, 0.5, Mode::Leq, false);
    nodes.extend(stump(1, 0, 0.5, Mode::Leq, false));
    let mut v = votes(0, 2.0, 0.0);
    v.extend(votes(1, 6.0, 0.0));
    for (agg, want) in
        [(Aggregate::Sum, 8.0), (Aggregate::Average, 4.0), (Aggregate::Min, 2.0), (Aggregate::Max, 6.0)]
    {
        let e = regressor(nodes.clone(), v.clone(), agg);
        assert_eq!(e.regress(&[0.0], 1, 1), [want], "{agg:?}");
    }
}

#[test]
fn binary_margin_gives_two_columns_and_the_right_label() {
    // One score column with signed weights (LightGBM style): label on the raw margin.
    let e = Ensemble::build(Spec {
        nodes: stump(0, 0, 0.5, Mode::Leq, false),
        votes: votes(0, -2.0, 3.0),
        roots: None,
        n_targets: 2,
        aggregate: Aggregate::Sum,
        post_transform: PostTransform::Logistic,
        base_values: vec![],
        task: Task::Classify { labels: vec![7, 9] },
    })
    .unwrap();
    let out = e.classify(&[0.0, 1.0], 2, 1);
    assert_eq!(out.labels, [7, 9]);
    let sigmoid = |x: f64| (1.0 / (1.0 + (-x).exp())) as f32;
    assert!((out.scores[1] - sigmoid(-2.0)).abs() < 1e-7 && (out.scores[0] - sigmoid(2.0)).abs() < 1e-7);
    assert!((out.scores[3] - sigmoid(3.0)).abs() < 1e-7);
}

#[test]
fn a_tree_that_points_nowhere_is_refused() {
    let mut nodes = stump(0, 0, 0.5, Mode::Leq, false);
    nodes.pop();
    nodes[0].no = Child::Node(9);
    let err = Ensemble::build(Spec {
        nodes,
        votes: votes(0, 1.0, 0.0),
        roots: None,
        n_targets: 1,
        aggregate: Aggregate::Sum,
        post_transform: PostTransform::None,
        base_values: vec![],
        task: Task::Regress,
    })
    .unwrap_err();
    assert!(err.contains("no node 9"), "{err}");
}
