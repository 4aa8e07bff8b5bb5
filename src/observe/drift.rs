//! Drift: per served version, a sliding window of what it served (bin counts of every
//! referenced input feature and output, how often each field was missing), compared with
//! the training reference in its manifest by the population stability index.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::observation::Observation;
use crate::metrics::ObserveMetrics;
use crate::registry::ModelVersion;
use crate::registry::named_outputs::{OutputValue, extract};
use crate::registry::reference::Bins;

#[derive(Debug, Clone, Copy)]
pub struct DriftOptions {
    pub window: Duration,
    pub min_rows: u64,
    pub psi_threshold: f64,
}

/// The window is kept in this many slices; the oldest leaves whole.
const SLICES: u32 = 10;
/// Shares are floored here before the logarithm: an empty bin is rare, not impossible.
pub const SHARE_FLOOR: f64 = 1e-4;

/// The population stability index of `counts` (the window's bins) against `expected`
/// shares: `sum((a - e) * ln(a / e))`, each share at least [`SHARE_FLOOR`]. `None` for an
/// empty window.
pub fn psi(expected: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let sum = expected
        .iter()
        .zip(counts)
        .map(|(e, c)| {
            let e = e.max(SHARE_FLOOR);
            let a = (*c as f64 / total as f64).max(SHARE_FLOOR);
            (a - e) * (a / e).ln()
        })
        .sum();
    Some(sum)
}

/// What `GET /v1/models/{model}` shows of one version's window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VersionDrift {
    pub window_rows: u64,
    /// Set once the window holds `min_rows`.
    pub psi: BTreeMap<String, f64>,
    pub drifted: Vec<String>,
    pub missing_ratio: BTreeMap<String, f64>,
}

pub type DriftSummary = Arc<RwLock<BTreeMap<(String, u64), VersionDrift>>>;

struct Slice {
    start: Instant,
    rows: u64,
    features: Vec<Vec<u64>>,
    outputs: Vec<Vec<u64>>,
    missing: Vec<u64>,
}

struct Window {
    model: String,
    version: String,
    /// (input index, name, reference bins)
    features: Vec<(usize, String, Bins)>,
    outputs: Vec<(String, Bins)>,
    /// Where each of `outputs` is read from, resolved once.
    sources: Vec<OutputSource>,
    fields: HashMap<Arc<str>, usize>,
    field_names: Vec<Arc<str>>,
    slices: VecDeque<Slice>,
    last_row: Instant,
    /// Feature names over the threshold at the last publish (a crossing is logged once).
    drifted: Vec<String>,
}

impl Window {
    fn new(v: &ModelVersion) -> Window {
        let names = v.view.input_names();
        let (features, outputs) = match &v.manifest.reference {
            Some(r) => (
                r.features
                    .iter()
                    .filter_map(|(name, bins)| {
                        names.iter().position(|n| n == name).map(|i| (i, name.clone(), bins.clone()))
                    })
                    .collect(),
                r.outputs.iter().map(|(k, b)| (k.clone(), b.clone())).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let sources = outputs.iter().map(|(key, _)| OutputSource::resolve(v, key)).collect();
        let field_names: Vec<Arc<str>> = v
            .view
            .groups
            .iter()
            .flat_map(|g| g.fields.iter())
            .chain(v.view.request.iter())
            .map(|f| f.name.clone())
            .collect();
        let fields = field_names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Window {
            model: v.model.clone(),
            version: v.version.to_string(),
            features,
            outputs,
            sources,
            fields,
            field_names,
            slices: VecDeque::new(),
            last_row: Instant::now(),
            drifted: Vec::new(),
        }
    }

    fn empty_slice(&self) -> Slice {
        Slice {
            start: Instant::now(),
            rows: 0,
            features: self.features.iter().map(|(_, _, b)| vec![0; b.len()]).collect(),
            outputs: self.outputs.iter().map(|(_, b)| vec![0; b.len()]).collect(),
            missing: vec![0; self.field_names.len()],
        }
    }

    fn expire(&mut self, window: Duration) {
        while self.slices.front().is_some_and(|s| s.start.elapsed() >= window) {
            self.slices.pop_front();
        }
    }

    fn observe(&mut self, obs: &Observation, slice_len: Duration) {
        if self.slices.back().is_none_or(|s| s.start.elapsed() >= slice_len) {
            let slice = self.empty_slice();
            self.slices.push_back(slice);
        }
        self.last_row = Instant::now();
        let rows = obs.missing.len();
        let plans = &obs.version.outputs;
        let mut values: Vec<Option<OutputValue>> = Vec::with_capacity(plans.len());
        let Some(slice) = self.slices.back_mut() else { return };
        for row in 0..rows {
            slice.rows += 1;
            let input = obs.input_row(row);
            for ((index, _, bins), counts) in self.features.iter().zip(&mut slice.features) {
                let v = f64::from(input[*index]);
                if v.is_finite() {
                    counts[bins.bin(v)] += 1;
                }
            }
            for name in &obs.missing[row] {
                if let Some(i) = self.fields.get(name) {
                    slice.missing[*i] += 1;
                }
            }
            values.clear();
            values.resize(plans.len(), None);
            for ((source, (_, bins)), counts) in
                self.sources.iter().zip(&self.outputs).zip(&mut slice.outputs)
            {
                let Some(plan) = source.plan else { continue };
                let value = values[plan].get_or_insert_with(|| extract(&plans[plan], &obs.tensors, row));
                if let Some(v) = source.number(value)
                    && v.is_finite()
                {
                    counts[bins.bin(v)] += 1;
                }
            }
        }
    }
}

/// Where a reference's output key is read: the output named so (a number), or an entry of
/// one (`<name>.<key>` of a map, `<name>.<i>` of a list).
#[derive(Debug, Clone, PartialEq)]
struct OutputSource {
    /// Index into the version's output plans; `None` when no output has the name.
    plan: Option<usize>,
    entry: Option<String>,
}

impl OutputSource {
    fn resolve(v: &ModelVersion, key: &str) -> OutputSource {
        let names: Vec<&str> = v.outputs.iter().map(|o| o.name.as_str()).collect();
        OutputSource::among(&names, key)
    }

    fn among(names: &[&str], key: &str) -> OutputSource {
        if let Some(plan) = names.iter().position(|name| *name == key) {
            return OutputSource { plan: Some(plan), entry: None };
        }
        // The longest output name that prefixes `<name>.`: names may hold dots themselves.
        let found = names
            .iter()
            .enumerate()
            .filter_map(|(plan, name)| {
                let entry = key.strip_prefix(name)?.strip_prefix('.')?;
                Some((name.len(), plan, entry))
            })
            .max_by_key(|(len, _, _)| *len);
        match found {
            Some((_, plan, entry)) => OutputSource { plan: Some(plan), entry: Some(entry.to_string()) },
            None => OutputSource { plan: None, entry: None },
        }
    }

    /// The number this source reads from the output's value, if it has one.
    fn number(&self, value: &OutputValue) -> Option<f64> {
        match (&self.entry, value) {
            (None, OutputValue::Num(x)) => Some(*x),
            (None, OutputValue::Int(i)) => Some(*i as f64),
            (Some(entry), OutputValue::Map(entries)) => {
                entries.iter().find(|(k, _)| k == entry).map(|(_, v)| *v)
            }
            (Some(entry), OutputValue::List(values)) => {
                entry.parse::<usize>().ok().and_then(|i| values.get(i).copied())
            }
            _ => None,
        }
    }
}

fn sum_into(total: &mut [u64], part: &[u64]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t += p;
    }
}

pub struct Drift {
    options: DriftOptions,
    windows: HashMap<(String, u64), Window>,
    metrics: ObserveMetrics,
    summary: DriftSummary,
}

impl Drift {
    pub fn new(options: DriftOptions, metrics: ObserveMetrics, summary: DriftSummary) -> Drift {
        Drift { options, windows: HashMap::new(), metrics, summary }
    }

    pub fn observe(&mut self, obs: &Observation) {
        let slice_len = self.options.window / SLICES;
        let key = (obs.version.model.clone(), obs.version.version);
        self.windows.entry(key).or_insert_with(|| Window::new(&obs.version)).observe(obs, slice_len);
    }

    /// Recomputes every window's figures and gauges; forgets versions that served nothing
    /// for a whole window.
    pub fn publish(&mut self) {
        let window = self.options.window;
        let mut summary = BTreeMap::new();
        let mut gone = Vec::new();
        for (key, w) in &mut self.windows {
            w.expire(window);
            if w.slices.is_empty() && w.last_row.elapsed() >= window {
                gone.push(key.clone());
                continue;
            }
            summary.insert(key.clone(), publish_window(w, &self.options, &self.metrics));
        }
        for key in gone {
            if let Some(w) = self.windows.remove(&key) {
                remove_series(&w, &self.metrics);
            }
        }
        *self.summary.write().unwrap_or_else(PoisonError::into_inner) = summary;
    }
}

fn publish_window(w: &mut Window, options: &DriftOptions, m: &ObserveMetrics) -> VersionDrift {
    let mut total = w.empty_slice();
    for s in &w.slices {
        total.rows += s.rows;
        for (t, p) in total.features.iter_mut().zip(&s.features) {
            sum_into(t, p);
        }
        for (t, p) in total.outputs.iter_mut().zip(&s.outputs) {
            sum_into(t, p);
        }
        sum_into(&mut total.missing, &s.missing);
    }
    let (model, version) = (w.model.as_str(), w.version.as_str());
    let mut out = VersionDrift { window_rows: total.rows, ..VersionDrift::default() };
    m.window_rows.with_label_values(&[model, version]).set(i64::try_from(total.rows).unwrap_or(i64::MAX));
    for (name, count) in w.field_names.iter().zip(&total.missing) {
        if total.rows > 0 {
            let ratio = *count as f64 / total.rows as f64;
            m.missing_ratio.with_label_values(&[model, version, name]).set(ratio);
            out.missing_ratio.insert(name.to_string(), ratio);
        }
    }
    let scored = total.rows >= options.min_rows && total.rows > 0;
    let mut drifted = Vec::new();
    for ((_, name, bins), counts) in w.features.iter().zip(&total.features) {
        match psi(&bins.shares, counts).filter(|_| scored) {
            Some(score) => {
                m.psi.with_label_values(&[model, version, name]).set(score);
                out.psi.insert(name.clone(), score);
                if score > options.psi_threshold {
                    drifted.push(name.clone());
                }
            }
            None => {
                let _ = m.psi.remove_label_values(&[model, version, name]);
            }
        }
    }
    for ((key, bins), counts) in w.outputs.iter().zip(&total.outputs) {
        let finite: u64 = counts.iter().sum();
        match psi(&bins.shares, counts).filter(|_| scored) {
            Some(score) => {
                m.output_psi.with_label_values(&[model, version, key]).set(score);
                for (bin, c) in counts.iter().enumerate() {
                    let share = *c as f64 / finite as f64;
                    m.output_share.with_label_values(&[model, version, key, &bin.to_string()]).set(share);
                }
            }
            None => {
                let _ = m.output_psi.remove_label_values(&[model, version, key]);
            }
        }
    }
    for name in drifted.iter().filter(|n| !w.drifted.contains(n)) {
        tracing::warn!(
            model,
            version,
            feature = %name,
            psi = out.psi.get(name).copied().unwrap_or_default(),
            threshold = options.psi_threshold,
            "input drift: the feature's distribution moved away from the training data"
        );
    }
    m.over_threshold.with_label_values(&[model, version]).set(drifted.len() as i64);
    out.drifted.clone_from(&drifted);
    w.drifted = drifted;
    out
}

fn remove_series(w: &Window, m: &ObserveMetrics) {
    let (model, version) = (w.model.as_str(), w.version.as_str());
    let _ = m.window_rows.remove_label_values(&[model, version]);
    let _ = m.over_threshold.remove_label_values(&[model, version]);
    for (_, name, _) in &w.features {
        let _ = m.psi.remove_label_values(&[model, version, name]);
    }
    for name in &w.field_names {
        let _ = m.missing_ratio.remove_label_values(&[model, version, name]);
    }
    for (key, bins) in &w.outputs {
        let _ = m.output_psi.remove_label_values(&[model, version, key]);
        for bin in 0..bins.len() {
            let _ = m.output_share.remove_label_values(&[model, version, key, &bin.to_string()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_is_zero_for_the_reference_and_grows_with_a_shift() {
        let e = [0.25, 0.25, 0.25, 0.25];
        assert!(psi(&e, &[100, 100, 100, 100]).expect("rows").abs() < 1e-15);
        let small = psi(&e, &[110, 100, 100, 90]).expect("rows");
        let large = psi(&e, &[10, 40, 150, 200]).expect("rows");
        assert!(small > 0.0 && small < 0.01, "{small}");
        assert!(large > 0.2, "{large}");
        assert_eq!(psi(&e, &[0, 0, 0, 0]), None);
    }

    #[test]
    fn psi_matches_a_hand_computation_with_the_floor() {
        // a = [0.5, 0.5, 0] -> floored to 1e-4; e = [0.2, 0.3, 0.5]
        let expected =
            0.3 * (0.5f64 / 0.2).ln() + 0.2 * (0.5f64 / 0.3).ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
        let got = psi(&[0.2, 0.3, 0.5], &[5, 5, 0]).expect("rows");
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn output_keys_resolve_to_plans_and_entries() {
        let names = ["p", "scores.v2", "label"];
        let at = |key: &str| OutputSource::among(&names, key);
        assert_eq!(at("label"), OutputSource { plan: Some(2), entry: None });
        assert_eq!(at("p.fraud"), OutputSource { plan: Some(0), entry: Some("fraud".into()) });
        assert_eq!(at("scores.v2.1"), OutputSource { plan: Some(1), entry: Some("1".into()) });
        assert_eq!(at("nothing"), OutputSource { plan: None, entry: None });
        let map = OutputValue::Map(vec![("no".into(), 0.25), ("fraud".into(), 0.75)]);
        assert_eq!(at("p.fraud").number(&map), Some(0.75));
        assert_eq!(at("scores.v2.1").number(&OutputValue::List(vec![1.0, 2.0])), Some(2.0));
        assert_eq!(at("label").number(&OutputValue::Int(1)), Some(1.0));
        assert_eq!(at("label").number(&OutputValue::Str("x".into())), None);
    }
}
