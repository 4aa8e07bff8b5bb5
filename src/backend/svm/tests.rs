//! The engine on hand-made machines whose decisions are known: kernels, votes and ties,
//! the binary layouts, Platt scaling with coupling, the linear form, one-class output.

use super::classify::couple;
use super::*;

fn spec(n_classes: usize) -> ClassifierSpec {
    ClassifierSpec {
        n_classes,
        kernel: Kernel::Linear,
        vectors_per_class: Vec::new(),
        support_vectors: Vec::new(),
        coefficients: Vec::new(),
        rho: Vec::new(),
        prob_a: Vec::new(),
        prob_b: Vec::new(),
        post_transform: PostTransform::None,
    }
}

/// `c` classes, one support vector each, all coefficients 0: every decision is its `rho`.
fn constant(c: usize, rho: &[f64]) -> ClassifierSpec {
    ClassifierSpec {
        vectors_per_class: vec![1; c],
        support_vectors: vec![1.0; c],
        coefficients: vec![0.0; (c - 1) * c],
        rho: rho.to_vec(),
        ..spec(c)
    }
}

#[test]
fn kernels_follow_their_formulas() {
    let (x, v) = ([1.0f32, 2.0], [3.0, -1.0]);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(Kernel::Linear.eval(&x, &v), 1.0));
    let poly = Kernel::parse("POLY", &[0.5, 1.0, 3.0]).unwrap();
    assert!(close(poly.eval(&x, &v), 1.5f64.powi(3)));
    let rbf = Kernel::parse("RBF", &[0.1]).unwrap();
    assert!(close(rbf.eval(&x, &v), (-0.1f64 * 13.0).exp()));
    let sigmoid = Kernel::parse("SIGMOID", &[2.0, -1.0, 0.0]).unwrap();
    assert!(close(sigmoid.eval(&x, &v), 1f64.tanh()));
    assert!(Kernel::parse("CUBIC", &[]).unwrap_err().contains("CUBIC"));
}

#[test]
fn a_positive_decision_votes_for_the_first_class_of_the_pair() {
    for (rho, class) in [(0.5, 0), (-0.5, 1), (0.0, 1), (f64::NAN, 1)] {
        let m = Classifier::build(constant(2, &[rho])).unwrap();
        let out = m.classify(&[0.0], 1);
        assert_eq!(out.classes, [class], "rho {rho}");
        if !rho.is_nan() {
            assert_eq!(out.scores, [-rho as f32, rho as f32], "binary layout [-d, d]");
        }
    }
}

#[test]
fn tied_votes_go_to_the_first_class_and_decisions_are_the_scores() {
    // (0,1) > 0 votes 0, (0,2) < 0 votes 2, (1,2) > 0 votes 1: one vote each.
    let m = Classifier::build(constant(3, &[1.0, -1.0, 1.0])).unwrap();
    let out = m.classify(&[0.0], 1);
    assert_eq!(out.classes, [0]);
    assert_eq!(out.scores, [1.0, -1.0, 1.0]);
    assert_eq!(m.n_scores(), 3);
}

#[test]
fn binary_post_transforms_use_onnxruntime_layouts() {
    let d = 0.3f64;
    let cases = [
        (PostTransform::Logistic, [1.0 / (1.0 + d.exp()), 1.0 / (1.0 + (-d).exp())]),
        (PostTransform::Softmax, [1.0 - d, d]),
        (PostTransform::SoftmaxZero, [1.0 - d, d]),
    ];
    for (post, want) in cases {
        let m = Classifier::build(ClassifierSpec { post_transform: post, ..constant(2, &[d]) }).unwrap();
        let got = m.classify(&[0.0], 1).scores;
        assert!(got.iter().zip(want).all(|(g, w)| (f64::from(*g) - w).abs() < 1e-7), "{post:?}: {got:?}");
    }
}

#[test]
fn coupling_two_classes_approximates_the_pairwise_probability() {
    // r01 = 1 / (1 + e^(A d + B)) with A = -1, B = 0, d = 1: 0.731.
    let p = couple(&[1.0], &[(-1.0, 0.0)], 2);
    let r01 = 1.0 / (1.0 + (-1.0f64).exp());
    assert!((p[0] - r01).abs() < 0.005 && (p[0] - r01).abs() > 0.0, "{p:?}");
    assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
}

#[test]
fn coupling_three_classes_sums_to_one_and_ranks_the_winner_first() {
    // Class 0 beats 1 and 2 clearly; 1 and 2 are even.
    let p = couple(&[3.0, 3.0, 0.0], &[(-1.0, 0.0); 3], 3);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
    // The iteration stops within 0.005 / k: 1 and 2 come out even to that precision.
    assert!(p[0] > 0.8 && (p[1] - p[2]).abs() < 0.005 / 3.0, "{p:?}");
}

#[test]
fn a_nan_decision_leaves_uniform_probabilities() {
    let p = couple(&[f64::NAN, 0.0, 0.0], &[(-1.0, 0.0); 3], 3);
    assert!(p.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-12), "{p:?}");
}

#[test]
fn probabilities_replace_the_decisions_and_the_label_still_comes_from_votes() {
    // d = 0.1 votes class 0, but B = 1 makes class 1 the more probable.
    let m =
        Classifier::build(ClassifierSpec { prob_a: vec![-1.0], prob_b: vec![1.0], ..constant(2, &[0.1]) })
            .unwrap();
    let out = m.classify(&[0.0], 1);
    assert_eq!(out.classes, [0]);
    assert!(out.scores[1] > out.scores[0] && (out.scores[0] + out.scores[1] - 1.0).abs() < 1e-6);
}

#[test]
fn linear_form_adds_rho0_to_every_class() {
    let m = Classifier::build(ClassifierSpec {
        coefficients: vec![1.0, 0.0, 0.0, 1.0, -1.0, -1.0],
        rho: vec![0.5, 7.0, 7.0],
        ..spec(3)
    })
    .unwrap();
    assert_eq!(m.width(), 2);
    let out = m.classify(&[1.0, 2.0], 1);
    assert_eq!(out.scores, [1.5, 2.5, -2.5]);
    assert_eq!(out.classes, [1]);
}

#[test]
fn linear_form_binary_answers_the_second_class_above_the_threshold() {
    // Weights ≥ 0: class 1 when class 0 wins with a score > 0.5.
    let positive = Classifier::build(ClassifierSpec {
        coefficients: vec![1.0, 0.0, 0.0, 1.0],
        rho: vec![0.0],
        ..spec(2)
    })
    .unwrap();
    assert_eq!(positive.classify(&[0.4, 0.0, 0.6, 0.0, 0.0, 0.9], 3).classes, [0, 1, 1]);
    // A negative weight: the threshold is 0.
    let mixed = Classifier::build(ClassifierSpec {
        coefficients: vec![1.0, -1.0, 0.0, 1.0],
        rho: vec![0.0],
        ..spec(2)
    })
    .unwrap();
    // Scores [0.4, 0] and [-0.2, -0.3]: class 0 wins both, above 0 only in the first.
    assert_eq!(mixed.classify(&[0.4, 0.0, -0.5, -0.3], 2).classes, [1, 0]);
}

#[test]
fn regressors_dual_linear_and_one_class() {
    let dual = RegressorSpec {
        kernel: Kernel::Linear,
        n_supports: 2,
        support_vectors: vec![1.0, 0.0, 0.0, 1.0],
        coefficients: vec![2.0, -1.0],
        rho: vec![0.5],
        one_class: false,
    };
    let m = Regressor::build(dual.clone()).unwrap();
    assert_eq!(m.regress(&[1.0, 1.0, 0.0, 3.0], 2), [1.5, -2.5]);
    let one_class = Regressor::build(RegressorSpec { one_class: true, ..dual.clone() }).unwrap();
    assert_eq!(one_class.regress(&[1.0, 1.0, 0.0, 3.0, f32::NAN, 0.0], 3), [1.0, -1.0, -1.0]);
    let linear = Regressor::build(RegressorSpec {
        kernel: Kernel::Rbf { gamma: 1.0 },
        n_supports: 0,
        support_vectors: Vec::new(),
        ..dual
    })
    .unwrap();
    assert_eq!(linear.regress(&[1.0, 1.0], 1), [1.5], "the linear form ignores the kernel");
}

#[test]
fn inconsistent_attributes_are_refused_by_name() {
    let bad = ClassifierSpec { coefficients: vec![0.0; 5], ..constant(3, &[0.0, 0.0, 0.0]) };
    assert!(Classifier::build(bad).unwrap_err().contains("`coefficients`"));
    let bad = ClassifierSpec { rho: vec![0.0], ..constant(3, &[0.0, 0.0, 0.0]) };
    assert!(Classifier::build(bad).unwrap_err().contains("`rho`"));
    let bad = ClassifierSpec { prob_a: vec![1.0], ..constant(2, &[0.0]) };
    assert!(Classifier::build(bad).unwrap_err().contains("prob_a"));
    let bad = ClassifierSpec { support_vectors: vec![1.0; 3], ..constant(2, &[0.0]) };
    assert!(Classifier::build(bad).unwrap_err().contains("`support_vectors`"));
}
