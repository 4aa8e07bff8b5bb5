//! The evaluation layout, compiled once from a [`Spec`].
//!
//! All split nodes of all trees sit in one contiguous `Vec<Node>` of 16-byte nodes (four
//! per cache line), each tree in pre-order so that a walk mostly moves forward. A child
//! is a `u32`: the index of the next split node, or `LEAF | leaf` when it is a leaf, so a
//! walk never searches and never touches leaf data until it arrives. Leaf votes are in
//! CSR form (`leaf_start`, `vote_target`, `vote_weight`). The comparison is the same for
//! every node in nearly every export (LightGBM/scikit-learn: `BRANCH_LEQ`, XGBoost:
//! `BRANCH_LT`), so the walk is specialised per mode and only mixed ensembles pay for a
//! per-node mode.

use std::collections::HashMap;

use super::spec::{Aggregate, Child, Mode, NodeSpec, Spec, Task};
use crate::backend::post_transform::PostTransform;

/// Set on a child index when it names a leaf.
pub const LEAF: u32 = 1 << 31;
/// Set on `Node::feature` when a missing value (NaN) takes the "true" branch.
pub const MISSING_YES: u32 = 1 << 31;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// Feature index, with [`MISSING_YES`] as its top bit.
    pub feature: u32,
    /// The threshold; for `Mode::Member` the index of the set in `Ensemble::sets`.
    pub threshold: f32,
    pub yes: u32,
    pub no: u32,
}

/// How nodes compare: one mode for the whole ensemble, or one per node.
#[derive(Debug, Clone, PartialEq)]
pub enum Modes {
    Uniform(Mode),
    PerNode(Vec<Mode>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    pub nodes: Vec<Node>,
    pub modes: Modes,
    pub sets: Vec<Vec<f32>>,
    /// One entry per tree: its root (a node index, or `LEAF | leaf`).
    pub roots: Vec<u32>,
    pub leaf_start: Vec<u32>,
    pub vote_target: Vec<u32>,
    pub vote_weight: Vec<f64>,
    /// Smallest input width the trees can read.
    pub n_features: usize,
    pub n_targets: usize,
    pub aggregate: Aggregate,
    pub post_transform: PostTransform,
    pub base_values: Vec<f64>,
    pub task: Task,
    /// onnxruntime's binary rules: two classes and votes for only one class id.
    pub binary_single_column: bool,
    pub weights_all_positive: bool,
}

type Key = (i64, i64);

impl Ensemble {
    pub fn build(spec: Spec) -> Result<Ensemble, String> {
        let Spec { nodes: specs, votes, roots, n_targets, aggregate, post_transform, base_values, task } =
            spec;
        if n_targets == 0 {
            return Err("the ensemble has no target/class".into());
        }
        if let Task::Classify { labels } = &task
            && labels.len() != n_targets
        {
            return Err(format!("{} class labels for {n_targets} classes", labels.len()));
        }
        let by_key: HashMap<Key, usize> =
            specs.iter().enumerate().map(|(i, n)| ((n.tree, n.id), i)).collect();
        if by_key.len() != specs.len() {
            return Err("a (tree id, node id) pair appears twice".into());
        }

        // Leaves get dense indices in the order votes name them; a leaf without votes
        // gets one when a walk reaches it.
        let mut leaves: HashMap<Key, u32> = HashMap::new();
        let mut leaf_votes: Vec<Vec<(u32, f64)>> = Vec::new();
        for v in &votes {
            let target = usize::try_from(v.target)
                .ok()
                .filter(|t| *t < n_targets)
                .ok_or_else(|| format!("a leaf votes for target {} of {n_targets}", v.target))?;
            let key = (v.tree, v.leaf);
            let leaf = *leaves.entry(key).or_insert_with(|| {
                leaf_votes.push(Vec::new());
                (leaf_votes.len() - 1) as u32
            });
            leaf_votes[leaf as usize].push((target as u32, v.weight));
        }

        let roots: Vec<Key> = match roots {
            Some(r) => r.iter().map(|&i| (-1, i)).collect(),
            None => find_roots(&specs)?,
        };
        let mut b = Builder {
            specs: &specs,
            by_key: &by_key,
            leaves,
            leaf_votes,
            nodes: Vec::new(),
            modes: Vec::new(),
            sets: Vec::new(),
            visited: 0,
        };
        let tree_roots =
            roots.iter().map(|&k| b.place(Child::Node(k.1), k.0, 0)).collect::<Result<Vec<_>, _>>()?;

        let mut leaf_start = Vec::with_capacity(b.leaf_votes.len() + 1);
        let (mut vote_target, mut vote_weight) = (Vec::new(), Vec::new());
        leaf_start.push(0);
        for lv in &b.leaf_votes {
            for &(t, w) in lv {
                vote_target.push(t);
                vote_weight.push(w);
            }
            leaf_start.push(vote_target.len() as u32);
        }
        let n_features = b.nodes.iter().map(|n| (n.feature & !MISSING_YES) as usize + 1).max().unwrap_or(0);
        let modes = match b.modes.first() {
            Some(&m) if m != Mode::Member && b.modes.iter().all(|&x| x == m) => Modes::Uniform(m),
            Some(_) => Modes::PerNode(b.modes),
            None => Modes::Uniform(Mode::Leq),
        };
        let voted: std::collections::HashSet<u32> = vote_target.iter().copied().collect();
        Ok(Ensemble {
            nodes: b.nodes,
            modes,
            sets: b.sets,
            roots: tree_roots,
            leaf_start,
            vote_target,
            binary_single_column: matches!(task, Task::Classify { .. }) && n_targets == 2 && voted.len() == 1,
            weights_all_positive: vote_weight.iter().all(|&w| w >= 0.0),
            vote_weight,
            n_features,
            n_targets,
            aggregate,
            post_transform,
            base_values,
            task,
        })
    }

    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }
}

/// Opsets 1/3: a root is a node of its tree that no node of that tree points to.
fn find_roots(specs: &[NodeSpec]) -> Result<Vec<Key>, String> {
    let mut children = std::collections::HashSet::new();
    for n in specs.iter().filter(|n| n.mode.is_some()) {
        for c in [n.yes, n.no] {
            if let Child::Node(id) = c {
                children.insert((n.tree, id));
            }
        }
    }
    let mut roots: Vec<Key> =
        specs.iter().map(|n| (n.tree, n.id)).filter(|k| !children.contains(k)).collect();
    roots.sort_unstable();
    let mut trees: Vec<i64> = specs.iter().map(|n| n.tree).collect();
    trees.sort_unstable();
    trees.dedup();
    if roots.len() != trees.len() {
        return Err(format!(
            "{} trees but {} root nodes (a tree that is not a tree)",
            trees.len(),
            roots.len()
        ));
    }
    Ok(roots)
}

struct Builder<'a> {
    specs: &'a [NodeSpec],
    by_key: &'a HashMap<Key, usize>,
    leaves: HashMap<Key, u32>,
    leaf_votes: Vec<Vec<(u32, f64)>>,
    nodes: Vec<Node>,
    modes: Vec<Mode>,
    sets: Vec<Vec<f32>>,
    visited: usize,
}

impl Builder<'_> {
    /// Places `child` (and its subtree, pre-order) and returns its encoded index.
    fn place(&mut self, child: Child, tree: i64, depth: usize) -> Result<u32, String> {
        self.visited += 1;
        if depth > 4096 || self.visited > 4 * self.specs.len() + 16 {
            return Err(format!("tree {tree} has a cycle"));
        }
        let id = match child {
            Child::Leaf(i) => return Ok(LEAF | self.leaf((-1, i))),
            Child::Node(id) => id,
        };
        let &at = self.by_key.get(&(tree, id)).ok_or_else(|| format!("tree {tree} has no node {id}"))?;
        let spec = &self.specs[at];
        let Some(mode) = spec.mode else {
            return Ok(LEAF | self.leaf((tree, id)));
        };
        let feature = u32::try_from(spec.feature)
            .ok()
            .filter(|f| *f < MISSING_YES)
            .ok_or_else(|| format!("node {id} of tree {tree} reads feature {}", spec.feature))?;
        let threshold = if mode == Mode::Member {
            self.sets.push(spec.members.iter().map(|&m| m as f32).collect());
            f32::from_bits((self.sets.len() - 1) as u32)
        } else {
            f32_threshold(spec.threshold, mode)
        };
        let index = self.nodes.len();
        if index >= LEAF as usize {
            return Err("too many nodes".into());
        }
        let missing = if spec.missing_goes_yes { MISSING_YES } else { 0 };
        self.nodes.push(Node { feature: feature | missing, threshold, yes: 0, no: 0 });
        self.modes.push(mode);
        let (yes, no) = (spec.yes, spec.no);
        let yes = self.place(yes, tree, depth + 1)?;
        let no = self.place(no, tree, depth + 1)?;
        self.nodes[index].yes = yes;
        self.nodes[index].no = no;
        Ok(index as u32)
    }

    fn leaf(&mut self, key: Key) -> u32 {
        *self.leaves.entry(key).or_insert_with(|| {
            self.leaf_votes.push(Vec::new());
            (self.leaf_votes.len() - 1) as u32
        })
    }
}

/// Inputs are float32. A double threshold (`*_as_tensor`) becomes the float32 threshold
/// that gives every float32 input the same branch: `x <= t` is `x <= round_down(t)`,
/// `x < t` is `x < round_up(t)`, and so on; equality with an unrepresentable `t` never
/// holds (NaN makes EQ false and NEQ true).
fn f32_threshold(t: f64, mode: Mode) -> f32 {
    let near = t as f32;
    if f64::from(near) == t || t.is_nan() {
        return near;
    }
    let (down, up) = if f64::from(near) < t { (near, near.next_up()) } else { (near.next_down(), near) };
    match mode {
        Mode::Leq | Mode::Gt => down,
        Mode::Lt | Mode::Gte => up,
        Mode::Eq | Mode::Neq | Mode::Member => f32::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_thresholds_keep_every_float_on_its_branch() {
        let t = 0.1f64; // not a float32
        let below = (t as f32).next_down();
        for x in [below, t as f32, (t as f32).next_up()] {
            let xd = f64::from(x);
            assert_eq!(x <= f32_threshold(t, Mode::Leq), xd <= t);
            assert_eq!(x < f32_threshold(t, Mode::Lt), xd < t);
            assert_eq!(x >= f32_threshold(t, Mode::Gte), xd >= t);
            assert_eq!(x > f32_threshold(t, Mode::Gt), xd > t);
        }
        assert!(f32_threshold(t, Mode::Eq).is_nan());
        assert_eq!(f32_threshold(0.5, Mode::Eq), 0.5);
    }
}
