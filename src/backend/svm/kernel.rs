//! The kernels of ai.onnx.ml SVMs, `kernel_params = [gamma, coef0, degree]`.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// `x·v`: gamma and coef0 do not apply (onnxruntime ignores them too).
    Linear,
    /// `(gamma x·v + coef0)^degree`
    Poly { gamma: f64, coef0: f64, degree: f64 },
    /// `exp(-gamma |x - v|²)`
    Rbf { gamma: f64 },
    /// `tanh(gamma x·v + coef0)`
    Sigmoid { gamma: f64, coef0: f64 },
}

impl Kernel {
    /// `kernel_type` and `kernel_params`; missing parameters are 0.
    pub fn parse(name: &str, params: &[f64]) -> Result<Kernel, String> {
        if params.len() > 3 {
            return Err(format!(
                "`kernel_params` has {} values, expected gamma, coef0, degree",
                params.len()
            ));
        }
        let p = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (p(0), p(1), p(2));
        Ok(match name {
            "LINEAR" => Kernel::Linear,
            "POLY" => Kernel::Poly { gamma, coef0, degree },
            "RBF" => Kernel::Rbf { gamma },
            "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
            other => return Err(format!("unknown kernel_type `{other}`")),
        })
    }

    /// The kernel between an input row and a support vector of the same width.
    pub fn eval(self, x: &[f32], v: &[f64]) -> f64 {
        let dot = || x.iter().zip(v).map(|(&a, &b)| f64::from(a) * b).sum::<f64>();
        match self {
            Kernel::Linear => dot(),
            Kernel::Poly { gamma, coef0, degree } => (gamma * dot() + coef0).powf(degree),
            Kernel::Rbf { gamma } => {
                let d2: f64 = x.iter().zip(v).map(|(&a, &b)| (f64::from(a) - b).powi(2)).sum();
                (-gamma * d2).exp()
            }
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}
