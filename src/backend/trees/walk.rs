//! Walking the trees and aggregating leaf votes into raw scores.
//!
//! The step is monomorphised per comparison; the child choice is a select, not a branch.
//!
//! A walk is a chain of dependent loads (~50 ns per tree here), so four independent walks
//! are kept in flight and the CPU overlaps their chains. A batch sends four rows through
//! each tree together. A single row walks four trees at once, each lane taking the next
//! tree as soon as its walk ends (trees differ in depth; lanes that waited for the deepest
//! of four were slower than one walk at a time for 500 LightGBM trees). Votes are added in
//! tree order either way, so the sums are bit-identical to walking one tree at a time.

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

/// One step from the internal node `at`, whatever its mode.
#[inline(always)]
fn step_mixed(e: &Ensemble, modes: &[Mode], at: u32, row: &[f32]) -> u32 {
    let node = &e.nodes[at as usize];
    match modes[at as usize] {
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
    }
}

#[inline(always)]
fn walk(root: u32, row: &[f32], step: &impl Fn(u32, &[f32]) -> u32) -> u32 {
    let mut at = root;
    while at & LEAF == 0 {
        at = step(at, row);
    }
    at & !LEAF
}

/// Four rows through one tree, one step of each per round.
#[inline(always)]
fn walk4(root: u32, rows: [&[f32]; 4], step: &impl Fn(u32, &[f32]) -> u32) -> [u32; 4] {
    let mut at = [root; 4];
    while at.iter().any(|a| a & LEAF == 0) {
        for k in 0..4 {
            if at[k] & LEAF == 0 {
                at[k] = step(at[k], rows[k]);
            }
        }
    }
    at.map(|a| a & !LEAF)
}

/// The leaf of every tree for one row, four walks in flight; a lane whose walk ends takes
/// the next tree.
#[inline(always)]
fn walk_all(roots: &[u32], row: &[f32], leaves: &mut [u32], step: &impl Fn(u32, &[f32]) -> u32) {
    const IDLE: usize = usize::MAX;
    let mut at = [0u32; 4];
    let mut tree = [IDLE; 4];
    let mut next = 0;
    for k in 0..4.min(roots.len()) {
        (at[k], tree[k]) = (roots[k], k);
        next += 1;
    }
    let mut busy = next;
    while busy > 0 {
        for k in 0..4 {
            if tree[k] == IDLE {
                continue;
            }
            if at[k] & LEAF == 0 {
                at[k] = step(at[k], row);
                continue;
            }
            leaves[tree[k]] = at[k] & !LEAF;
            if next < roots.len() {
                (at[k], tree[k]) = (roots[next], next);
                next += 1;
            } else {
                tree[k] = IDLE;
                busy -= 1;
            }
        }
    }
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
                self.run(input, rows, width, &mut s, |at, x| step::<Leq>(&nodes[at as usize], x));
            }
            Modes::Uniform(Mode::Lt) => {
                self.run(input, rows, width, &mut s, |at, x| step::<Lt>(&nodes[at as usize], x));
            }
            Modes::Uniform(Mode::Gte) => {
                self.run(input, rows, width, &mut s, |at, x| step::<Gte>(&nodes[at as usize], x));
            }
            Modes::Uniform(Mode::Gt) => {
                self.run(input, rows, width, &mut s, |at, x| step::<Gt>(&nodes[at as usize], x));
            }
            Modes::Uniform(Mode::Eq) => {
                self.run(input, rows, width, &mut s, |at, x| step::<Eq>(&nodes[at as usize], x));
            }
            Modes::Uniform(Mode::Neq) => {
                self.run(input, rows, width, &mut s, |at, x| step::<Neq>(&nodes[at as usize], x));
            }
            // `build` never makes a uniform Member ensemble; walk it per node anyway.
            Modes::Uniform(Mode::Member) => {
                let modes = vec![Mode::Member; nodes.len()];
                self.run(input, rows, width, &mut s, |at, x| step_mixed(self, &modes, at, x));
            }
            Modes::PerNode(modes) => {
                self.run(input, rows, width, &mut s, |at, x| step_mixed(self, modes, at, x));
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
        step: impl Fn(u32, &[f32]) -> u32,
    ) {
        let row = |r: usize| &input[r * width..(r + 1) * width];
        if rows < 4 {
            let mut leaves = vec![0u32; self.roots.len()];
            for r in 0..rows {
                walk_all(&self.roots, row(r), &mut leaves, &step);
                for &leaf in &leaves {
                    self.vote(s, r, leaf);
                }
            }
            return;
        }
        // Tree-major: a tree's nodes stay in L1 while the batch goes through it.
        for &root in &self.roots {
            let mut r = 0;
            while r + 4 <= rows {
                let leaves = walk4(root, [row(r), row(r + 1), row(r + 2), row(r + 3)], &step);
                for (k, leaf) in leaves.into_iter().enumerate() {
                    self.vote(s, r + k, leaf);
                }
                r += 4;
            }
            for r in r..rows {
                self.vote(s, r, walk(root, row(r), &step));
            }
        }
    }

    /// Adds the votes of `leaf` to row `r`'s cells.
    #[inline(always)]
    fn vote(&self, s: &mut Scores, r: usize, leaf: u32) {
        let t = self.n_targets;
        let leaf = leaf as usize;
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
