//! Filling a frame for one row: the one fill path. Serving (`predict`) and offline
//! feature computation (`fti-serve transform`) both call these functions, so a missing
//! entity, a missing or malformed value and a default mean the same thing in training
//! data and at serving time.

use std::sync::Arc;

use super::plan::{Constraints, FeatureView, Field, GroupPlan, GroupRead, Layout};
use super::spec::OnMissing;
use crate::Error;
use crate::features::value::{RequestValue, Value};
use crate::transform::{Frame, Slot};

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
        let values = self
            .entities
            .iter()
            .map(|name| match given.iter().find(|(k, _)| k == name) {
                Some((_, v)) if !v.is_empty() => Ok(v.clone()),
                Some(_) => Err(Error::invalid(format!("{path}entities.{name}"), "must not be empty")),
                None => Err(Error::invalid(format!("{path}entities.{name}"), "required")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Feast's integer join keys must be integers: said here, before any lookup.
        for plan in &self.groups {
            if let Layout::Feast(keys) = &plan.layout {
                for (&e, ty) in plan.key_entities.iter().zip(&keys.key_types) {
                    ty.check(&values[e])
                        .map_err(|m| Error::invalid(format!("{path}entities.{}", self.entities[e]), m))?;
                }
            }
        }
        Ok(values)
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
    /// group's missing-entity policy (a stale group is missing too). `values[g]` and
    /// `entities[g]` (the entity key, for messages) belong to `self.groups[g]`.
    pub fn fill_groups(
        &self,
        frame: &mut Frame,
        values: &[GroupRead],
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
    read: &GroupRead,
    entity: &str,
    missing: &mut Vec<Arc<str>>,
) -> Result<(), Error> {
    let stored = match read {
        GroupRead::Found(stored) => stored,
        GroupRead::NotFound | GroupRead::Stale(_) => {
            if plan.on_missing == OnMissing::Error {
                let (group, entity) = (plan.name.to_string(), entity.to_string());
                return Err(match read {
                    GroupRead::Stale(_) => Error::StaleFeatures { group, entity },
                    _ => Error::EntityNotFound { group, entity },
                });
            }
            return plan.fields.iter().try_for_each(|f| fill_default(frame, plan, f, entity, missing));
        }
    };
    for (field, value) in plan.fields.iter().zip(stored.values.iter()) {
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
