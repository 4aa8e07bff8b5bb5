//! A group's side of the online store, in its layout: the key and fields to read for one
//! entity, and the typed values made of what came back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::plan::{GroupPlan, GroupValues, Layout, StoredGroup};
use crate::features::feast;
use crate::features::value::Value;

impl GroupPlan {
    /// The hash fields one lookup reads (see [`GroupPlan::from_stored`] for their order).
    pub fn field_names(&self) -> &[Vec<u8>] {
        &self.field_names
    }

    /// The group part of the store key for one row, as messages name the entity: entity
    /// values in key order, joined with `:`.
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

    pub fn entity_names<'a>(&'a self, view: &'a super::FeatureView) -> impl Iterator<Item = &'a str> {
        self.key_entities.iter().map(|&e| view.entities[e].as_str())
    }

    /// The full store key of one row (`entities` in the view's entity order, `names`
    /// the view's entity names, `entity` this group's [`GroupPlan::entity_key`] of them).
    /// Natively `<prefix><group>:<entity key>`; Feast's keys have no prefix. Fails, naming
    /// the entity, on a value a Feast integer join key cannot take (requests are checked
    /// for that earlier, in `resolve_entities`).
    pub fn store_key(
        &self,
        prefix: &str,
        names: &[String],
        entities: &[String],
        entity: &str,
    ) -> Result<Vec<u8>, (String, String)> {
        match &self.layout {
            Layout::Native => {
                let mut key = Vec::with_capacity(prefix.len() + self.name.len() + 1 + entity.len());
                key.extend_from_slice(prefix.as_bytes());
                key.extend_from_slice(self.name.as_bytes());
                key.push(b':');
                key.extend_from_slice(entity.as_bytes());
                Ok(key)
            }
            Layout::Feast(keys) => {
                let join: Vec<(&str, feast::KeyType, &str)> = self
                    .key_entities
                    .iter()
                    .zip(&keys.key_types)
                    .map(|(&e, &ty)| (names[e].as_str(), ty, entities[e].as_str()))
                    .collect();
                feast::redis_key(&join, &keys.project)
            }
        }
    }

    /// Types what a store holds for one (group, entity): `raw` is `None` when the key is
    /// absent, else each field's stored bytes, in [`GroupPlan::field_names`] order.
    /// - Natively, an entity none of whose fields is stored is not found (Redis cannot tell
    ///   an absent key from a hash without these fields).
    /// - In Feast's layout, an entity whose row of this view has no event timestamp is not
    ///   found; a feature whose field is absent or empty is null (missing).
    ///
    /// A value that does not decode as its dtype counts as missing: one bad cell written
    /// by a feature pipeline must not fail every request for that entity. Returns the
    /// values and the number of values that did not decode.
    pub fn from_stored(&self, raw: Option<Vec<Option<Vec<u8>>>>) -> (GroupValues, usize) {
        let Some(raw) = raw else { return (None, 0) };
        match &self.layout {
            Layout::Native => {
                if raw.iter().all(Option::is_none) {
                    return (None, 0);
                }
                let texts =
                    raw.into_iter().map(|v| v.map(|b| String::from_utf8(b).map_err(|_| ()))).collect();
                self.parse_texts(texts)
            }
            Layout::Feast(_) => self.decode_feast(raw),
        }
    }

    /// Types a row of text values (a feature file's cells, offline), whatever the layout
    /// online: `None` when no value is given at all.
    pub fn from_texts(&self, raw: Vec<Option<String>>) -> (GroupValues, usize) {
        if raw.iter().all(Option::is_none) {
            return (None, 0);
        }
        self.parse_texts(raw.into_iter().map(|v| v.map(Ok)).collect())
    }

    /// Whether found values are older than the group's `max_age` at `now`.
    pub fn is_stale(&self, stored: &StoredGroup, now: SystemTime) -> bool {
        let (Some(max_age), Some(time)) = (self.max_age, stored.event_time) else { return false };
        let event = SystemTime::UNIX_EPOCH + Duration::from_micros(time.micros().max(0) as u64);
        now.duration_since(event).is_ok_and(|age| age > max_age)
    }

    fn parse_texts(&self, raw: Vec<Option<Result<String, ()>>>) -> (GroupValues, usize) {
        let mut bad = 0;
        let values = self
            .fields
            .iter()
            .zip(raw)
            .map(|(field, raw)| {
                let parsed =
                    raw?.map_err(|()| String::new()).and_then(|text| field.dtype.parse_stored(&text));
                if parsed.is_err() {
                    bad += 1;
                }
                parsed.ok()
            })
            .collect();
        (Some(Arc::new(StoredGroup { values, event_time: None })), bad)
    }

    fn decode_feast(&self, mut raw: Vec<Option<Vec<u8>>>) -> (GroupValues, usize) {
        // The event timestamp is the last field read; without it the view holds no row
        // for this entity.
        let Some(Some(ts)) = raw.pop() else { return (None, 0) };
        let mut bad = 0;
        let event_time = match feast::decode_timestamp(&ts) {
            Ok(time) => Some(time),
            Err(_) => {
                bad += 1;
                None
            }
        };
        let values = self
            .fields
            .iter()
            .zip(raw)
            .map(|(field, raw)| {
                let decoded: Result<Option<Value>, String> = match raw {
                    None => Ok(None),
                    Some(bytes) => feast::decode_value(&bytes)
                        .and_then(|v| v.map(|v| v.to_value(field.dtype)).transpose()),
                };
                decoded.unwrap_or_else(|_| {
                    bad += 1;
                    None
                })
            })
            .collect();
        (Some(Arc::new(StoredGroup { values, event_time })), bad)
    }
}
