//! Topography of unit maps on a 2-D grid (TopoLM's measures, used by
//! `topo.selectivity` and `topo.moran`): Welch's t of each unit for a
//! two-condition contrast, Moran's I of a map with queen contiguity and
//! row-standardised weights (as PySAL's `esda.Moran` computes it on
//! `libpysal.weights.lat2W(rows, cols, rook=False)`), and a null for I from
//! random permutations of the stimulus labels. Topoformer's measure:
//! [`topography_index`], the generic topography index (TGI) on a torus grid.
//!
//! Everything is computed in `f64`. The permutation null is a function of
//! the seed alone: permutation `p` shuffles the labels with ChaCha8 seeded
//! by `seed` on stream `p`, so the null is the same whatever the number of
//! threads that compute it (rayon over permutations, results kept in order).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::numeric::Matrix;

/// Welch's t of `positive` against `negative` (mean difference over the
/// unpooled standard error, sample variances with ddof 1), as
/// `scipy.stats.ttest_ind(positive, negative, equal_var=False)`: NaN when
/// both groups are constant and equal, infinite when constant but not equal.
pub fn welch_t(positive: &[f64], negative: &[f64]) -> f64 {
    let (mean_p, var_p) = mean_and_variance(positive.iter().copied());
    let (mean_n, var_n) = mean_and_variance(negative.iter().copied());
    welch_from_moments(mean_p, var_p, positive.len(), mean_n, var_n, negative.len())
}

fn welch_from_moments(mean_p: f64, var_p: f64, n_p: usize, mean_n: f64, var_n: f64, n_n: usize) -> f64 {
    (mean_p - mean_n) / (var_p / n_p as f64 + var_n / n_n as f64).sqrt()
}

/// Mean and sample variance (ddof 1), two passes.
fn mean_and_variance(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (sum, count) = values.clone().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    let mean = sum / count as f64;
    let squares: f64 = values.map(|v| (v - mean) * (v - mean)).sum();
    (mean, squares / (count as f64 - 1.0))
}

/// The responses of the items of a contrast, unit-major (`units x items`)
/// in `f64`, so that each unit's responses are contiguous.
#[derive(Debug, Clone)]
pub struct UnitResponses {
    pub n_units: usize,
    pub n_items: usize,
    data: Vec<f64>,
}

impl UnitResponses {
    /// Rows `items` of an items x units matrix.
    pub fn from_rows(matrix: &Matrix, items: &[usize]) -> UnitResponses {
        let (n_units, n_items) = (matrix.cols, items.len());
        let mut data = vec![0.0; n_units * n_items];
        for (k, &item) in items.iter().enumerate() {
            for (unit, &value) in matrix.row(item).iter().enumerate() {
                data[unit * n_items + k] = value as f64;
            }
        }
        UnitResponses { n_units, n_items, data }
    }

    pub fn unit(&self, unit: usize) -> &[f64] {
        &self.data[unit * self.n_items..(unit + 1) * self.n_items]
    }

    /// Welch's t of every unit, items with `is_positive[k]` against the
    /// others (the same numbers as [`welch_t`] on the two groups).
    pub fn welch_t(&self, is_positive: &[bool]) -> Vec<f64> {
        assert_eq!(is_positive.len(), self.n_items, "one label per item");
        let n_p = is_positive.iter().filter(|p| **p).count();
        let n_n = self.n_items - n_p;
        (0..self.n_units)
            .map(|unit| {
                let values = self.unit(unit);
                let (mut sum_p, mut sum_n) = (0.0, 0.0);
                for (&v, &p) in values.iter().zip(is_positive) {
                    if p {
                        sum_p += v;
                    } else {
                        sum_n += v;
                    }
                }
                let (mean_p, mean_n) = (sum_p / n_p as f64, sum_n / n_n as f64);
                let (mut ss_p, mut ss_n) = (0.0, 0.0);
                for (&v, &p) in values.iter().zip(is_positive) {
                    if p {
                        ss_p += (v - mean_p) * (v - mean_p);
                    } else {
                        ss_n += (v - mean_n) * (v - mean_n);
                    }
                }
                let (var_p, var_n) = (ss_p / (n_p as f64 - 1.0), ss_n / (n_n as f64 - 1.0));
                welch_from_moments(mean_p, var_p, n_p, mean_n, var_n, n_n)
            })
            .collect()
    }
}

/// A `rows x cols` lattice with queen contiguity (the 8 surrounding cells,
/// fewer at the edges), cells numbered row-major (`row * cols + col`), as
/// `libpysal.weights.lat2W(rows, cols, rook=False)` numbers them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueenLattice {
    pub rows: usize,
    pub cols: usize,
    neighbours: Vec<Vec<usize>>,
}

impl QueenLattice {
    /// Panics on a lattice of one cell (no cell has a neighbour).
    pub fn new(rows: usize, cols: usize) -> QueenLattice {
        assert!(rows * cols >= 2, "a lattice needs at least 2 cells for Moran's I");
        let mut neighbours = Vec::with_capacity(rows * cols);
        for r in 0..rows as isize {
            for c in 0..cols as isize {
                let mut around = Vec::with_capacity(8);
                for dr in -1..=1isize {
                    for dc in -1..=1isize {
                        let (nr, nc) = (r + dr, c + dc);
                        if (dr, dc) != (0, 0) && (0..rows as isize).contains(&nr) && (0..cols as isize).contains(&nc) {
                            around.push(nr as usize * cols + nc as usize);
                        }
                    }
                }
                neighbours.push(around);
            }
        }
        QueenLattice { rows, cols, neighbours }
    }

    pub fn cells(&self) -> usize {
        self.rows * self.cols
    }

    /// Moran's I of `values` (one per cell, row-major) with row-standardised
    /// weights w_ij = 1 / |neighbours of i|: I = n / S0 * sum_i z_i (W z)_i /
    /// sum_i z_i^2 with z = values - mean, S0 the sum of the weights (esda's
    /// `Moran(y, w).I` with `w.transform = 'r'`). NaN for a constant map.
    pub fn moran_i(&self, values: &[f64]) -> f64 {
        assert_eq!(values.len(), self.cells(), "one value per cell");
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let z: Vec<f64> = values.iter().map(|v| v - mean).collect();
        let (mut cross, mut s0) = (0.0, 0.0);
        for (i, around) in self.neighbours.iter().enumerate() {
            let weight = 1.0 / around.len() as f64;
            let lag: f64 = around.iter().map(|&j| weight * z[j]).sum();
            cross += z[i] * lag;
            s0 += weight * around.len() as f64;
        }
        let squares: f64 = z.iter().map(|v| v * v).sum();
        n / s0 * cross / squares
    }
}

/// A map: which unit (column of [`UnitResponses`]) sits at each cell of a
/// lattice, row-major.
#[derive(Debug, Clone)]
pub struct GridMap {
    pub lattice: QueenLattice,
    pub cells: Vec<usize>,
}

impl GridMap {
    /// The values of `per_unit` laid out on the grid, row-major.
    pub fn values(&self, per_unit: &[f64]) -> Vec<f64> {
        self.cells.iter().map(|&unit| per_unit[unit]).collect()
    }

    pub fn moran_i(&self, per_unit: &[f64]) -> f64 {
        self.lattice.moran_i(&self.values(per_unit))
    }
}

/// Moran's I of one map's t-values and its label-permutation null.
#[derive(Debug, Clone, PartialEq)]
pub struct MoranTest {
    pub i: f64,
    /// -1 / (n - 1), I's expectation under no spatial pattern.
    pub expected_i: f64,
    pub null_mean: f64,
    /// Standard deviation of the null with ddof 0 (as esda's `seI_sim`).
    pub null_sd: f64,
    /// (I - null_mean) / null_sd.
    pub z: f64,
    /// (1 + #{null >= I}) / (1 + permutations): one-sided, for clustering.
    pub p: f64,
    /// I of each permutation's t-map, in permutation order.
    pub null: Vec<f64>,
}

/// The labels of permutation `index` of `seed`: `labels` shuffled with
/// ChaCha8 seeded by `seed` on stream `index`.
pub fn permuted_labels(labels: &[bool], seed: u64, index: usize) -> Vec<bool> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    let mut shuffled = labels.to_vec();
    shuffled.shuffle(&mut rng);
    shuffled
}

/// Moran's I of each map's Welch-t map (`is_positive` against the rest of
/// the items) and a null from `permutations` random permutations of the
/// labels, the t-maps recomputed each time. Deterministic for a seed,
/// whatever rayon's thread count. `progress(done)` is called as
/// permutations finish (from any thread).
pub fn moran_label_null(
    responses: &UnitResponses,
    is_positive: &[bool],
    maps: &[GridMap],
    permutations: usize,
    seed: u64,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<MoranTest> {
    let observed_t = responses.welch_t(is_positive);
    let observed: Vec<f64> = maps.iter().map(|map| map.moran_i(&observed_t)).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let null_rows: Vec<Vec<f64>> = (0..permutations)
        .into_par_iter()
        .map(|index| {
            let t = responses.welch_t(&permuted_labels(is_positive, seed, index));
            let row = maps.iter().map(|map| map.moran_i(&t)).collect();
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            row
        })
        .collect();
    maps.iter()
        .enumerate()
        .map(|(m, map)| {
            let null: Vec<f64> = null_rows.iter().map(|row| row[m]).collect();
            summarise(observed[m], map.lattice.cells(), null)
        })
        .collect()
}

/// Moran's I of each map of `per_unit` values and a null from
/// `permutations` random permutations of each map's values over its cells
/// (the randomisation null of esda's `p_sim`: is this map more clustered
/// than the same values placed at random?). Permutation `p` of map `m`
/// shuffles with ChaCha8 seeded by `seed` on stream `m * permutations + p`,
/// so the null does not depend on the thread count.
pub fn moran_location_null(
    per_unit: &[f64],
    maps: &[GridMap],
    permutations: usize,
    seed: u64,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<MoranTest> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    maps.iter()
        .enumerate()
        .map(|(m, map)| {
            let values = map.values(per_unit);
            let null: Vec<f64> = (0..permutations)
                .into_par_iter()
                .map(|index| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream((m * permutations + index) as u64);
                    let mut shuffled = values.clone();
                    shuffled.shuffle(&mut rng);
                    progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                    map.lattice.moran_i(&shuffled)
                })
                .collect();
            summarise(map.lattice.moran_i(&values), map.lattice.cells(), null)
        })
        .collect()
}

fn summarise(i: f64, cells: usize, null: Vec<f64>) -> MoranTest {
    let count = null.len() as f64;
    let null_mean = null.iter().sum::<f64>() / count;
    let null_sd = (null.iter().map(|v| (v - null_mean) * (v - null_mean)).sum::<f64>() / count).sqrt();
    let at_least = null.iter().filter(|&&v| v >= i).count();
    MoranTest {
        i,
        expected_i: -1.0 / (cells as f64 - 1.0),
        null_mean,
        null_sd,
        z: (i - null_mean) / null_sd,
        p: (1.0 + at_least as f64) / (1.0 + count),
        null,
    }
}

/// The distance between cells `a` and `b` (row-major cell numbers) of a
/// `side x side` grid whose side has length 1 (Topoformer's coordinates:
/// cell (r, c) at (r / side, c / side)). With `wrap` the grid is a torus:
/// along each axis the shorter way round. Computed from the whole-cell
/// offsets, sqrt(dr^2 + dc^2) / side, so that equal offsets give equal
/// distances to the last bit (the reference code's `1 - dx` on coordinates
/// can split such ties by rounding).
pub fn grid_distance(side: usize, a: usize, b: usize, wrap: bool) -> f64 {
    let axis = |x: usize, y: usize| {
        let d = x.abs_diff(y);
        if wrap {
            d.min(side - d)
        } else {
            d
        }
    };
    let (dr, dc) = (axis(a / side, b / side), axis(a % side, b % side));
    ((dr * dr + dc * dc) as f64).sqrt() / side as f64
}

/// The cut-offs of [`topography_index`] in the Topoformer reference code:
/// `np.linspace(0.1, 0.8, 8)`, distances on the side-1 grid (the torus's
/// largest distance is sqrt(0.5) = 0.707, so the last two take every pair).
pub const TGI_MAX_DISTANCES: [f64; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

/// The generic topography index of one map at one cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct TgiAtDistance {
    pub max_distance: f64,
    /// Unit pairs at distance in (0, max_distance].
    pub pairs: usize,
    /// Minus the Spearman correlation of the pairs' response correlations
    /// with their distances; NaN with fewer than 3 pairs.
    pub stat: f64,
}

/// The generic topography index (Topoformer, `compute_generic_summary_stat`
/// with `stat_type='rankcorr'` averaged over cut-offs as `calculate_tgi`):
/// for each cut-off, minus the Spearman rank correlation (average ranks
/// for ties) between the Pearson correlation of two units' responses over
/// the items and their [`grid_distance`], over the pairs at distance in
/// (0, cut-off]; the index is the mean over the cut-offs with at least 3
/// pairs (on a grid coarser than 10 x 10 the cut-off 0.1 holds no pair; the
/// reference would give NaN there, `np.mean` of a NaN). `cells[u]` is unit
/// u's cell on the `side x side` grid. A unit with constant responses
/// correlates 0 with every other (the reference sets NaN correlations to 0).
/// The reference standardises the correlations first (no change to ranks)
/// and draws at most 100000 of the ordered pairs (i, j) and (j, i) at
/// random; here every unordered pair counts once, which gives the same
/// Spearman correlation as every ordered pair (each value twice).
pub fn topography_index(
    responses: &UnitResponses,
    cells: &[usize],
    side: usize,
    wrap: bool,
    max_distances: &[f64],
) -> (f64, Vec<TgiAtDistance>) {
    let n_units = responses.n_units;
    assert_eq!(cells.len(), n_units, "one cell per unit");
    let n_items = responses.n_items as f64;
    // Centred, unit-norm responses per unit (zero where constant).
    let normalised: Vec<Vec<f64>> = (0..n_units)
        .map(|u| {
            let values = responses.unit(u);
            let mean = values.iter().sum::<f64>() / n_items;
            let centred: Vec<f64> = values.iter().map(|v| v - mean).collect();
            let norm = centred.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 && norm.is_finite() {
                centred.iter().map(|v| v / norm).collect()
            } else {
                vec![0.0; centred.len()]
            }
        })
        .collect();
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(n_units * n_units.saturating_sub(1) / 2);
    for i in 0..n_units {
        for j in i + 1..n_units {
            let distance = grid_distance(side, cells[i], cells[j], wrap);
            if distance > 0.0 {
                let r: f64 = normalised[i].iter().zip(&normalised[j]).map(|(a, b)| a * b).sum();
                pairs.push((r, distance));
            }
        }
    }
    let by_distance: Vec<TgiAtDistance> = max_distances
        .iter()
        .map(|&max_distance| {
            let (r, d): (Vec<f64>, Vec<f64>) =
                pairs.iter().filter(|(_, distance)| *distance <= max_distance).copied().unzip();
            let stat = if r.len() < 3 { f64::NAN } else { -spearman(&r, &d) };
            TgiAtDistance { max_distance, pairs: r.len(), stat }
        })
        .collect();
    let defined: Vec<f64> = by_distance.iter().map(|t| t.stat).filter(|s| !s.is_nan()).collect();
    let mean = if defined.is_empty() { f64::NAN } else { defined.iter().sum::<f64>() / defined.len() as f64 };
    (mean, by_distance)
}

/// The first `k` principal components of the units' responses (units as
/// features, items as samples), as `sklearn.decomposition.PCA(k).fit`:
/// each component a unit vector of loadings (`components_[c]`), its sign
/// set so that its largest absolute loading is positive (scikit-learn's
/// `svd_flip(u_based_decision=False)`), and its explained variance ratio
/// (eigenvalue over the total variance). From the eigendecomposition of the
/// units' covariance (faer); `k` at most the number of units.
pub fn principal_components(responses: &UnitResponses, k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    use faer::Mat;
    let (n_units, n_items) = (responses.n_units, responses.n_items);
    let centred: Vec<Vec<f64>> = (0..n_units)
        .map(|u| {
            let values = responses.unit(u);
            let mean = values.iter().sum::<f64>() / n_items as f64;
            values.iter().map(|v| v - mean).collect()
        })
        .collect();
    let denominator = (n_items as f64 - 1.0).max(1.0);
    let covariance = Mat::<f64>::from_fn(n_units, n_units, |i, j| {
        centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum::<f64>() / denominator
    });
    let total: f64 = (0..n_units).map(|u| covariance[(u, u)]).sum();
    let evd = covariance.self_adjoint_eigen(faer::Side::Lower).expect("a symmetric eigendecomposition");
    let (values, vectors) = (evd.S().column_vector(), evd.U());
    let k = k.min(n_units);
    let mut components = Vec::with_capacity(k);
    let mut ratios = Vec::with_capacity(k);
    for c in 0..k {
        // faer gives increasing eigenvalues.
        let column = n_units - 1 - c;
        let mut loading: Vec<f64> = (0..n_units).map(|u| vectors[(u, column)]).collect();
        let largest = loading.iter().copied().fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        if largest < 0.0 {
            loading.iter_mut().for_each(|v| *v = -*v);
        }
        components.push(loading);
        ratios.push(values[column] / total);
    }
    (components, ratios)
}

/// Spearman's rank correlation (Pearson correlation of average ranks), as
/// `scipy.stats.spearmanr`; NaN when either side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    pearson(&rx, &ry)
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    sxy / (sxx * syy).sqrt()
}

/// 1-based ranks, ties given the mean of the ranks they span.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &k in &order[start..end] {
            ranks[k] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use rand_distr::StandardNormal;

    use super::*;
    use crate::testing::fresh_rng;

    /// Moran's I by its definition with an explicit dense weight matrix
    /// (independent of the neighbour lists): queen contiguity by coordinates.
    fn dense_moran(rows: usize, cols: usize, y: &[f64]) -> f64 {
        let n = rows * cols;
        let mut w = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                let (ri, ci, rj, cj) = ((i / cols) as i64, (i % cols) as i64, (j / cols) as i64, (j % cols) as i64);
                if i != j && (ri - rj).abs() <= 1 && (ci - cj).abs() <= 1 {
                    w[i][j] = 1.0;
                }
            }
            let total: f64 = w[i].iter().sum();
            w[i].iter_mut().for_each(|v| *v /= total);
        }
        let mean = y.iter().sum::<f64>() / n as f64;
        let z: Vec<f64> = y.iter().map(|v| v - mean).collect();
        let s0: f64 = w.iter().flatten().sum();
        let mut num = 0.0;
        for i in 0..n {
            for j in 0..n {
                num += w[i][j] * z[i] * z[j];
            }
        }
        n as f64 / s0 * num / z.iter().map(|v| v * v).sum::<f64>()
    }

    #[test]
    fn moran_matches_the_dense_definition_on_random_maps() {
        let mut rng = fresh_rng("moran_dense");
        for (rows, cols) in [(2, 2), (3, 5), (7, 7), (10, 4)] {
            let y: Vec<f64> = (0..rows * cols).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
            let lattice = QueenLattice::new(rows, cols);
            let (ours, dense) = (lattice.moran_i(&y), dense_moran(rows, cols, &y));
            assert!((ours - dense).abs() < 1e-12, "{rows}x{cols}: {ours} vs {dense}");
        }
        // Two halves of the grid: strongly clustered.
        let stripes: Vec<f64> = (0..36).map(|k| if (k / 6) < 3 { 1.0 } else { 0.0 }).collect();
        assert!(QueenLattice::new(6, 6).moran_i(&stripes) > 0.5);
    }

    #[test]
    fn welch_t_by_groups_equals_welch_t_of_each_unit() {
        let mut rng = fresh_rng("welch_units");
        let (items, units) = (23, 9);
        let matrix = crate::testing::random_matrix(&mut rng, items, units);
        let chosen: Vec<usize> = (0..items).filter(|k| k % 5 != 0).collect();
        let responses = UnitResponses::from_rows(&matrix, &chosen);
        let labels: Vec<bool> = (0..chosen.len()).map(|_| rng.random::<bool>()).collect();
        let t = responses.welch_t(&labels);
        for (unit, &t_unit) in t.iter().enumerate() {
            let values = responses.unit(unit);
            let split = |want: bool| -> Vec<f64> {
                values.iter().zip(&labels).filter(|(_, &l)| l == want).map(|(v, _)| *v).collect()
            };
            let direct = welch_t(&split(true), &split(false));
            assert!((t_unit - direct).abs() < 1e-12, "unit {unit}: {t_unit} vs {direct}");
        }
        // Equal means and variances: t = 0; constant and equal: NaN.
        assert_eq!(welch_t(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), 0.0);
        assert!(welch_t(&[1.0, 1.0], &[1.0, 1.0]).is_nan());
    }

    #[test]
    fn the_permutation_null_does_not_depend_on_the_thread_count() {
        let mut rng = fresh_rng("moran_threads");
        let side = 5;
        let matrix = crate::testing::random_matrix(&mut rng, 30, 2 * side * side);
        let responses = UnitResponses::from_rows(&matrix, &(0..30).collect::<Vec<_>>());
        let labels: Vec<bool> = (0..30).map(|k| k % 2 == 0).collect();
        let maps: Vec<GridMap> = (0..2)
            .map(|m| GridMap {
                lattice: QueenLattice::new(side, side),
                cells: (m * side * side..(m + 1) * side * side).collect(),
            })
            .collect();
        let seed = rng.random::<u64>();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| moran_label_null(&responses, &labels, &maps, 64, seed, &|_| {}))
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_ne!(one, moran_label_null(&responses, &labels, &maps, 64, seed ^ 1, &|_| {}));
        for test in &one {
            let at_least = test.null.iter().filter(|&&v| v >= test.i).count();
            assert_eq!(test.p, (1 + at_least) as f64 / 65.0);
            assert!(test.null_sd > 0.0 && test.null.len() == 64);
        }
    }

    #[test]
    fn torus_distances_wrap_and_ranks_average_ties() {
        // 8 x 8: cell 0 and cell 7 are neighbours round the edge.
        assert_eq!(grid_distance(8, 0, 7, true), 1.0 / 8.0);
        assert_eq!(grid_distance(8, 0, 7, false), 7.0 / 8.0);
        assert_eq!(grid_distance(8, 0, 8 * 7 + 7, true), 2f64.sqrt() / 8.0);
        assert_eq!(grid_distance(8, 0, 8 * 4 + 4, true), 32f64.sqrt() / 8.0);
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 25.0, 100.0]) - 1.0).abs() < 1e-15);
    }
}
