//! Compiling a [`FeatureViewSpec`] into a [`FeatureView`]: names checked, group keys
//! resolved, request and group features typed into frame slots, on-demand expressions
//! compiled, the input vector laid out.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use std::time::Duration;

use super::plan::{Constraints, FeastKeys, FeatureView, Field, GroupPlan, Layout};
use super::spec::{FeatureSpec, FeatureViewSpec, GroupSpec};
use crate::features::feast::{self, FeastType};
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
            let (layout, field_names) = layout(g).map_err(|m| invalid(format!("group `{}`: {m}", g.name)))?;
            let mut hasher = DefaultHasher::new();
            g.name.hash(&mut hasher);
            field_names.hash(&mut hasher);
            if let Layout::Feast(keys) = &layout {
                (&keys.project, &keys.view, keys.key_types.iter().map(|t| *t as u8).collect::<Vec<_>>())
                    .hash(&mut hasher);
            }
            for f in &g.features {
                (f.name.as_str(), f.dtype as u8).hash(&mut hasher);
            }
            groups.push(GroupPlan {
                name: g.name.as_str().into(),
                key_entities,
                on_missing: g.on_missing,
                field_names,
                fields,
                layout,
                max_age: g.max_age_ms.map(Duration::from_millis),
                id: hasher.finish(),
            });
        }
        if let Some(f) = spec.request.iter().find(|f| f.feast_type.is_some()) {
            return Err(invalid(format!(
                "request feature `{}`: `feast_type` applies to Feast groups",
                f.name
            )));
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

/// A group's store layout and the hash fields it reads, checked against its declaration.
fn layout(g: &GroupSpec) -> Result<(Layout, Vec<Vec<u8>>), String> {
    let Some(spec) = &g.feast else {
        if g.max_age_ms.is_some() {
            return Err("`max_age_ms` needs a Feast group (native values carry no event time)".into());
        }
        if let Some(f) = g.features.iter().find(|f| f.feast_type.is_some()) {
            return Err(format!("feature `{}`: `feast_type` applies to Feast groups", f.name));
        }
        return Ok((Layout::Native, g.features.iter().map(|f| f.name.clone().into_bytes()).collect()));
    };
    let feast = format!("Feast project `{}`, view `{}`", spec.project, spec.view);
    if spec.key_version != feast::KEY_VERSION {
        return Err(format!(
            "{feast}: entity key serialization version {} is not read (only {}, Feast's default since 0.38)",
            spec.key_version,
            feast::KEY_VERSION
        ));
    }
    if spec.project.is_empty() || spec.view.is_empty() {
        return Err("`feast.project` and `feast.view` must not be empty".into());
    }
    if g.max_age_ms == Some(0) {
        return Err("`max_age_ms` must be above 0 (leave it out for no limit)".into());
    }
    let key_types = g
        .entities
        .iter()
        .map(|e| {
            spec.key_types.get(e).copied().ok_or_else(|| {
                format!("{feast}: join key `{e}` has no type in `feast.key_types` (string, int64 or int32)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(extra) = spec.key_types.keys().find(|k| !g.entities.contains(k)) {
        return Err(format!(
            "{feast}: `feast.key_types` names `{extra}`, which is not an entity of the group"
        ));
    }
    for f in &g.features {
        let ty = f.feast_type.unwrap_or_else(|| FeastType::default_for(f.dtype));
        if !ty.fits(f.dtype) {
            return Err(format!(
                "{feast}, feature `{}`: Feast type {ty} does not hold {} values",
                f.name, f.dtype
            ));
        }
    }
    let mut fields: Vec<Vec<u8>> =
        g.features.iter().map(|f| feast::feature_field(&spec.view, &f.name)).collect();
    fields.push(feast::timestamp_field(&spec.view));
    let keys = FeastKeys { project: spec.project.clone(), view: spec.view.clone(), key_types };
    Ok((Layout::Feast(keys), fields))
}
