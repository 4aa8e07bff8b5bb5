//! Feature views: the spec a model version carries (TOML) and its compiled form, which
//! turns entity keys, request values and fetched group values into the model's input
//! vector. The serving path and `fti-serve transform` both go through this file, so the
//! training pipeline and the server cannot disagree about a feature.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::value::{DType, DefaultValue, RequestValue, Value};
use crate::Error;
use crate::transform::{Compiler, Frame, Program, Slot, TransformError, Type};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewSpec {
    pub name: String,
    /// Entity keys a request must send.
    pub entities: Vec<String>,
    /// Model input vector, in order.
    pub input: Vec<String>,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    #[serde(default)]
    pub request: Vec<FeatureSpec>,
    #[serde(default)]
    pub on_demand: Vec<OnDemandSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// Key columns in key order; a subset of the view's entities.
    pub entities: Vec<String>,
    #[serde(default)]
    pub on_missing: OnMissing,
    pub features: Vec<FeatureSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Fill every feature of the group with its default and report them.
    #[default]
    Default,
    /// Answer 404.
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub name: String,
    pub dtype: DType,
    /// Absent: the value is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandSpec {
    pub name: String,
    pub expr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("feature view `{view}`: {message}")]
    Invalid { view: String, message: String },
    #[error("feature view `{view}`: {source}")]
    Transform { view: String, source: TransformError },
}

/// One precomputed feature of a group, or one request feature.
#[derive(Debug)]
pub struct Field {
    pub name: Arc<str>,
    pub dtype: DType,
    pub default: Option<Value>,
    slot: Slot,
}

#[derive(Debug)]
pub struct GroupPlan {
    pub name: Arc<str>,
    /// Positions in the view's entity list, in key order.
    key_entities: Vec<usize>,
    pub on_missing: OnMissing,
    pub fields: Vec<Field>,
    field_names: Vec<String>,
    /// Identifies (group, fields, dtypes): cache entries are shared by views that read
    /// the same fields the same way.
    pub id: u64,
}

impl GroupPlan {
    pub fn field_names(&self) -> &[String] {
        &self.field_names
    }

    /// The group part of the store key for one row: entity values in key order, joined
    /// with `:`.
    pub fn entity_key(&self, entities: &[String]) -> String {
        let mut key = String::new();
        for (i, &e) in self.key_entities.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            key.push_str(&entities[e]);
        }
        key
    }

    pub fn entity_names<'a>(&'a self, view: &'a FeatureView) -> impl Iterator<Item = &'a str> {
        self.key_entities.iter().map(|&e| view.entities[e].as_str())
    }

    /// Types raw stored strings. A value that does not parse counts as missing: one bad
    /// cell written by a feature pipeline must not fail every request for that entity.
    pub fn parse(&self, raw: Vec<Option<String>>) -> (Arc<[Option<Value>]>, usize) {
        let mut bad = 0;
        let values = self
            .fields
            .iter()
            .zip(raw)
            .map(|(field, raw)| {
                let raw = raw?;
                let parsed = field.dtype.parse_stored(&raw);
                if parsed.is_err() {
                    bad += 1;
                }
                parsed.ok()
            })
            .collect();
        (values, bad)
    }
}

/// What the store returned for one (group, entity): `None` when the entity is absent.
pub type GroupValues = Option<Arc<[Option<Value>]>>;

#[derive(Debug)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    pub groups: Vec<GroupPlan>,
    pub request: Vec<Field>,
    program: Program,
    /// Index into `Frame::nums` of each model input column.
    input: Vec<usize>,
    input_names: Vec<String>,
    spec: FeatureViewSpec,
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
            Ok(Field { name: f.name.as_str().into(), dtype: f.dtype, default, slot })
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

    pub fn spec(&self) -> &FeatureViewSpec {
        &self.spec
    }

    /// Width of the model input vector.
    pub fn width(&self) -> usize {
        self.input.len()
    }

    /// Column names of the input vector (vector features expanded as `name.label`).
    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn new_frame(&self) -> Frame {
        self.program.frame()
    }

    /// Orders the request's entity keys as the view lists them; rejects missing and
    /// unknown keys. `path` prefixes field names in errors (`rows[3].`).
    pub fn resolve_entities(&self, given: &[(String, String)], path: &str) -> Result<Vec<String>, Error> {
        if let Some((unknown, _)) = given.iter().find(|(k, _)| !self.entities.contains(k)) {
            return Err(Error::invalid(
                format!("{path}entities.{unknown}"),
                format!("unknown entity key (this model takes {})", self.entities.join(", ")),
            ));
        }
        self.entities
            .iter()
            .map(|name| match given.iter().find(|(k, _)| k == name) {
                Some((_, v)) if !v.is_empty() => Ok(v.clone()),
                Some(_) => Err(Error::invalid(format!("{path}entities.{name}"), "must not be empty")),
                None => Err(Error::invalid(format!("{path}entities.{name}"), "required")),
            })
            .collect()
    }

    /// Writes the request features into the frame. Unknown names are ignored so clients
    /// can send the union of what several versions need across a promotion.
    pub fn fill_request(
        &self,
        frame: &mut Frame,
        given: &[(String, RequestValue)],
        path: &str,
        missing: &mut Vec<Arc<str>>,
    ) -> Result<(), Error> {
        for field in &self.request {
            let value = given.iter().find(|(k, _)| **k == *field.name).map(|(_, v)| v);
            match value {
                Some(RequestValue::Null) | None => match &field.default {
                    Some(default) => {
                        write(frame, field.slot, default.clone());
                        missing.push(field.name.clone());
                    }
                    None => {
                        return Err(Error::invalid(format!("{path}features.{}", field.name), "required"));
                    }
                },
                Some(value) => {
                    let typed = field.dtype.from_request(value).map_err(|message| {
                        Error::invalid(format!("{path}features.{}", field.name), message)
                    })?;
                    write(frame, field.slot, typed);
                }
            }
        }
        Ok(())
    }

    /// Writes one group's fetched values (or defaults) into the frame, following the
    /// group's missing-entity policy.
    pub fn fill_group(
        &self,
        frame: &mut Frame,
        group: usize,
        values: &GroupValues,
        entity: &str,
        missing: &mut Vec<Arc<str>>,
    ) -> Result<(), Error> {
        let plan = &self.groups[group];
        let Some(values) = values else {
            if plan.on_missing == OnMissing::Error {
                return Err(Error::EntityNotFound { group: plan.name.to_string(), entity: entity.into() });
            }
            return plan.fields.iter().try_for_each(|f| fill_default(frame, plan, f, entity, missing));
        };
        for (field, value) in plan.fields.iter().zip(values.iter()) {
            match value {
                Some(v) => write(frame, field.slot, v.clone()),
                None => fill_default(frame, plan, field, entity, missing)?,
            }
        }
        Ok(())
    }

    /// Fills every non-on-demand feature from named strings, the way feature files and
    /// `fti-serve transform` hold them: `None` or an empty string means missing, which
    /// takes the default. Errors carry the feature name.
    pub fn fill_from_strings<'a>(
        &self,
        frame: &mut Frame,
        mut get: impl FnMut(&str) -> Option<&'a str>,
        missing: &mut Vec<Arc<str>>,
    ) -> Result<(), (String, String)> {
        let fields = self.groups.iter().flat_map(|g| g.fields.iter()).chain(self.request.iter());
        for field in fields {
            match get(&field.name).filter(|s| !s.is_empty()) {
                Some(raw) => {
                    let value = field.dtype.parse_stored(raw).map_err(|m| (field.name.to_string(), m))?;
                    write(frame, field.slot, value);
                }
                None => match &field.default {
                    Some(default) => {
                        write(frame, field.slot, default.clone());
                        missing.push(field.name.clone());
                    }
                    None => return Err((field.name.to_string(), "required value missing".into())),
                },
            }
        }
        Ok(())
    }

    /// Column names of the on-demand features (vectors expanded), in definition order.
    pub fn on_demand_columns(&self) -> Vec<String> {
        let mut columns = Vec::new();
        for name in self.program.outputs() {
            match self.program.lookup(name) {
                Some((Slot::Vector { len, .. }, _)) => {
                    let labels = self.program.vector_labels(name).unwrap_or(&[]);
                    columns.extend((0..len).map(|i| {
                        format!("{name}.{}", labels.get(i).map_or_else(|| i.to_string(), Clone::clone))
                    }));
                }
                _ => columns.push(name.to_string()),
            }
        }
        columns
    }

    /// The on-demand values of a computed frame, aligned with [`Self::on_demand_columns`].
    pub fn on_demand_values(&self, frame: &Frame) -> Vec<Value> {
        let mut values = Vec::new();
        for name in self.program.outputs() {
            match self.program.lookup(name) {
                Some((Slot::Num(i), _)) => values.push(Value::Num(frame.nums[i])),
                Some((Slot::Str(i), _)) => values.push(Value::Str(frame.strs[i].clone())),
                Some((Slot::Vector { start, len }, _)) => {
                    values.extend(frame.nums[start..start + len].iter().map(|&n| Value::Num(n)));
                }
                None => {}
            }
        }
        values
    }

    /// Computes the on-demand features of a filled frame.
    pub fn compute(&self, frame: &mut Frame) {
        self.program.run(frame);
    }

    /// Appends the frame's model input vector to `out`.
    pub fn push_input(&self, frame: &Frame, out: &mut Vec<f32>) {
        out.extend(self.input.iter().map(|&i| frame.nums[i] as f32));
    }

    /// The input vector in f64 with its column names, for `return_features` and the CLI.
    pub fn input_values<'a>(&'a self, frame: &'a Frame) -> impl Iterator<Item = (&'a str, f64)> {
        self.input_names.iter().map(String::as_str).zip(self.input.iter().map(|&i| frame.nums[i]))
    }
}

fn write(frame: &mut Frame, slot: Slot, value: Value) {
    match (slot, value) {
        (Slot::Num(i), Value::Num(n)) => frame.nums[i] = n,
        (Slot::Str(i), Value::Str(s)) => frame.strs[i] = s,
        // Slots are typed from the same dtype that typed the value; a mismatch is a bug
        // in this file, and leaving the slot as NaN/empty is the safest outcome.
        (slot, value) => debug_assert!(false, "slot {slot:?} cannot hold {value:?}"),
    }
}

fn fill_default(
    frame: &mut Frame,
    plan: &GroupPlan,
    field: &Field,
    entity: &str,
    missing: &mut Vec<Arc<str>>,
) -> Result<(), Error> {
    match &field.default {
        Some(default) => {
            write(frame, field.slot, default.clone());
            missing.push(field.name.clone());
            Ok(())
        }
        None => Err(Error::FeatureMissing {
            group: plan.name.to_string(),
            entity: entity.into(),
            feature: field.name.to_string(),
        }),
    }
}
