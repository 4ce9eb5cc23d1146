//! TopoLM's spatial smoothness loss (Rathi et al. 2024, arXiv 2410.11516),
//! after the authors' reference code (epflneuroailab/topolm,
//! `models/model.py`, `models/positions.py`, `models/init_pos.py`).
//!
//! The units of every spatial output (each block's attention output after
//! its residual add, then its MLP output after its residual add: the
//! `2 n_layer` tensors of [`super::GptModel::forward_with_sublayers`]) sit
//! on a `side x side` grid, `side = sqrt(n_embd)`. Unit `u` starts at cell
//! `u` (row `u / side`, column `u % side`), as the reference's
//! `product(arange(side), repeat=2)`.
//!
//! - Neighbourhoods ([`SpatialLayout::grid`]): a fixed pool of [`POOL`] per
//!   spatial output, each the units whose cell is at Chebyshev distance
//!   *below* `radius` from a centre drawn (with replacement) among the cells
//!   with row and column in `[radius - 1, side - radius]`, so every
//!   neighbourhood is a full `(2 radius - 1)^2` square inside the grid.
//! - Positions: `grid` keeps unit `u` on cell `u`; `preoptimized`
//!   ([`SpatialLayout::preoptimize`]) swaps units within each neighbourhood
//!   of the pool, in order, [`SWAP_STEPS`] random pairs each, keeping a swap
//!   when the neighbourhood's loss does not rise, on the activations of the
//!   freshly initialised model (as `init_pos.py` does before training).
//! - Loss ([`SpatialLoss::loss`]): at each step `neighborhoods` of the pool
//!   are drawn without replacement per spatial output; for a neighbourhood,
//!   `r_ij` is the Pearson correlation of units i and j across all token
//!   positions of the batch (`B * T` rows), `D_ij = 1 / (1 + |p_i - p_j|)`
//!   (Euclidean distance of the cells), and the loss is
//!   `0.5 (1 - corr(r, D))` over the pairs `i < j`; a spatial output's loss
//!   is the mean over its drawn neighbourhoods, and the spatial loss is the
//!   sum over the `2 n_layer` outputs. Training adds `alpha` times it.
//! - Cost: only the drawn neighbourhoods' units are correlated, never a
//!   whole layer's `n_embd x n_embd` matrix unless the drawn neighbourhoods
//!   cover it. Per step [`SpatialLoss::loss`] takes the cheaper
//!   ([`Correlate`]) of one `k x k` covariance per neighbourhood (`m k^2`
//!   multiply-adds per token and output) and one covariance over the union
//!   of an output's drawn neighbourhoods (`u^2`, with `u <= m k`): the
//!   union wins on small grids, where the neighbourhoods overlap (n_embd
//!   144, radius 5: `u <= 144`, against `5 x 81`), and loses on large ones
//!   (784 units). The two give the same loss up to rounding (tested).
//!
//! Where the paper and the reference code differ, this follows the code:
//!
//! - Neighbourhood membership is `distance < radius` (`get_neighborhood`),
//!   not "within radius": radius 5 gives 9 x 9 = 81 units, not 11 x 11.
//! - The loss carries the factor 0.5 of `local_spatial_loss` (the code's
//!   numpy "guide" version and the TDANN-style formula of the paper omit it
//!   in places); alpha is the code's (2.5 in `train_gpt2.yaml`).
//! - The neighbourhoods are a fixed pool per layer ([`POOL`] = 50, from
//!   `init_pos.py`) of which a few are drawn each step, rather than fresh
//!   random neighbourhoods per batch.
//! - Positions are pre-optimised by swaps before training (`init_pos.py`,
//!   `local_steps: 50`), which the paper does not describe.
//!
//! Where this deliberately departs from the code:
//!
//! - `swap_local` also swaps entries of the layer-wide neighbourhood mask at
//!   the neighbourhood-local swap indices (indices into the 81 members
//!   applied to all 784 units), which changes which units later count as the
//!   neighbourhood; that looks unintended and is not reproduced: here a
//!   neighbourhood's members stay the units first chosen, and swaps move
//!   them between the neighbourhood's cells.
//! - The reference draws neighbourhoods and swaps from global generators;
//!   here every draw is a ChaCha8 stream seeded from (seed, step, spatial
//!   output) or (seed, spatial output), so a resumed run draws the same
//!   neighbourhoods without saving generator state.
//! - The pre-optimisation activations are the initial model's spatial
//!   outputs on the first `batch_size` windows of the training tokens (the
//!   reference: 12 random 4-token windows of a separate init corpus).
//! - The reference's optional activation decay and head-wise variants are
//!   not offered.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::TrainError;

/// Neighbourhoods in each spatial output's fixed pool (the reference's `num_neighborhoods`).
pub const POOL: usize = 50;
/// Swap attempts per neighbourhood in the pre-optimisation (the reference's `local_steps`).
pub const SWAP_STEPS: usize = 50;

/// Where the units sit before training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionsInit {
    /// Unit `u` on cell `u`, row-major.
    Grid,
    /// The grid, then swaps within each neighbourhood that lower the loss on
    /// the initial model's activations (the reference's `init_pos.py`).
    Preoptimized,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpatialConfig {
    /// Weight of the spatial loss; 0 computes it (for the metrics) without training on it.
    pub alpha: f64,
    /// Neighbourhoods drawn per spatial output and step (at most [`POOL`]).
    pub neighborhoods: usize,
    /// A neighbourhood is the units at Chebyshev distance below `radius` from its centre.
    pub radius: usize,
    pub positions: PositionsInit,
}

impl Default for SpatialConfig {
    fn default() -> SpatialConfig {
        SpatialConfig { alpha: 2.5, neighborhoods: 5, radius: 5, positions: PositionsInit::Preoptimized }
    }
}

impl SpatialConfig {
    /// The grid's side for `n_embd` units, or the error naming the fix.
    pub fn validate(&self, n_embd: usize) -> Result<usize, TrainError> {
        let fail = |m: String| Err(TrainError::Config(m));
        let side = (n_embd as f64).sqrt().round() as usize;
        if side * side != n_embd {
            return fail(format!("spatial: n_embd ({n_embd}) is not a square number: use e.g. 64, 144, 256 or 784"));
        }
        if self.radius < 2 || 2 * self.radius > side + 1 {
            return fail(format!(
                "spatial: radius {} does not fit a {side} x {side} grid: use 2 to {}",
                self.radius,
                (side + 1) / 2
            ));
        }
        if self.neighborhoods == 0 || self.neighborhoods > POOL {
            return fail(format!("spatial: neighborhoods is {}: use 1 to {POOL}", self.neighborhoods));
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return fail(format!("spatial: alpha is {}: use 0 (control) or more", self.alpha));
        }
        Ok(side)
    }
}

/// One spatial output's layout: the cell of each unit and the pool of neighbourhoods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerLayout {
    /// `cell[u]`: unit u's cell, `row * side + column`.
    pub cell: Vec<u32>,
    /// [`POOL`] neighbourhoods, each its member units in ascending order.
    pub neighborhoods: Vec<Vec<u32>>,
}

/// The layouts of all spatial outputs (saved with the training state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpatialLayout {
    pub side: usize,
    pub radius: usize,
    pub layers: Vec<LayerLayout>,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A ChaCha8 generator that is a pure function of its arguments.
fn rng(seed: u64, purpose: u64, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed ^ mix(purpose ^ mix(a ^ mix(b)))))
}

const PURPOSE_CENTRES: u64 = 0x5a7a_0001;
const PURPOSE_SWAPS: u64 = 0x5a7a_0002;
const PURPOSE_DRAW: u64 = 0x5a7a_0003;

impl SpatialLayout {
    /// Units on the row-major grid; the pool of neighbourhoods of each of
    /// `outputs` spatial outputs drawn from `seed`.
    pub fn grid(side: usize, radius: usize, outputs: usize, seed: u64) -> SpatialLayout {
        let lo = radius - 1;
        let hi = side - radius;
        let layers = (0..outputs)
            .map(|l| {
                let mut rng = rng(seed, PURPOSE_CENTRES, l as u64, 0);
                let neighborhoods = (0..POOL)
                    .map(|_| {
                        let (r, c) = (rng.random_range(lo..=hi), rng.random_range(lo..=hi));
                        let mut members = Vec::new();
                        for row in r + 1 - radius..r + radius {
                            for col in c + 1 - radius..c + radius {
                                members.push((row * side + col) as u32);
                            }
                        }
                        members
                    })
                    .collect();
                LayerLayout { cell: (0..(side * side) as u32).collect(), neighborhoods }
            })
            .collect();
        SpatialLayout { side, radius, layers }
    }

    /// The cell's (row, column).
    pub fn coords(&self, cell: u32) -> (f64, f64) {
        ((cell as usize / self.side) as f64, (cell as usize % self.side) as f64)
    }

    /// `D` over the pairs i < j of `members` (row-major upper triangle).
    pub fn distance_pairs(&self, layer: usize, members: &[u32]) -> Vec<f64> {
        let cells: Vec<(f64, f64)> =
            members.iter().map(|&u| self.coords(self.layers[layer].cell[u as usize])).collect();
        pair_similarity(&cells)
    }

    /// The reference's swap pre-optimisation: for each spatial output `l`
    /// (activations `[N, n_embd]` in `activations[l]`) and each
    /// neighbourhood of its pool in order, [`SWAP_STEPS`] times: swap the
    /// cells of two random members, keep the swap if the neighbourhood's
    /// loss is not higher than the best so far, else undo it. Returns the
    /// swaps kept.
    pub fn preoptimize(&mut self, activations: &[Tensor], seed: u64) -> usize {
        let mut kept = 0;
        for (l, acts) in activations.iter().enumerate() {
            let acts = acts.to_device(Device::Cpu).to_kind(Kind::Double);
            let mut rng = rng(seed, PURPOSE_SWAPS, l as u64, 0);
            for n in 0..self.layers[l].neighborhoods.len() {
                let members = self.layers[l].neighborhoods[n].clone();
                let index = Tensor::from_slice(&members.iter().map(|&u| u as i64).collect::<Vec<_>>());
                let r = correlation_pairs(&acts.index_select(1, &index).unsqueeze(0));
                let r: Vec<f64> = Vec::try_from(r.view([-1])).expect("f64 correlations");
                let mut cells: Vec<u32> = members.iter().map(|&u| self.layers[l].cell[u as usize]).collect();
                let loss_of = |cells: &[u32]| {
                    let coords: Vec<(f64, f64)> = cells.iter().map(|&c| self.coords(c)).collect();
                    0.5 * (1.0 - pearson(&r, &pair_similarity(&coords)))
                };
                let mut best = f64::INFINITY;
                for _ in 0..SWAP_STEPS {
                    let a = rng.random_range(0..cells.len());
                    let b = (a + rng.random_range(1..cells.len())) % cells.len();
                    cells.swap(a, b);
                    let loss = loss_of(&cells);
                    if loss > best {
                        cells.swap(a, b);
                    } else {
                        best = loss;
                        kept += 1;
                    }
                }
                for (&u, &c) in members.iter().zip(&cells) {
                    self.layers[l].cell[u as usize] = c;
                }
            }
        }
        kept
    }
}

/// `1 / (1 + Euclidean distance)` over the pairs i < j (row-major upper triangle).
pub fn pair_similarity(coords: &[(f64, f64)]) -> Vec<f64> {
    let mut out = Vec::with_capacity(coords.len() * coords.len().saturating_sub(1) / 2);
    for i in 0..coords.len() {
        for j in i + 1..coords.len() {
            let (dr, dc) = (coords[i].0 - coords[j].0, coords[i].1 - coords[j].1);
            out.push(1.0 / (1.0 + (dr * dr + dc * dc).sqrt()));
        }
    }
    out
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// The indices `i * k + j`, i < j, of a flattened `k x k` matrix.
fn pair_index(k: usize) -> Vec<i64> {
    (0..k).flat_map(|i| (i + 1..k).map(move |j| (i * k + j) as i64)).collect()
}

/// Pearson correlations between the columns of each `[N, k]` slice of
/// `x` (`[M, N, k]`), over the pairs i < j: `[M, k (k - 1) / 2]`. Differentiable.
pub fn correlation_pairs(x: &Tensor) -> Tensor {
    let size = x.size();
    let (m, k) = (size[0], size[2] as usize);
    let centred = x - x.mean_dim(&[1i64][..], true, x.kind());
    // Covariances first, then scaled by the standard deviations: the
    // elementwise work (and its backward) is on [M, k, k], not [M, N, k].
    let cov = centred.transpose(1, 2).bmm(&centred);
    let inv = cov.diagonal(0, 1, 2).rsqrt();
    let r = (cov * inv.unsqueeze(2) * inv.unsqueeze(1)).view([m, -1]);
    r.index_select(1, &Tensor::from_slice(&pair_index(k)).to_device(x.device()))
}

/// Pearson correlation of the rows of `a` and `b` (`[M, P]`): `[M]`.
fn row_pearson(a: &Tensor, b: &Tensor) -> Tensor {
    let kind = a.kind();
    let a = a - a.mean_dim(&[1i64][..], true, kind);
    let b = b - b.mean_dim(&[1i64][..], true, kind);
    let dot = (&a * &b).sum_dim_intlist(&[1i64][..], false, kind);
    dot / (a.square().sum_dim_intlist(&[1i64][..], false, kind) * b.square().sum_dim_intlist(&[1i64][..], false, kind))
        .sqrt()
}

/// The loss of each neighbourhood: `acts` `[M, N, k]` (the members'
/// activations), `similarity` `[M, k (k - 1) / 2]` (`D` over the pairs):
/// `0.5 (1 - corr(r, D))`, `[M]`.
pub fn neighborhood_losses(acts: &Tensor, similarity: &Tensor) -> Tensor {
    let r = correlation_pairs(acts);
    (1.0 - row_pearson(&r, &similarity.to_kind(r.kind()))) * 0.5
}

/// The spatial loss of a model: its layout as tensors, ready for every step.
pub struct SpatialLoss {
    pub config: SpatialConfig,
    pub layout: SpatialLayout,
    seed: u64,
    /// `[S, POOL, k]` int64: the members of each neighbourhood.
    members: Tensor,
    /// `[S, POOL, P]` f64: `D` over each neighbourhood's pairs.
    similarity: Tensor,
}

impl SpatialLoss {
    pub fn new(config: SpatialConfig, layout: SpatialLayout, seed: u64, device: Device) -> SpatialLoss {
        let s = layout.layers.len() as i64;
        let k = (2 * layout.radius - 1).pow(2) as i64;
        let mut members = Vec::new();
        let mut similarity = Vec::new();
        for (l, layer) in layout.layers.iter().enumerate() {
            for n in &layer.neighborhoods {
                members.extend(n.iter().map(|&u| u as i64));
                similarity.extend(layout.distance_pairs(l, n));
            }
        }
        let pool = POOL as i64;
        let members = Tensor::from_slice(&members).view([s, pool, k]).to_device(device);
        let similarity = Tensor::from_slice(&similarity).view([s, pool, -1]).to_device(device);
        SpatialLoss { config, layout, seed, members, similarity }
    }

    /// The neighbourhoods (indices into each pool) drawn at `step` for each
    /// spatial output: a pure function of (seed, step, output).
    pub fn drawn(&self, step: usize) -> Vec<Vec<usize>> {
        (0..self.layout.layers.len())
            .map(|l| {
                let mut rng = rng(self.seed, PURPOSE_DRAW, step as u64, l as u64);
                rand::seq::index::sample(&mut rng, POOL, self.config.neighborhoods).into_vec()
            })
            .collect()
    }

    /// The (unweighted) spatial loss at `step`: the sum over the spatial
    /// outputs (`[B, T, n_embd]` or `[N, n_embd]` each) of the mean loss of
    /// their drawn neighbourhoods. Differentiable; only the drawn
    /// neighbourhoods' units are correlated, by whichever of the two
    /// [`Correlate`] routes takes fewer multiply-adds.
    pub fn loss(&self, outputs: &[Tensor], step: usize) -> Tensor {
        self.loss_by(outputs, step, Correlate::Auto)
    }

    /// [`SpatialLoss::loss`] by a chosen route (the same value up to rounding).
    pub fn loss_by(&self, outputs: &[Tensor], step: usize, route: Correlate) -> Tensor {
        assert_eq!(outputs.len(), self.layout.layers.len(), "one tensor per spatial output");
        let drawn = self.drawn(step);
        let s = outputs.len() as i64;
        let m = self.config.neighborhoods as i64;
        let k = self.members.size()[2];
        let unions: Vec<Vec<u32>> = drawn
            .iter()
            .enumerate()
            .map(|(l, d)| {
                let mut units: Vec<u32> =
                    d.iter().flat_map(|&n| self.layout.layers[l].neighborhoods[n].iter().copied()).collect();
                units.sort_unstable();
                units.dedup();
                units
            })
            .collect();
        let union = match route {
            Correlate::Union => true,
            Correlate::PerNeighborhood => false,
            // Covariances over each output's union (u^2 per token) against one per
            // neighbourhood (m k^2): on small grids the drawn neighbourhoods overlap
            // and the union is cheaper; on large ones (784 units) it is not.
            Correlate::Auto => unions.iter().map(|u| u.len().pow(2)).sum::<usize>() < (s * m * k * k) as usize,
        };
        // Flat indices (output * POOL + neighbourhood) of the drawn ones.
        let flat: Vec<i64> =
            drawn.iter().enumerate().flat_map(|(l, d)| d.iter().map(move |&i| (l * POOL + i) as i64)).collect();
        let flat = Tensor::from_slice(&flat).to_device(outputs[0].device());
        let r = if union {
            self.union_correlations(outputs, &drawn, &unions)
        } else {
            self.neighborhood_correlations(outputs, &flat)
        };
        let similarity = self.similarity.view([s * POOL as i64, -1]).index_select(0, &flat);
        let losses: Tensor = (1.0 - row_pearson(&r, &similarity.to_kind(r.kind()))) * 0.5;
        let losses = losses.view([s, m]);
        losses.mean_dim(&[1i64][..], false, losses.kind()).sum(losses.kind())
    }

    /// `r` over each drawn neighbourhood's pairs, one `[k, k]` covariance per
    /// neighbourhood (all outputs in one batched product): `[S m, P]`.
    /// `flat`: the drawn neighbourhoods as `output * POOL + neighbourhood`.
    fn neighborhood_correlations(&self, outputs: &[Tensor], flat: &Tensor) -> Tensor {
        let s = outputs.len() as i64;
        let m = self.config.neighborhoods as i64;
        let e = (self.layout.side * self.layout.side) as i64;
        // Units as rows ([S * n_embd, N]), so one index_select takes every
        // drawn neighbourhood's members of every output.
        let units = Tensor::stack(&outputs.iter().map(|o| o.reshape([-1, e])).collect::<Vec<_>>(), 0)
            .transpose(1, 2)
            .reshape([-1, outputs[0].numel() as i64 / e]);
        let device = units.device();
        let k = self.members.size()[2];
        let offsets = Tensor::arange(s, (Kind::Int64, device)).view([s, 1, 1]) * e;
        let rows = (&self.members + &offsets).view([-1, k]).index_select(0, flat).view([-1]);
        let acts = units.index_select(0, &rows).view([s * m, k, -1]).transpose(1, 2);
        correlation_pairs(&acts)
    }

    /// `r` over each drawn neighbourhood's pairs, read from one covariance
    /// matrix per output over the union of its drawn neighbourhoods'
    /// units (`unions[l]`, ascending): `[S m, P]`, rows in the order of
    /// [`SpatialLoss::neighborhood_correlations`].
    fn union_correlations(&self, outputs: &[Tensor], drawn: &[Vec<usize>], unions: &[Vec<u32>]) -> Tensor {
        let e = (self.layout.side * self.layout.side) as i64;
        let rows: Vec<Tensor> = outputs
            .iter()
            .zip(drawn.iter().zip(unions))
            .enumerate()
            .map(|(l, (output, (drawn, units)))| {
                let device = output.device();
                let u = units.len();
                let mut at = vec![usize::MAX; e as usize];
                for (i, &unit) in units.iter().enumerate() {
                    at[unit as usize] = i;
                }
                let columns: Vec<i64> = units.iter().map(|&unit| unit as i64).collect();
                let x = output.reshape([-1, e]).index_select(1, &Tensor::from_slice(&columns).to_device(device));
                let centred = &x - x.mean_dim(&[0i64][..], true, x.kind());
                let cov = centred.transpose(0, 1).mm(&centred);
                let inv = cov.diagonal(0, 0, 1).rsqrt();
                let r = (cov * inv.unsqueeze(1) * inv.unsqueeze(0)).view([-1]);
                // Each neighbourhood's pairs i < j in member order, as `pair_index`.
                let pairs: Vec<i64> = drawn
                    .iter()
                    .flat_map(|&n| {
                        let members = &self.layout.layers[l].neighborhoods[n];
                        let at = &at;
                        members.iter().enumerate().flat_map(move |(i, &a)| {
                            members[i + 1..].iter().map(move |&b| (at[a as usize] * u + at[b as usize]) as i64)
                        })
                    })
                    .collect();
                r.index_select(0, &Tensor::from_slice(&pairs).to_device(device)).view([drawn.len() as i64, -1])
            })
            .collect();
        Tensor::cat(&rows, 0)
    }
}

/// How [`SpatialLoss::loss_by`] computes the drawn neighbourhoods' correlations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correlate {
    /// The route with fewer multiply-adds for this step's draws.
    Auto,
    /// One `[k, k]` covariance per neighbourhood: `m k^2` per token and output.
    PerNeighborhood,
    /// One covariance over the union of an output's drawn neighbourhoods: `u^2` per token.
    Union,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbourhoods_are_full_squares_inside_the_grid_and_draws_are_reproducible() {
        let layout = SpatialLayout::grid(12, 5, 4, 3);
        for layer in &layout.layers {
            assert_eq!(layer.neighborhoods.len(), POOL);
            for n in &layer.neighborhoods {
                assert_eq!(n.len(), 81);
            }
        }
        assert_eq!(layout, SpatialLayout::grid(12, 5, 4, 3));
        assert_ne!(layout, SpatialLayout::grid(12, 5, 4, 4));
        let config = SpatialConfig::default();
        let loss = SpatialLoss::new(config.clone(), layout.clone(), 9, Device::Cpu);
        assert_eq!(loss.drawn(7), loss.drawn(7));
        assert_ne!(loss.drawn(7), loss.drawn(8));
        assert!(config.validate(144).is_ok());
        assert!(config.validate(128).is_err());
        assert!(SpatialConfig { radius: 7, ..config }.validate(144).is_err());
    }

    #[test]
    fn preoptimisation_permutes_cells() {
        let mut layout = SpatialLayout::grid(8, 3, 1, 1);
        let acts = Tensor::randn([200, 64], (Kind::Double, Device::Cpu)).cumsum(1, Kind::Double);
        let before = layout.clone();
        let kept = layout.preoptimize(&[acts.shallow_clone()], 5);
        assert!(kept > 0);
        let mut cells = layout.layers[0].cell.clone();
        cells.sort();
        assert_eq!(cells, before.layers[0].cell);
        // The loss reads the cells.
        let total = |layout: &SpatialLayout| {
            let config = SpatialConfig { neighborhoods: POOL, ..Default::default() };
            SpatialLoss::new(config, layout.clone(), 0, Device::Cpu).loss(&[acts.shallow_clone()], 0).double_value(&[])
        };
        assert_ne!(total(&layout), total(&before));
    }
}
