//! Filling a frame for one row: the one fill path. Serving (`predict`) and offline
//! feature computation (`fti-serve transform`) both call these functions, so a missing
//! entity, a missing or malformed value and a default mean the same thing in training
//! data and at serving time.

use std::sync::Arc;

use super::plan::{Constraints, FeatureView, Field, GroupPlan, GroupValues};
use super::spec::OnMissing;
use crate::Error;
use crate::features::value::{RequestValue, Value};
use crate::transform::{Frame, Slot};

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

    /// Types what a store holds for one (group, entity): `raw` is `None` when the key is
    /// absent, else each field's stored string. An entity none of whose fields is stored
    /// is not found, whichever store answered (Redis cannot tell the two apart). A value
    /// that does not parse counts as missing: one bad cell written by a feature pipeline
    /// must not fail every request for that entity. Returns the values and the number of
    /// values that did not parse.
    pub fn from_stored(&self, raw: Option<Vec<Option<String>>>) -> (GroupValues, usize) {
        match raw {
            Some(raw) if raw.iter().any(Option::is_some) => {
                let (values, bad) = self.parse(raw);
                (Some(values), bad)
            }
            _ => (None, 0),
        }
    }

    fn parse(&self, raw: Vec<Option<String>>) -> (Arc<[Option<Value>]>, usize) {
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

impl FeatureView {
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
                    let typed = field
                        .dtype
                        .from_request(value)
                        .and_then(|typed| field.constraints.check(typed))
                        .map_err(|message| {
                            Error::invalid(format!("{path}features.{}", field.name), message)
                        })?;
                    write(frame, field.slot, typed);
                }
            }
        }
        Ok(())
    }

    /// Writes one row's fetched group values (or defaults) into the frame, following each
    /// group's missing-entity policy. `values[g]` and `entities[g]` (the entity key, for
    /// messages) belong to `self.groups[g]`.
    pub fn fill_groups(
        &self,
        frame: &mut Frame,
        values: &[GroupValues],
        entities: &[String],
        missing: &mut Vec<Arc<str>>,
    ) -> Result<(), Error> {
        for ((plan, values), entity) in self.groups.iter().zip(values).zip(entities) {
            fill_group(frame, plan, values, entity, missing)?;
        }
        Ok(())
    }
}

fn fill_group(
    frame: &mut Frame,
    plan: &GroupPlan,
    values: &GroupValues,
    entity: &str,
    missing: &mut Vec<Arc<str>>,
) -> Result<(), Error> {
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

impl Constraints {
    /// Passes a typed request value through, or says which bound it breaks.
    pub fn check(&self, value: Value) -> Result<Value, String> {
        if let Value::Num(n) = value {
            if !n.is_finite() && !self.allow_non_finite {
                return Err(format!("must be a finite number, got {n}"));
            }
            if let Some(min) = self.minimum
                && n < min
            {
                return Err(format!("must be at least {min}, got {n}"));
            }
            if let Some(max) = self.maximum
                && n > max
            {
                return Err(format!("must be at most {max}, got {n}"));
            }
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&value)
        {
            let list: Vec<String> = allowed
                .iter()
                .map(|v| match v {
                    Value::Num(n) => n.to_string(),
                    Value::Str(s) => format!("{s:?}"),
                })
                .collect();
            let got = match &value {
                Value::Num(n) => n.to_string(),
                Value::Str(s) => format!("{s:?}"),
            };
            return Err(format!("must be one of {}, got {got}", list.join(", ")));
        }
        Ok(value)
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
