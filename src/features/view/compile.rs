//! Compiling a [`FeatureViewSpec`] into a [`FeatureView`]: names checked, group keys
//! resolved, request and group features typed into frame slots, on-demand expressions
//! compiled, the input vector laid out.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::plan::{Constraints, FeatureView, Field, GroupPlan};
use super::spec::{FeatureSpec, FeatureViewSpec};
use crate::features::value::DType;
use crate::transform::{Compiler, Slot, TransformError, Type};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("feature view `{view}`: {message}")]
    Invalid { view: String, message: String },
    #[error("feature view `{view}`: {source}")]
    Transform { view: String, source: TransformError },
}

impl FeatureView {
    pub fn compile(spec: FeatureViewSpec) -> Result<FeatureView, ViewError> {
        let view = spec.name.clone();
        let invalid = |message: String| ViewError::Invalid { view: view.clone(), message };
        if spec.name.trim().is_empty() {
            return Err(invalid("`name` must not be empty".into()));
        }
        if spec.entities.is_empty() {
            return Err(invalid("`entities` must list at least one entity key".into()));
        }
        let mut seen = HashSet::new();
        for e in &spec.entities {
            if e.is_empty() || !seen.insert(e.as_str()) {
                return Err(invalid(format!("entity `{e}` is empty or listed twice")));
            }
        }

        let mut compiler = Compiler::new();
        let constraints = |f: &FeatureSpec| -> Result<Constraints, ViewError> {
            let numeric = matches!(f.dtype, DType::Float | DType::Int);
            if (f.minimum.is_some() || f.maximum.is_some()) && !numeric {
                return Err(invalid(format!("feature `{}`: minimum and maximum apply to numbers", f.name)));
            }
            if let (Some(lo), Some(hi)) = (f.minimum, f.maximum)
                && lo > hi
            {
                return Err(invalid(format!("feature `{}`: minimum {lo} is above maximum {hi}", f.name)));
            }
            let allowed = match &f.allowed {
                None => None,
                Some(values) if values.is_empty() => {
                    return Err(invalid(format!("feature `{}`: `allowed` must not be empty", f.name)));
                }
                Some(values) => Some(
                    values
                        .iter()
                        .map(|v| v.to_value(f.dtype))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|m| invalid(format!("allowed values of feature `{}`: {m}", f.name)))?,
                ),
            };
            Ok(Constraints {
                minimum: f.minimum,
                maximum: f.maximum,
                allowed,
                allow_non_finite: f.allow_non_finite,
            })
        };
        let declare = |f: &FeatureSpec, compiler: &mut Compiler| -> Result<Field, ViewError> {
            let ty = match f.dtype {
                DType::Float | DType::Int => Type::Num,
                DType::Bool => Type::Bool,
                DType::String => Type::Str,
            };
            let default = match &f.default {
                None => None,
                Some(d) => Some(
                    d.to_value(f.dtype)
                        .map_err(|m| invalid(format!("default of feature `{}`: {m}", f.name)))?,
                ),
            };
            let slot = compiler
                .input(&f.name, ty)
                .map_err(|source| ViewError::Transform { view: view.clone(), source })?;
            Ok(Field {
                name: f.name.as_str().into(),
                dtype: f.dtype,
                default,
                constraints: constraints(f)?,
                slot,
            })
        };

        let mut groups = Vec::with_capacity(spec.groups.len());
        let mut group_names = HashSet::new();
        for g in &spec.groups {
            if g.name.is_empty() || !group_names.insert(g.name.as_str()) {
                return Err(invalid(format!("group `{}` is empty or listed twice", g.name)));
            }
            if g.entities.is_empty() {
                return Err(invalid(format!("group `{}`: `entities` must not be empty", g.name)));
            }
            let key_entities = g
                .entities
                .iter()
                .map(|e| {
                    spec.entities.iter().position(|v| v == e).ok_or_else(|| {
                        invalid(format!(
                            "group `{}`: entity `{e}` is not one of the view's entities {:?}",
                            g.name, spec.entities
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let fields =
                g.features.iter().map(|f| declare(f, &mut compiler)).collect::<Result<Vec<_>, _>>()?;
            if let Some(f) = g.features.iter().find(|f| f.constrained()) {
                return Err(invalid(format!(
                    "group `{}`, feature `{}`: minimum, maximum, allowed and allow_non_finite apply to \
                     request features; stored values are taken as the feature pipeline wrote them",
                    g.name, f.name
                )));
            }
            let mut hasher = DefaultHasher::new();
            g.name.hash(&mut hasher);
            for f in &g.features {
                (f.name.as_str(), f.dtype as u8).hash(&mut hasher);
            }
            groups.push(GroupPlan {
                name: g.name.as_str().into(),
                key_entities,
                on_missing: g.on_missing,
                field_names: g.features.iter().map(|f| f.name.clone()).collect(),
                fields,
                id: hasher.finish(),
            });
        }
        let request =
            spec.request.iter().map(|f| declare(f, &mut compiler)).collect::<Result<Vec<_>, _>>()?;
        for od in &spec.on_demand {
            compiler
                .define(&od.name, &od.expr)
                .map_err(|source| ViewError::Transform { view: view.clone(), source })?;
        }
        let program = compiler.finish();

        if spec.input.is_empty() {
            return Err(invalid("`input` must list at least one feature".into()));
        }
        let mut input = Vec::new();
        let mut input_names = Vec::new();
        for name in &spec.input {
            match program.lookup(name) {
                None => return Err(invalid(format!("input `{name}` is not a feature of the view"))),
                Some((Slot::Num(i), _)) => {
                    input.push(i);
                    input_names.push(name.clone());
                }
                Some((Slot::Vector { start, len }, _)) => {
                    let labels = program.vector_labels(name).unwrap_or(&[]);
                    for i in 0..len {
                        input.push(start + i);
                        let label = labels.get(i).map_or_else(|| i.to_string(), Clone::clone);
                        input_names.push(format!("{name}.{label}"));
                    }
                }
                Some((Slot::Str(_), _)) => {
                    return Err(invalid(format!(
                        "input `{name}` is a string; models take numbers (use one_hot)"
                    )));
                }
            }
        }

        Ok(FeatureView {
            name: spec.name.clone(),
            entities: spec.entities.clone(),
            groups,
            request,
            program,
            input,
            input_names,
            spec,
        })
    }
}
