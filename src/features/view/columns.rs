//! The on-demand features as named columns, for offline output (`fti-serve transform`):
//! their column names and a computed frame's values, vectors expanded.

use super::plan::FeatureView;
use crate::features::value::Value;
use crate::transform::{Frame, Slot};

impl FeatureView {
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
}
