//! From word time to TR time and into the design matrix: downsampling of
//! word-level features onto the fMRI TR grid (LITcoder's rect, average, sum
//! and last; Huth's Lanczos and sinc interpolation), FIR delays within
//! stories, column z-scoring, LITcoder's temporal-baseline control features,
//! and trimming of each story's first and last TRs.
//!
//! Conventions shared by every function here:
//!
//! - A story is a contiguous block of rows; `story_lengths` lists the blocks
//!   in order and must sum to the number of rows. Nothing crosses a story
//!   boundary.
//! - `tr_times[i]` is the time, in seconds, that TR `i` stands for. Huth's
//!   `lanczosinterp2D` and LITcoder evaluate the kernels at the *middle* of
//!   each acquisition (trigger time + TR / 2), so that is what callers should
//!   pass. The binning methods use the bin centred on it,
//!   `[tr_times[i] - s / 2, tr_times[i] + s / 2)`, which is LITcoder's
//!   `RectangularDownsampler` window and, for mid-TR times, the acquisition
//!   interval `[trigger, trigger + TR)` that Huth's `split_inds` bin by
//!   (Huth bins by word onset; voxflow by whichever word time it is given).
//!   Words outside every bin are dropped, not folded into the first or last
//!   TR as `np.split` on `split_inds` does.
//! - `s`, the grid spacing, is `mean(diff(tr_times))` exactly as in
//!   `lanczosinterp2D`, `sincinterp2D` and LITcoder's rect; `tr_seconds` is
//!   used when there is only one TR, and a grid whose mean spacing differs
//!   from `tr_seconds` by more than 1% is an error (times in TR units, or the
//!   wrong TR, would otherwise pass silently).
//! - Sums are accumulated in `f64` and rounded to `f32` once at the end.

use std::collections::HashMap;
use std::f64::consts::PI;

use faer::{Mat, Side};
use rayon::prelude::*;

use crate::numeric::stats::is_constant;
use crate::numeric::Matrix;

/// How word-level rows become TR-level rows.
#[derive(Clone, Debug, PartialEq)]
pub enum DownsampleMethod {
    /// LITcoder's `RectangularDownsampler`: the mean of the words whose time
    /// falls in the box `[t - s/2, t + s/2)` around the TR time `t` (0 if
    /// none). With voxflow's centred bins this is the same box as `Average`;
    /// both names exist so that LITcoder configurations map one to one.
    Rect,
    /// Mean of the word vectors in the TR's bin (0 if none).
    Average,
    /// Sum of the word vectors in the TR's bin (0 if none); with a column of
    /// ones this is the word rate.
    Sum,
    /// The vector of the word whose time is last in the TR's bin (ties: the
    /// later row), 0 if none.
    Last,
    /// Huth's `lanczosinterp2D`: `out[i] = sum_j L((t_i - w_j) * cutoff)
    /// v_j` with `cutoff = cutoff_mult / s` and `window` lobes.
    Lanczos { window: usize, cutoff_mult: f64 },
    /// Huth's `sincinterp2D` with its defaults `causal = False`,
    /// `renorm = True`: sinc weights of bandwidth `B = cutoff_mult / s`,
    /// zero beyond `window / (2B)`, each TR's weights normalised to sum to 1.
    Sinc { window: usize, cutoff_mult: f64 },
}

impl DownsampleMethod {
    /// LITcoder's and Huth's usual choice: 3 lobes, cutoff at `1 / TR`.
    pub const LANCZOS3: DownsampleMethod = DownsampleMethod::Lanczos { window: 3, cutoff_mult: 1.0 };
}

/// Rows to skip at the start and end of every story.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    pub start: usize,
    pub end: usize,
}

impl Trim {
    /// Keep every TR.
    pub const NONE: Trim = Trim { start: 0, end: 0 };
    /// LeBel et al. 2023 (ds003020) and LITcoder's LeBel runs: `[10:-5]`,
    /// the 10 s silent lead-in plus 5 TRs on each side of the story.
    pub const LEBEL_2023: Trim = Trim { start: 10, end: 5 };
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    #[error("the feature matrix has {rows} rows but {times} word times were given")]
    WordCountMismatch { rows: usize, times: usize },
    #[error("{what}[{index}] is not a finite number ({value})")]
    NonFiniteTime { what: &'static str, index: usize, value: f64 },
    #[error("tr_times must increase, but tr_times[{index}] = {value} follows {previous}")]
    TrTimesNotIncreasing { index: usize, previous: f64, value: f64 },
    #[error("tr_seconds must be a positive number of seconds, got {0}")]
    BadTrSeconds(f64),
    #[error(
        "tr_times are {mean_spacing} s apart on average but tr_seconds is {tr_seconds} s \
         (tr_times must be in seconds)"
    )]
    TrSpacingMismatch { mean_spacing: f64, tr_seconds: f64 },
    #[error(
        "{method} needs window >= 1 and cutoff_mult > 0, got window {window}, \
         cutoff_mult {cutoff_mult}"
    )]
    BadKernel { method: &'static str, window: usize, cutoff_mult: f64 },
    #[error("story lengths add up to {total} rows but the matrix has {rows}")]
    StoryLengthMismatch { total: usize, rows: usize },
    #[error("no delays were given")]
    NoDelays,
    #[error(
        "story {story} has {length} rows, too short to trim {start} at the start and {end} \
         at the end"
    )]
    StoryTooShort { story: usize, length: usize, start: usize, end: usize },
    #[error("length_scale must be a positive number of rows, got {0}")]
    BadLengthScale(f64),
}

/// Downsamples one story's word-level rows onto its TR grid.
///
/// `values` has one row per word (`n_words x d`), `word_times` the time of
/// each word in seconds (callers pass word midpoints, as Huth and LITcoder
/// do; they need not be sorted), `tr_times` the time of each TR (see the
/// module conventions), `tr_seconds` the repetition time. Returns
/// `n_trs x d`. Lanczos and sinc only visit the words inside the kernel's
/// support (binary search on the sorted times), so the cost is
/// `O(n_trs * words per window * d)`, parallel over TRs.
pub fn downsample(
    values: &Matrix,
    word_times: &[f64],
    tr_times: &[f64],
    tr_seconds: f64,
    method: &DownsampleMethod,
) -> Result<Matrix, SignalError> {
    if values.rows != word_times.len() {
        return Err(SignalError::WordCountMismatch { rows: values.rows, times: word_times.len() });
    }
    check_finite("word_times", word_times)?;
    check_finite("tr_times", tr_times)?;
    let spacing = grid_spacing(tr_times, tr_seconds)?;
    let weighting = match *method {
        DownsampleMethod::Lanczos { window, cutoff_mult } => {
            check_kernel("lanczos", window, cutoff_mult)?;
            Weighting::Lanczos { window, cutoff: cutoff_mult / spacing }
        }
        DownsampleMethod::Sinc { window, cutoff_mult } => {
            check_kernel("sinc", window, cutoff_mult)?;
            Weighting::Sinc { window, bandwidth: cutoff_mult / spacing }
        }
        DownsampleMethod::Rect | DownsampleMethod::Average => Weighting::BinMean { spacing },
        DownsampleMethod::Sum => Weighting::BinSum { spacing },
        DownsampleMethod::Last => Weighting::BinLast { spacing },
    };

    let words = SortedWords::new(word_times);
    let d = values.cols;
    let mut out = Matrix::zeros(tr_times.len(), d);
    if d == 0 || values.rows == 0 {
        return Ok(out);
    }
    out.data.par_chunks_mut(d).enumerate().for_each(|(i, out_row)| {
        let weights = weighting.weights(&words, tr_times[i]);
        let mut acc = vec![0.0f64; d];
        for (word, weight) in weights {
            for (a, &v) in acc.iter_mut().zip(values.row(word)) {
                *a += weight * v as f64;
            }
        }
        for (o, a) in out_row.iter_mut().zip(&acc) {
            *o = *a as f32;
        }
    });
    Ok(out)
}

/// The Lanczos kernel at `t` (already multiplied by the cutoff frequency):
/// `L(t) = w sin(pi t) sin(pi t / w) / (pi^2 t^2)`, `L(0) = 1`, and 0 for
/// `|t| > w`, as Huth's `lanczosfun`.
pub fn lanczos_kernel(t: f64, window: usize) -> f64 {
    let w = window as f64;
    if t == 0.0 {
        return 1.0;
    }
    if t.abs() > w {
        return 0.0;
    }
    w * (PI * t).sin() * (PI * t / w).sin() / (PI * PI * (t * t))
}

/// FIR delays within each story: output column block `k` (columns
/// `k * d .. (k + 1) * d`) holds the features delayed by `delays[k]` rows,
/// zero for the first `delays[k]` rows of every story, so that no delay
/// carries one story's features into the next. Delay 0 is the undelayed
/// copy; this is LITcoder's `FIR.make_delayed` applied story by story.
pub fn lag(features: &Matrix, story_lengths: &[usize], delays: &[usize]) -> Result<Matrix, SignalError> {
    check_story_lengths(story_lengths, features.rows)?;
    if delays.is_empty() {
        return Err(SignalError::NoDelays);
    }
    let d = features.cols;
    let width = d * delays.len();
    let mut out = Matrix::zeros(features.rows, width);
    if width == 0 {
        return Ok(out);
    }
    let mut position_in_story = Vec::with_capacity(features.rows);
    for &length in story_lengths {
        position_in_story.extend(0..length);
    }
    out.data.par_chunks_mut(width).enumerate().for_each(|(row, out_row)| {
        let position = position_in_story[row];
        for (block, &delay) in out_row.chunks_mut(d).zip(delays) {
            if position >= delay {
                block.copy_from_slice(features.row(row - delay));
            }
        }
    });
    Ok(out)
}

/// Column means and population standard deviations, to z-score a matrix
/// with statistics fitted on (possibly) another one.
#[derive(Clone, Debug, PartialEq)]
pub struct ZScore {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl ZScore {
    /// Fits per-column mean and population std (ddof 0, like `scipy.stats.zscore`
    /// and LITcoder's `zs`), two passes in `f64`.
    pub fn fit(m: &Matrix) -> ZScore {
        let cols = m.cols;
        let n = m.rows.max(1) as f64;
        let row_chunk = 256;
        let sums = m
            .data
            .par_chunks(cols.max(1) * row_chunk)
            .map(|chunk| {
                let mut sum = vec![0.0f64; cols];
                for row in chunk.chunks(cols.max(1)) {
                    for (s, &x) in sum.iter_mut().zip(row) {
                        *s += x as f64;
                    }
                }
                sum
            })
            .reduce(|| vec![0.0f64; cols], add_vectors);
        let mean: Vec<f64> = sums.iter().map(|s| s / n).collect();
        let squares = m
            .data
            .par_chunks(cols.max(1) * row_chunk)
            .map(|chunk| {
                let mut sum = vec![0.0f64; cols];
                for row in chunk.chunks(cols.max(1)) {
                    for ((s, &x), mu) in sum.iter_mut().zip(row).zip(&mean) {
                        let dev = x as f64 - mu;
                        *s += dev * dev;
                    }
                }
                sum
            })
            .reduce(|| vec![0.0f64; cols], add_vectors);
        let std = squares.iter().map(|s| (s / n).sqrt()).collect();
        ZScore { mean, std }
    }

    /// `(x - mean) / std` in place; constant columns (see
    /// [`ZScore::constant_columns`]) become 0, as LITcoder's `nan_to_num(zs(..))`.
    ///
    /// Panics if `m` does not have the fitted number of columns.
    pub fn apply(&self, m: &mut Matrix) {
        assert_eq!(m.cols, self.mean.len(), "z-score fitted on a different number of columns");
        let cols = m.cols;
        if cols == 0 {
            return;
        }
        let scale: Vec<f64> = (0..cols).map(|c| if self.is_constant(c) { 0.0 } else { 1.0 / self.std[c] }).collect();
        m.data.par_chunks_mut(cols).for_each(|row| {
            for ((x, mu), s) in row.iter_mut().zip(&self.mean).zip(&scale) {
                *x = ((*x as f64 - mu) * s) as f32;
            }
        });
    }

    /// Columns whose std is 0 or below `1e-12 * |mean|` (constant up to
    /// rounding); `apply` sets them to 0.
    pub fn constant_columns(&self) -> Vec<usize> {
        (0..self.mean.len()).filter(|&c| self.is_constant(c)).collect()
    }

    fn is_constant(&self, c: usize) -> bool {
        is_constant(self.std[c], self.mean[c])
    }
}

/// LITcoder's temporal-baseline control features
/// (`BaseAssemblyGenerator._create_temporal_baseline`): content-free
/// features whose similarity depends only on the distance between rows.
/// For each story of `n` rows, `A[i][j] = exp(-|i - j| / length_scale)`;
/// with `A = U diag(s) U^T` (eigenvalues descending) the features are
/// `U[:, :k] * sqrt(s[:k])`, `k = min(n_features, n)`, so that the rows'
/// inner products are the best rank-`k` approximation of `A` (exactly `A`
/// when `k = n`). Columns `k..n_features` of a story shorter than
/// `n_features` are zero, so every story has the same width.
///
/// Eigenvectors are defined up to sign; each column is made positive at its
/// first entry that is not negligible (above `1e-6` of the column's largest),
/// so the output does not depend on the eigensolver. `story_lengths` count
/// whatever rows the caller wants: LITcoder builds the features over a
/// story's words (`correlation_length` 100 words in `generate_assembly`,
/// `d_model` 128); passing TR counts gives features whose correlation decays
/// with the TR distance, `length_scale` in TRs.
///
/// The construction is deterministic; `_seed` is accepted so that a stage can
/// pass its seed uniformly, and does not change the output. Stories of equal
/// length get identical blocks (computed once); each costs one `n x n`
/// symmetric eigendecomposition.
pub fn temporal_baseline(
    story_lengths: &[usize],
    n_features: usize,
    length_scale: f64,
    _seed: u64,
) -> Result<Matrix, SignalError> {
    if !(length_scale.is_finite() && length_scale > 0.0) {
        return Err(SignalError::BadLengthScale(length_scale));
    }
    let mut distinct: Vec<usize> = story_lengths.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let blocks: HashMap<usize, Matrix> =
        distinct.par_iter().map(|&n| (n, baseline_block(n, n_features, length_scale))).collect();
    let parts: Vec<&Matrix> = story_lengths.iter().map(|n| &blocks[n]).collect();
    if parts.is_empty() {
        return Ok(Matrix::zeros(0, n_features));
    }
    Ok(Matrix::vstack(&parts))
}

/// Per story, the half-open row range `(first, end)` that survives dropping
/// `start` rows at its beginning and `end` rows at its end, as global row
/// indices of the stacked matrix (LeBel's `[10:-5]` is `start = 10`,
/// `end = 5`; see [`Trim::LEBEL_2023`]). A story must keep at least one row.
pub fn trim(story_lengths: &[usize], start: usize, end: usize) -> Result<Vec<(usize, usize)>, SignalError> {
    let mut offset = 0;
    let mut ranges = Vec::with_capacity(story_lengths.len());
    for (story, &length) in story_lengths.iter().enumerate() {
        if length <= start + end {
            return Err(SignalError::StoryTooShort { story, length, start, end });
        }
        ranges.push((offset + start, offset + length - end));
        offset += length;
    }
    Ok(ranges)
}

/// The row indices covered by `ranges` (from [`trim`]), in order, for
/// [`Matrix::select_rows`].
pub fn trimmed_rows(ranges: &[(usize, usize)]) -> Vec<usize> {
    ranges.iter().flat_map(|&(first, end)| first..end).collect()
}

/// Word times sorted ascending, with the original row of each.
struct SortedWords {
    times: Vec<f64>,
    rows: Vec<usize>,
}

impl SortedWords {
    fn new(word_times: &[f64]) -> SortedWords {
        let mut rows: Vec<usize> = (0..word_times.len()).collect();
        if !word_times.windows(2).all(|w| w[0] <= w[1]) {
            rows.sort_by(|&a, &b| word_times[a].total_cmp(&word_times[b]));
        }
        let times = rows.iter().map(|&r| word_times[r]).collect();
        SortedWords { times, rows }
    }

    /// Sorted positions of the words with `low <= time < high`.
    fn half_open(&self, low: f64, high: f64) -> std::ops::Range<usize> {
        let first = self.times.partition_point(|&x| x < low);
        let end = self.times.partition_point(|&x| x < high);
        first..end.max(first)
    }

    /// Sorted positions of the words with `low <= time <= high`.
    fn closed(&self, low: f64, high: f64) -> std::ops::Range<usize> {
        let first = self.times.partition_point(|&x| x < low);
        let end = self.times.partition_point(|&x| x <= high);
        first..end.max(first)
    }
}

/// One TR's weights on the words, resolved from a [`DownsampleMethod`].
#[derive(Clone, Copy)]
enum Weighting {
    BinMean { spacing: f64 },
    BinSum { spacing: f64 },
    BinLast { spacing: f64 },
    Lanczos { window: usize, cutoff: f64 },
    Sinc { window: usize, bandwidth: f64 },
}

impl Weighting {
    /// `(row, weight)` pairs for the TR at time `t`.
    fn weights(self, words: &SortedWords, t: f64) -> Vec<(usize, f64)> {
        match self {
            Weighting::BinMean { spacing } => {
                let range = words.half_open(t - spacing / 2.0, t + spacing / 2.0);
                let weight = 1.0 / range.len().max(1) as f64;
                range.map(|k| (words.rows[k], weight)).collect()
            }
            Weighting::BinSum { spacing } => {
                words.half_open(t - spacing / 2.0, t + spacing / 2.0).map(|k| (words.rows[k], 1.0)).collect()
            }
            Weighting::BinLast { spacing } => {
                let range = words.half_open(t - spacing / 2.0, t + spacing / 2.0);
                let Some(&last_time) = range.clone().last().map(|k| &words.times[k]) else {
                    return Vec::new();
                };
                let row = range
                    .filter(|&k| words.times[k] == last_time)
                    .map(|k| words.rows[k])
                    .max()
                    .expect("a non-empty bin has a last word");
                vec![(row, 1.0)]
            }
            Weighting::Lanczos { window, cutoff } => lanczos_weights(words, t, window, cutoff),
            Weighting::Sinc { window, bandwidth } => sinc_weights(words, t, window, bandwidth),
        }
    }
}

fn lanczos_weights(words: &SortedWords, t: f64, window: usize, cutoff: f64) -> Vec<(usize, f64)> {
    // A slightly wider search than the support; the kernel itself decides
    // at the edge with the same arithmetic as Huth's code.
    let radius = window as f64 / cutoff * (1.0 + 1e-9);
    words
        .closed(t - radius, t + radius)
        .filter_map(|k| {
            let weight = lanczos_kernel((t - words.times[k]) * cutoff, window);
            (weight != 0.0).then_some((words.rows[k], weight))
        })
        .collect()
}

fn sinc_weights(words: &SortedWords, t: f64, window: usize, bandwidth: f64) -> Vec<(usize, f64)> {
    let support = window as f64 / (2.0 * bandwidth);
    let radius = support * (1.0 + 1e-9);
    let mut weights: Vec<(usize, f64)> = words
        .closed(t - radius, t + radius)
        .filter_map(|k| {
            let dt = t - words.times[k];
            if dt.abs() > support {
                return None;
            }
            // Huth's sincfun adds 1e-20 to the denominator, which makes the
            // weight 0 (not 2B) for a word exactly at the TR time; the limit
            // 2B is used here.
            let weight = if dt == 0.0 {
                2.0 * bandwidth
            } else {
                let x = 2.0 * PI * bandwidth * dt;
                2.0 * bandwidth * x.sin() / x
            };
            Some((words.rows[k], weight))
        })
        .collect();
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total != 0.0 {
        for (_, w) in &mut weights {
            *w /= total;
        }
    }
    weights
}

fn baseline_block(n: usize, n_features: usize, length_scale: f64) -> Matrix {
    let mut block = Matrix::zeros(n, n_features);
    if n == 0 || n_features == 0 {
        return block;
    }
    let kernel = Mat::<f64>::from_fn(n, n, |i, j| (-(i.abs_diff(j) as f64) / length_scale).exp());
    let eigen =
        kernel.self_adjoint_eigen(Side::Lower).expect("eigendecomposition of a symmetric positive definite matrix");
    let vectors = eigen.U();
    let values = eigen.S().column_vector();
    for c in 0..n_features.min(n) {
        // faer sorts eigenvalues ascending; LITcoder's SVD descending.
        let k = n - 1 - c;
        let scale = values[k].max(0.0).sqrt();
        let largest = (0..n).map(|i| vectors[(i, k)].abs()).fold(0.0, f64::max);
        let pivot = (0..n).find(|&i| vectors[(i, k)].abs() > 1e-6 * largest).unwrap_or(0);
        let sign = if vectors[(pivot, k)] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            block.set(i, c, (sign * scale * vectors[(i, k)]) as f32);
        }
    }
    block
}

fn check_finite(what: &'static str, times: &[f64]) -> Result<(), SignalError> {
    match times.iter().position(|t| !t.is_finite()) {
        Some(index) => Err(SignalError::NonFiniteTime { what, index, value: times[index] }),
        None => Ok(()),
    }
}

/// `mean(diff(tr_times))`, checked against `tr_seconds`.
fn grid_spacing(tr_times: &[f64], tr_seconds: f64) -> Result<f64, SignalError> {
    if !(tr_seconds.is_finite() && tr_seconds > 0.0) {
        return Err(SignalError::BadTrSeconds(tr_seconds));
    }
    for (index, pair) in tr_times.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            return Err(SignalError::TrTimesNotIncreasing { index: index + 1, previous: pair[0], value: pair[1] });
        }
    }
    if tr_times.len() < 2 {
        return Ok(tr_seconds);
    }
    let mean_spacing = tr_times.windows(2).map(|p| p[1] - p[0]).sum::<f64>() / (tr_times.len() - 1) as f64;
    if (mean_spacing - tr_seconds).abs() > 0.01 * tr_seconds {
        return Err(SignalError::TrSpacingMismatch { mean_spacing, tr_seconds });
    }
    Ok(mean_spacing)
}

fn check_kernel(method: &'static str, window: usize, cutoff_mult: f64) -> Result<(), SignalError> {
    if window == 0 || !(cutoff_mult.is_finite() && cutoff_mult > 0.0) {
        return Err(SignalError::BadKernel { method, window, cutoff_mult });
    }
    Ok(())
}

fn check_story_lengths(story_lengths: &[usize], rows: usize) -> Result<(), SignalError> {
    let total: usize = story_lengths.iter().sum();
    if total != rows {
        return Err(SignalError::StoryLengthMismatch { total, rows });
    }
    Ok(())
}

fn add_vectors(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    for (x, y) in a.iter_mut().zip(&b) {
        *x += y;
    }
    a
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::testing::{fresh_rng as rng, random_matrix};

    /// A story: TR midpoints on a regular grid and sorted word times that
    /// start before the first TR and end after the last.
    fn random_story(rng: &mut ChaCha8Rng, n_trs: usize, n_words: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let tr_seconds = rng.random_range(0.8..2.5);
        let onset = rng.random_range(-12.0..3.0);
        let tr_times: Vec<f64> = (0..n_trs).map(|i| onset + tr_seconds * (i as f64 + 0.5)).collect();
        let span = (onset - 4.0)..(onset + tr_seconds * n_trs as f64 + 4.0);
        let mut word_times: Vec<f64> = (0..n_words).map(|_| rng.random_range(span.clone())).collect();
        word_times.sort_by(f64::total_cmp);
        (tr_times, word_times, tr_seconds)
    }

    fn max_abs_difference(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max)
    }

    /// `dense[i][j] * values[j]` summed over every word, in f64.
    fn dense_product(weights: &[Vec<f64>], values: &Matrix) -> Vec<f64> {
        let mut out = vec![0.0; weights.len() * values.cols];
        for (i, row) in weights.iter().enumerate() {
            for (j, &w) in row.iter().enumerate() {
                for c in 0..values.cols {
                    out[i * values.cols + c] += w * values.get(j, c) as f64;
                }
            }
        }
        out
    }

    #[test]
    fn lanczos_kernel_matches_the_closed_form() {
        let mut rng = rng("lanczos_kernel_matches_the_closed_form");
        for _ in 0..2000 {
            let window = rng.random_range(1..=5usize);
            let w = window as f64;
            let t: f64 = rng.random_range(-w..w);
            // sinc(t) sinc(t / w) with sinc(x) = sin(pi x) / (pi x).
            let sinc = |x: f64| (PI * x).sin() / (PI * x);
            let expected = sinc(t) * sinc(t / w);
            let got = lanczos_kernel(t, window);
            assert!((got - expected).abs() < 1e-12, "L({t}, {window}) = {got}, expected {expected}");
            let outside = t.signum() * (w + 1e-9 + t.abs());
            assert_eq!(lanczos_kernel(outside, window), 0.0);
        }
        for window in 1..=5 {
            assert_eq!(lanczos_kernel(0.0, window), 1.0);
            for k in 1..=window {
                assert!(lanczos_kernel(k as f64, window).abs() < 1e-15);
                assert!(lanczos_kernel(-(k as f64), window).abs() < 1e-15);
            }
            assert_eq!(lanczos_kernel(window as f64 + 1e-9, window), 0.0);
        }
    }

    #[test]
    fn lanczos_downsample_equals_the_dense_float64_product() {
        let mut rng = rng("lanczos_downsample_equals_the_dense_float64_product");
        for _ in 0..5 {
            let (tr_times, word_times, tr_seconds) = random_story(&mut rng, 60, 250);
            let values = random_matrix(&mut rng, word_times.len(), 9);
            let window = rng.random_range(1..=4usize);
            let cutoff_mult = rng.random_range(0.5..1.5);
            let method = DownsampleMethod::Lanczos { window, cutoff_mult };
            let got = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
            let spacing = (tr_times[tr_times.len() - 1] - tr_times[0]) / (tr_times.len() - 1) as f64;
            let cutoff = cutoff_mult / spacing;
            let weights: Vec<Vec<f64>> = tr_times
                .iter()
                .map(|t| word_times.iter().map(|w| lanczos_kernel((t - w) * cutoff, window)).collect())
                .collect();
            let expected = dense_product(&weights, &values);
            // f32 output of sums of about 10 terms of size <= 4.
            let error = max_abs_difference(&got.data, &expected);
            assert!(error < 1e-5, "max |lanczos - dense| = {error}");
        }
    }

    #[test]
    fn sinc_downsample_equals_the_dense_float64_product() {
        let mut rng = rng("sinc_downsample_equals_the_dense_float64_product");
        for _ in 0..5 {
            let (tr_times, word_times, tr_seconds) = random_story(&mut rng, 50, 200);
            let values = random_matrix(&mut rng, word_times.len(), 5);
            let window = rng.random_range(1..=3usize);
            let cutoff_mult = rng.random_range(0.5..1.5);
            let method = DownsampleMethod::Sinc { window, cutoff_mult };
            let got = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
            let spacing = (tr_times[tr_times.len() - 1] - tr_times[0]) / (tr_times.len() - 1) as f64;
            let b = cutoff_mult / spacing;
            let weights: Vec<Vec<f64>> = tr_times
                .iter()
                .map(|t| {
                    let raw: Vec<f64> = word_times
                        .iter()
                        .map(|w| {
                            let dt = t - w;
                            let x = 2.0 * PI * b * dt;
                            if dt.abs() > window as f64 / (2.0 * b) {
                                0.0
                            } else {
                                2.0 * b * x.sin() / x
                            }
                        })
                        .collect();
                    let total: f64 = raw.iter().sum();
                    raw.iter().map(|w| if total != 0.0 { w / total } else { *w }).collect()
                })
                .collect();
            let expected = dense_product(&weights, &values);
            // The normalised sinc weights can be large where the raw ones
            // nearly cancel, so each entry is held to f32 accuracy of its
            // own sum of |weight x value|.
            let magnitudes: Vec<Vec<f64>> = weights.iter().map(|row| row.iter().map(|w| w.abs()).collect()).collect();
            let abs_values = Matrix::from_vec(values.rows, values.cols, values.data.iter().map(|v| v.abs()).collect());
            let bounds = dense_product(&magnitudes, &abs_values);
            for ((&g, &e), &bound) in got.data.iter().zip(&expected).zip(&bounds) {
                let error = (g as f64 - e).abs();
                assert!(error <= 1e-5 * (1.0 + bound), "|sinc - dense| = {error:e} with sum |w v| = {bound:e}");
            }
        }
    }

    #[test]
    fn binning_methods_on_a_hand_made_story() {
        // TRs at 1, 3, 5 (TR 2 s): bins [0, 2), [2, 4), [4, 6).
        let tr_times = [1.0, 3.0, 5.0];
        let word_times = [-0.5, 0.1, 0.5, 1.9, 2.0, 4.5, 6.0, 7.0];
        let values = Matrix::from_vec(8, 2, (1..=16).map(|v| v as f32).collect());
        let run = |method| downsample(&values, &word_times, &tr_times, 2.0, &method).unwrap();
        // Bin 0 holds rows 1..=3, bin 1 row 4, bin 2 row 5; rows 0, 6, 7 are outside.
        let sum = run(DownsampleMethod::Sum);
        assert_eq!(sum.data, vec![3. + 5. + 7., 4. + 6. + 8., 9., 10., 11., 12.]);
        let average = run(DownsampleMethod::Average);
        assert_eq!(average.data, vec![5., 6., 9., 10., 11., 12.]);
        assert_eq!(run(DownsampleMethod::Rect), average);
        let last = run(DownsampleMethod::Last);
        assert_eq!(last.data, vec![7., 8., 9., 10., 11., 12.]);
        // A TR without words is zero.
        let empty = downsample(&values, &word_times, &[9.0, 11.0], 2.0, &DownsampleMethod::Average);
        assert_eq!(empty.unwrap().data, vec![0.0; 4]);
    }

    #[test]
    fn word_order_does_not_matter() {
        let mut rng = rng("word_order_does_not_matter");
        let (tr_times, word_times, tr_seconds) = random_story(&mut rng, 40, 150);
        let values = random_matrix(&mut rng, word_times.len(), 4);
        let mut order: Vec<usize> = (0..word_times.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let shuffled_times: Vec<f64> = order.iter().map(|&i| word_times[i]).collect();
        let shuffled_values = values.select_rows(&order);
        for method in [
            DownsampleMethod::Rect,
            DownsampleMethod::Average,
            DownsampleMethod::Sum,
            DownsampleMethod::Last,
            DownsampleMethod::LANCZOS3,
            DownsampleMethod::Sinc { window: 2, cutoff_mult: 1.0 },
        ] {
            let a = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
            let b = downsample(&shuffled_values, &shuffled_times, &tr_times, tr_seconds, &method).unwrap();
            let error = max_abs_difference(&a.data, &b.data.iter().map(|&x| x as f64).collect::<Vec<_>>());
            assert!(error < 1e-5, "{method:?}: {error}");
        }
    }

    #[test]
    fn downsample_rejects_bad_input() {
        let values = Matrix::zeros(3, 2);
        let words = [0.5, 1.0, 1.5];
        let lanczos = DownsampleMethod::LANCZOS3;
        let err = downsample(&values, &words[..2], &[1.0, 3.0], 2.0, &lanczos).unwrap_err();
        assert_eq!(err, SignalError::WordCountMismatch { rows: 3, times: 2 });
        let err = downsample(&values, &words, &[1.0, 3.0, 3.0], 2.0, &lanczos).unwrap_err();
        assert!(matches!(err, SignalError::TrTimesNotIncreasing { index: 2, .. }));
        let err = downsample(&values, &words, &[1.0, 2.0, 3.0], 2.0, &lanczos).unwrap_err();
        assert!(matches!(err, SignalError::TrSpacingMismatch { .. }));
        let err = downsample(&values, &[0.5, f64::NAN, 1.0], &[1.0, 3.0], 2.0, &lanczos);
        assert!(matches!(err.unwrap_err(), SignalError::NonFiniteTime { index: 1, .. }));
        let zero_window = DownsampleMethod::Lanczos { window: 0, cutoff_mult: 1.0 };
        let err = downsample(&values, &words, &[1.0, 3.0], 2.0, &zero_window).unwrap_err();
        assert!(matches!(err, SignalError::BadKernel { .. }));
        let err = downsample(&values, &words, &[1.0, 3.0], 0.0, &lanczos).unwrap_err();
        assert_eq!(err, SignalError::BadTrSeconds(0.0));
    }

    #[test]
    fn lag_shifts_within_each_story() {
        let mut rng = rng("lag_shifts_within_each_story");
        let story_lengths: Vec<usize> = (0..4).map(|_| rng.random_range(1..40)).collect();
        let rows: usize = story_lengths.iter().sum();
        let features = random_matrix(&mut rng, rows, 6);
        let delays = [0, 1, 2, 4, 7];
        let lagged = lag(&features, &story_lengths, &delays).unwrap();
        assert_eq!((lagged.rows, lagged.cols), (rows, 6 * delays.len()));
        let mut story_start = 0;
        for &length in &story_lengths {
            for position in 0..length {
                let row = story_start + position;
                for (k, &delay) in delays.iter().enumerate() {
                    let block = &lagged.row(row)[k * 6..(k + 1) * 6];
                    if position >= delay {
                        assert_eq!(block, features.row(row - delay), "row {row} delay {delay}");
                    } else {
                        assert!(block.iter().all(|&x| x == 0.0), "row {row} delay {delay}");
                    }
                }
            }
            story_start += length;
        }
        let err = lag(&features, &story_lengths[1..], &delays).unwrap_err();
        assert!(matches!(err, SignalError::StoryLengthMismatch { .. }));
        assert_eq!(lag(&features, &story_lengths, &[]).unwrap_err(), SignalError::NoDelays);
    }

    #[test]
    fn zscore_gives_zero_mean_unit_std_and_zeroes_constant_columns() {
        let mut rng = rng("zscore_gives_zero_mean_unit_std_and_zeroes_constant_columns");
        let (rows, cols) = (rng.random_range(50..300), 7);
        let mut m = random_matrix(&mut rng, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                let scaled = m.get(r, c) * (c as f32 + 0.5) * 10.0 + 100.0 * c as f32;
                m.set(r, c, scaled);
            }
            m.set(r, 2, 0.1);
            m.set(r, 5, -3.0e4);
        }
        let fitted = ZScore::fit(&m);
        assert_eq!(fitted.constant_columns(), vec![2, 5]);
        fitted.apply(&mut m);
        let refit = ZScore::fit(&m);
        for c in 0..cols {
            if c == 2 || c == 5 {
                assert!((0..rows).all(|r| m.get(r, c) == 0.0));
                continue;
            }
            assert!(refit.mean[c].abs() < 1e-6, "column {c} mean {}", refit.mean[c]);
            assert!((refit.std[c] - 1.0).abs() < 1e-5, "column {c} std {}", refit.std[c]);
        }
    }

    #[test]
    fn trim_presets_and_errors() {
        let ranges = trim(&[300, 20, 16], Trim::LEBEL_2023.start, Trim::LEBEL_2023.end).unwrap();
        assert_eq!(ranges, vec![(10, 295), (310, 315), (330, 331)]);
        assert_eq!(trimmed_rows(&ranges[1..]), vec![310, 311, 312, 313, 314, 330]);
        assert_eq!(trim(&[3, 4], Trim::NONE.start, Trim::NONE.end).unwrap(), vec![(0, 3), (3, 7)]);
        let err = trim(&[300, 15, 40], 10, 5).unwrap_err();
        assert_eq!(err, SignalError::StoryTooShort { story: 1, length: 15, start: 10, end: 5 });
        assert!(trim(&[0], 0, 0).is_err());
    }

    #[test]
    fn temporal_baseline_reconstructs_the_exponential_kernel() {
        let mut rng = rng("temporal_baseline_reconstructs_the_exponential_kernel");
        let n = rng.random_range(20..60);
        let length_scale = rng.random_range(1.0..20.0);
        let lengths = [n, 7, n];
        // More features than rows: F F^T is the kernel itself.
        let features = temporal_baseline(&lengths, n + 3, length_scale, 0).unwrap();
        assert_eq!((features.rows, features.cols), (2 * n + 7, n + 3));
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..n + 3).map(|c| features.get(i, c) as f64 * features.get(j, c) as f64).sum();
                let expected = (-(i.abs_diff(j) as f64) / length_scale).exp();
                assert!((dot - expected).abs() < 1e-5, "({i}, {j}): {dot} vs {expected}");
            }
        }
        // The 7-row story fills 7 columns; equal lengths give equal blocks.
        assert!((n..n + 7).all(|r| features.row(r)[7..].iter().all(|&x| x == 0.0)));
        assert_eq!(features.row(0), features.row(n + 7));
        // Fewer features: orthogonal columns with descending norms (the
        // eigenvalues), each positive at its first entry.
        let k = 5;
        let truncated = temporal_baseline(&[n], k, length_scale, 0).unwrap();
        let gram = |a: usize, b: usize| -> f64 {
            (0..n).map(|i| truncated.get(i, a) as f64 * truncated.get(i, b) as f64).sum()
        };
        for a in 0..k {
            assert!(truncated.get(0, a) > 0.0);
            for b in 0..a {
                assert!(gram(a, b).abs() < 1e-4 * gram(0, 0), "columns {a}, {b} not orthogonal");
            }
            if a > 0 {
                assert!(gram(a, a) <= gram(a - 1, a - 1) * (1.0 + 1e-5));
            }
        }
        assert_eq!(temporal_baseline(&[4], 2, 0.0, 0).unwrap_err(), SignalError::BadLengthScale(0.0));
    }
}
