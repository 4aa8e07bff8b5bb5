//! Walking the trees and aggregating leaf votes into raw scores.
//!
//! Tree-major: for each tree, every row of the batch walks it before the next tree, so a
//! tree's nodes stay in L1 while a batch goes through (for one row it is the same loop).
//! The walk is monomorphised per comparison; the child choice is a select, not a branch.

use super::layout::{Ensemble, LEAF, MISSING_YES, Modes, Node};
use super::spec::{Aggregate, Mode};

trait Split {
    fn holds(x: f32, t: f32) -> bool;
}

macro_rules! split {
    ($name:ident, |$x:ident, $t:ident| $e:expr) => {
        struct $name;
        impl Split for $name {
            #[inline(always)]
            fn holds($x: f32, $t: f32) -> bool {
                $e
            }
        }
    };
}
split!(Leq, |x, t| x <= t);
split!(Lt, |x, t| x < t);
split!(Gte, |x, t| x >= t);
split!(Gt, |x, t| x > t);
split!(Eq, |x, t| x == t);
split!(Neq, |x, t| x != t);

#[inline(always)]
fn step<S: Split>(node: &Node, row: &[f32]) -> u32 {
    let x = row[(node.feature & !MISSING_YES) as usize];
    let yes = S::holds(x, node.threshold) | (x.is_nan() & (node.feature & MISSING_YES != 0));
    if yes { node.yes } else { node.no }
}

#[inline(always)]
fn walk<S: Split>(nodes: &[Node], root: u32, row: &[f32]) -> u32 {
    let mut at = root;
    while at & LEAF == 0 {
        at = step::<S>(&nodes[at as usize], row);
    }
    at & !LEAF
}

fn walk_mixed(e: &Ensemble, modes: &[Mode], root: u32, row: &[f32]) -> u32 {
    let mut at = root;
    while at & LEAF == 0 {
        let node = &e.nodes[at as usize];
        at = match modes[at as usize] {
            Mode::Leq => step::<Leq>(node, row),
            Mode::Lt => step::<Lt>(node, row),
            Mode::Gte => step::<Gte>(node, row),
            Mode::Gt => step::<Gt>(node, row),
            Mode::Eq => step::<Eq>(node, row),
            Mode::Neq => step::<Neq>(node, row),
            Mode::Member => {
                let x = row[(node.feature & !MISSING_YES) as usize];
                let set = &e.sets[node.threshold.to_bits() as usize];
                let yes = set.contains(&x) | (x.is_nan() & (node.feature & MISSING_YES != 0));
                if yes { node.yes } else { node.no }
            }
        };
    }
    at & !LEAF
}

/// Raw scores of a batch, before base values and post-processing.
pub struct Scores {
    /// `rows x n_targets`, row-major.
    pub values: Vec<f64>,
    /// Whether any vote reached the cell (onnxruntime's `has_score`).
    pub has: Vec<bool>,
}

impl Ensemble {
    /// `input` is `rows x width` row-major with `width >= self.n_features`.
    pub fn scores(&self, input: &[f32], rows: usize, width: usize) -> Scores {
        let t = self.n_targets;
        let mut s = Scores { values: vec![0.0; rows * t], has: vec![false; rows * t] };
        let nodes = &self.nodes;
        match &self.modes {
            Modes::Uniform(Mode::Leq) => {
                self.run(input, rows, width, &mut s, |r, x| walk::<Leq>(nodes, r, x));
            }
            Modes::Uniform(Mode::Lt) => {
                self.run(input, rows, width, &mut s, |r, x| walk::<Lt>(nodes, r, x));
            }
            Modes::Uniform(Mode::Gte) => {
                self.run(input, rows, width, &mut s, |r, x| walk::<Gte>(nodes, r, x));
            }
            Modes::Uniform(Mode::Gt) => {
                self.run(input, rows, width, &mut s, |r, x| walk::<Gt>(nodes, r, x));
            }
            Modes::Uniform(Mode::Eq) => {
                self.run(input, rows, width, &mut s, |r, x| walk::<Eq>(nodes, r, x));
            }
            Modes::Uniform(Mode::Neq) => {
                self.run(input, rows, width, &mut s, |r, x| walk::<Neq>(nodes, r, x));
            }
            // `build` never makes a uniform Member ensemble; walk it per node anyway.
            Modes::Uniform(Mode::Member) => {
                let modes = vec![Mode::Member; nodes.len()];
                self.run(input, rows, width, &mut s, |r, x| walk_mixed(self, &modes, r, x));
            }
            Modes::PerNode(modes) => {
                self.run(input, rows, width, &mut s, |r, x| walk_mixed(self, modes, r, x));
            }
        }
        s
    }

    #[inline(always)]
    fn run(
        &self,
        input: &[f32],
        rows: usize,
        width: usize,
        s: &mut Scores,
        leaf_of: impl Fn(u32, &[f32]) -> u32,
    ) {
        let t = self.n_targets;
        for &root in &self.roots {
            for r in 0..rows {
                let leaf = leaf_of(root, &input[r * width..(r + 1) * width]) as usize;
                let (from, to) = (self.leaf_start[leaf] as usize, self.leaf_start[leaf + 1] as usize);
                for v in from..to {
                    let cell = r * t + self.vote_target[v] as usize;
                    let w = self.vote_weight[v];
                    let old = s.values[cell];
                    s.values[cell] = match self.aggregate {
                        Aggregate::Sum | Aggregate::Average => old + w,
                        Aggregate::Min if s.has[cell] => old.min(w),
                        Aggregate::Max if s.has[cell] => old.max(w),
                        Aggregate::Min | Aggregate::Max => w,
                    };
                    s.has[cell] = true;
                }
            }
        }
    }
}
