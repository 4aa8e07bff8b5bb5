//! The `post_transform` of the ai.onnx.ml scorers (tree ensembles, SVMs), with
//! onnxruntime's formulas: its outputs are the reference, approximations included.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostTransform {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(s: &str) -> Result<PostTransform, String> {
        Ok(match s {
            "NONE" => PostTransform::None,
            "SOFTMAX" => PostTransform::Softmax,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => return Err(format!("unknown post_transform `{other}`")),
        })
    }

    /// ai.onnx.ml opset 5 codes.
    pub fn from_code(code: i64) -> Result<PostTransform, String> {
        Ok(match code {
            0 => PostTransform::None,
            1 => PostTransform::Softmax,
            2 => PostTransform::Logistic,
            3 => PostTransform::SoftmaxZero,
            4 => PostTransform::Probit,
            other => return Err(format!("unknown post_transform {other}")),
        })
    }
}

/// Applies `post` to one row of scores in place.
pub fn transform(row: &mut [f64], post: PostTransform) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
        PostTransform::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
        PostTransform::Softmax => {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        PostTransform::SoftmaxZero => {
            // Zeros stay (nearly) zero: they are classes no tree voted for.
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                if v.abs() > 1e-7 {
                    *v = (*v - max).exp();
                    sum += *v;
                } else {
                    *v *= (-max).exp();
                }
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

pub fn logistic(v: f64) -> f64 {
    let p = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - p } else { p }
}

/// onnxruntime computes probit with Winitzki's closed-form approximation of erf⁻¹
/// (a = 0.147), in float32; the same formula here keeps outputs within 1e-6 of it.
pub fn probit(v: f64) -> f64 {
    let x = (2.0 * v - 1.0) as f32;
    let sign = if x < 0.0 { -1.0f32 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let a = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let b = ln / 0.147;
    let erfinv = sign * (-a + (a * a - b).sqrt()).sqrt();
    f64::from(std::f32::consts::SQRT_2 * erfinv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_inverts_the_normal_cdf_closely() {
        // Φ(1) = 0.841344746: the approximation is good to ~1e-3.
        assert!((probit(0.841_344_746) - 1.0).abs() < 2e-3);
        assert!(probit(0.5).abs() < 1e-6);
    }

    #[test]
    fn softmax_zero_leaves_unvoted_classes_at_zero() {
        let mut row = vec![0.0, 1.0, 2.0];
        transform(&mut row, PostTransform::SoftmaxZero);
        assert!(row[0].abs() < 0.2 && (row[1] + row[2] - 1.0).abs() < 1e-12);
        let mut row = vec![0.0, 1.0, 2.0];
        transform(&mut row, PostTransform::Softmax);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
