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
mod tests;
