//! `numeric::signal` and `numeric::stats` against independent references run
//! in the project's Python environment: Huth's `lanczosinterp2D` and
//! `sincinterp2D` and LITcoder's downsamplers, FIR expander and temporal
//! baseline (their definitions copied into the scripts below), numpy,
//! `scipy.stats` and scikit-learn.
//!
//! Every run draws fresh random inputs from a clock seed that is printed
//! (`VOXFLOW_TEST_SEED=<seed>` replays it). Matrices cross as float32 `.npy`
//! (written by voxflow's own writer) and exact float64 vectors as raw
//! little-endian files; results come back as raw float64.
//!
//! Python is `common::python()`: `$VOXFLOW_PYTHON`, else the environment
//! `scripts/setup-python.sh` makes; a missing interpreter fails the test.

mod common;

use std::path::PathBuf;
use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use voxflow::formats::npy::write_npy;
use voxflow::numeric::signal::{downsample, lag, temporal_baseline, DownsampleMethod, ZScore};
use voxflow::numeric::stats::{
    benjamini_hochberg, noise_ceiling, pearson_columns, pearson_p_value, percentile, r2_columns,
};
use voxflow::numeric::Matrix;

/// Helpers every script starts with: `load` a float32 `.npy` as float64,
/// `vec` a raw float64 vector, `save` a float64 result.
const PRELUDE: &str = r#"
import os, sys
import numpy as np
d = sys.argv[1]
def load(name): return np.load(os.path.join(d, name + ".npy")).astype(np.float64)
def vec(name): return np.fromfile(os.path.join(d, name + ".f64"), dtype="<f8")
def save(name, a): np.ascontiguousarray(a, dtype="<f8").tofile(os.path.join(d, name + ".out"))
"#;

/// Huth lab `ridge_utils/interpdata.py` (as vendored in LITcoder's
/// `encoding/downsample/interpdata.py`), minus logging.
const HUTH_INTERPDATA: &str = r#"
def sincfun(B, t, window=np.inf, causal=False, renorm=True):
    val = 2*B*np.sin(2*np.pi*B*t)/(2*np.pi*B*t+1e-20)
    if t.shape:
        val[np.abs(t)>window/(2*B)] = 0
        if causal:
            val[t<0] = 0
        if not np.sum(val)==0.0 and renorm:
            val = val/np.sum(val)
    elif np.abs(t)>window/(2*B):
        val = 0
        if causal and t<0:
            val = 0
    return val

def lanczosfun(cutoff, t, window=3):
    t = t * cutoff
    val = window * np.sin(np.pi*t) * np.sin(np.pi*t/window) / (np.pi**2 * t**2)
    val[t==0] = 1.0
    val[np.abs(t)>window] = 0.0
    return val

def sincinterp2D(data, oldtime, newtime, cutoff_mult=1.0, window=1, causal=False, renorm=True):
    cutoff = 1/np.mean(np.diff(newtime)) * cutoff_mult
    sincmat = np.zeros((len(newtime), len(oldtime)))
    for ndi in range(len(newtime)):
        sincmat[ndi,:] = sincfun(cutoff, newtime[ndi]-oldtime, window, causal, renorm)
    return np.dot(sincmat, data)

def lanczosinterp2D(data, oldtime, newtime, window=3, cutoff_mult=1.0, rectify=False):
    cutoff = 1/np.mean(np.diff(newtime)) * cutoff_mult
    sincmat = np.zeros((len(newtime), len(oldtime)))
    for ndi in range(len(newtime)):
        sincmat[ndi,:] = lanczosfun(cutoff, newtime[ndi]-oldtime, window)
    if rectify:
        return np.hstack([np.dot(sincmat, np.clip(data, -np.inf, 0)),
                          np.dot(sincmat, np.clip(data, 0, np.inf))])
    return np.dot(sincmat, data)
"#;

/// LITcoder `encoding/downsample/downsampling.py`: `RectangularDownsampler`
/// verbatim; `Average`/`Sum`/`LastPointDownsampler` take one TR label per
/// word, given here from the centred bins (words outside every bin get -1)
/// and with the number of TRs passed in rather than `max(labels) + 1`.
const LITCODER_DOWNSAMPLERS: &str = r#"
def rect(data, data_times, tr_times):
    output = np.zeros((len(tr_times), data.shape[1]))
    tr = np.mean(np.diff(tr_times))
    for i, t in enumerate(tr_times):
        mask = (data_times >= t - tr / 2) & (data_times < t + tr / 2)
        if np.any(mask):
            output[i] = np.mean(data[mask], axis=0)
    return output

def labels_of(data_times, tr_times):
    tr = np.mean(np.diff(tr_times))
    labels = np.full(len(data_times), -1)
    for i, t in enumerate(tr_times):
        labels[(data_times >= t - tr / 2) & (data_times < t + tr / 2)] = i
    return labels

def by_label(data, split_indices, n_trs, reduce):
    out = np.zeros((n_trs, data.shape[1]))
    for tr_idx in range(n_trs):
        word_indices = [i for i, s in enumerate(split_indices) if s == tr_idx]
        if word_indices:
            out[tr_idx] = reduce(data, word_indices)
    return out

def average(data, labels, n): return by_label(data, labels, n, lambda d, w: np.mean(d[w], axis=0))
def total(data, labels, n): return by_label(data, labels, n, lambda d, w: np.sum(d[w], axis=0))
def last(data, labels, n): return by_label(data, labels, n, lambda d, w: d[max(w)])
"#;

#[test]
fn downsampling_matches_huth_and_litcoder() {
    let mut rng = seeded("downsampling_matches_huth_and_litcoder");
    let configurations = [(3, 1.0, 1), (rng.random_range(1..=4), rng.random_range(0.5..1.5), 2)];
    for (window, cutoff_mult, sinc_window) in configurations {
        let n_trs = rng.random_range(30..150);
        let tr_seconds = rng.random_range(0.7..2.5);
        let trigger = rng.random_range(-12.0..2.0);
        let tr_times: Vec<f64> = (0..n_trs).map(|i| trigger + tr_seconds * (i as f64 + 0.5)).collect();
        let n_words = rng.random_range(2 * n_trs..6 * n_trs);
        let span = (trigger - 5.0)..(trigger + tr_seconds * n_trs as f64 + 5.0);
        let mut word_times: Vec<f64> = (0..n_words).map(|_| rng.random_range(span.clone())).collect();
        word_times.sort_by(f64::total_cmp);
        let width = rng.random_range(1..12);
        let values = random_matrix(&mut rng, n_words, width);

        let methods = [
            ("lanczos", DownsampleMethod::Lanczos { window, cutoff_mult }),
            ("sinc", DownsampleMethod::Sinc { window: sinc_window, cutoff_mult }),
            ("rect", DownsampleMethod::Rect),
            ("average", DownsampleMethod::Average),
            ("sum", DownsampleMethod::Sum),
            ("last", DownsampleMethod::Last),
        ];
        let work = Workspace::new("downsample");
        work.matrix("values", &values);
        work.f64s("word_times", &word_times);
        work.f64s("tr_times", &tr_times);
        work.python(&format!(
            "{HUTH_INTERPDATA}{LITCODER_DOWNSAMPLERS}
data, w, t = load('values'), vec('word_times'), vec('tr_times')
labels = labels_of(w, t)
save('lanczos', lanczosinterp2D(data, w, t, window={window}, cutoff_mult={cutoff_mult:?}))
save('sinc', sincinterp2D(data, w, t, window={sinc_window}, cutoff_mult={cutoff_mult:?}))
save('rect', rect(data, w, t))
save('average', average(data, labels, len(t)))
save('sum', total(data, labels, len(t)))
save('last', last(data, labels, len(t)))
"
        ));
        for (name, method) in methods {
            let ours = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
            assert_eq!((ours.rows, ours.cols), (n_trs, values.cols));
            // One f32 rounding of each output (2^-24 relative) against float64
            // sums of a few dozen terms; 1e-5 of the output's scale leaves a
            // wide margin and still catches any wrong weight.
            assert_close_f32(name, &ours.data, &work.read(name), 1e-5);
        }
    }
}

#[test]
fn lag_matches_litcoder_fir_per_story_and_zscore_matches_scipy() {
    let mut rng = seeded("lag_matches_litcoder_fir_per_story_and_zscore_matches_scipy");
    let story_lengths: Vec<usize> = (0..4).map(|_| rng.random_range(2..60)).collect();
    let rows: usize = story_lengths.iter().sum();
    let cols = rng.random_range(1..9);
    let features = random_matrix(&mut rng, rows, cols);
    let delays = [0usize, 1, 2, 3, 4];
    let lagged = lag(&features, &story_lengths, &delays).unwrap();

    let (train_rows, test_rows) = (rng.random_range(20..200), rng.random_range(5..50));
    let mut train = random_matrix(&mut rng, train_rows, 6);
    let mut test = random_matrix(&mut rng, test_rows, 6);
    for (m, scale) in [(&mut train, 1.0f32), (&mut test, 1.3)] {
        for r in 0..m.rows {
            for c in 0..m.cols {
                let value = m.get(r, c) * scale * (c as f32 + 1.0) + 10.0 * c as f32;
                m.set(r, c, value);
            }
            // Constant columns whose float64 sums are exact, so numpy's std is 0.
            m.set(r, 1, 2.5);
            m.set(r, 4, 0.0);
        }
    }
    let fitted = ZScore::fit(&train);
    let mut train_z = train.clone();
    let mut test_z = test.clone();
    fitted.apply(&mut train_z);
    fitted.apply(&mut test_z);

    let work = Workspace::new("lag-zscore");
    work.matrix("features", &features);
    work.f64s("lengths", &story_lengths.iter().map(|&n| n as f64).collect::<Vec<_>>());
    work.matrix("train", &train);
    work.matrix("test", &test);
    work.python(&format!(
        "
import scipy.stats
def make_delayed(stim, delays, circpad=False):  # LITcoder FIR.make_delayed
    nt, ndim = stim.shape
    dstims = []
    for d in delays:
        dstim = np.zeros((nt, ndim))
        if d < 0:
            dstim[:d, :] = stim[-d:, :]
            if circpad:
                dstim[d:, :] = stim[:-d, :]
        elif d > 0:
            dstim[d:, :] = stim[:-d, :]
            if circpad:
                dstim[:d, :] = stim[-d:, :]
        else:
            dstim = stim.copy()
        dstims.append(dstim)
    return np.hstack(dstims)
x = load('features')
bounds = np.cumsum(vec('lengths')).astype(int)[:-1]
save('lagged', np.vstack([make_delayed(s, {delays:?}) for s in np.split(x, bounds)]))
train, test = load('train'), load('test')
with np.errstate(invalid='ignore', divide='ignore'):
    save('train_z', np.nan_to_num(scipy.stats.zscore(train, axis=0)))
    mean, std = train.mean(axis=0), train.std(axis=0)
    save('test_z', np.nan_to_num((test - mean) / std, posinf=0.0, neginf=0.0))
save('mean', mean)
save('std', std)
"
    ));
    // Lagging only copies float32 values: exact.
    assert_close_f32("lag", &lagged.data, &work.read("lagged"), 0.0);
    assert_close_f64("zscore mean", &fitted.mean, &work.read("mean"), 1e-12);
    assert_close_f64("zscore std", &fitted.std, &work.read("std"), 1e-12);
    assert_eq!(fitted.constant_columns(), vec![1, 4]);
    assert_close_f32("zscore train", &train_z.data, &work.read("train_z"), 1e-5);
    assert_close_f32("zscore test", &test_z.data, &work.read("test_z"), 1e-5);
}

#[test]
fn temporal_baseline_matches_litcoder() {
    let mut rng = seeded("temporal_baseline_matches_litcoder");
    let n_features = rng.random_range(4..20);
    let long = rng.random_range(30..120);
    let short = rng.random_range(2..n_features);
    let lengths = [long, short, long];
    let length_scale = rng.random_range(2.0..40.0);
    let ours = temporal_baseline(&lengths, n_features, length_scale, 7).unwrap();

    let work = Workspace::new("temporal-baseline");
    work.python(&format!(
        "
def _create_temporal_baseline(n_stimuli, d_model=128, correlation_length=75):  # LITcoder
    autocorr_matrix = np.zeros((n_stimuli, n_stimuli))
    for i in range(n_stimuli):
        for j in range(n_stimuli):
            distance = abs(i - j)
            autocorr_matrix[i, j] = np.exp(-distance / correlation_length)
    U, s, Vt = np.linalg.svd(autocorr_matrix)
    features = U[:, :d_model] * np.sqrt(s[:d_model])
    return features

def canonical(f, width):
    # Pad to a common width and fix each column's sign as voxflow documents:
    # positive at the first entry above 1e-6 of the column's largest.
    out = np.zeros((f.shape[0], width))
    out[:, :f.shape[1]] = f
    for c in range(f.shape[1]):
        col = out[:, c]
        pivot = np.argmax(np.abs(col) > 1e-6 * np.abs(col).max())
        if col[pivot] < 0:
            out[:, c] = -col
    return out

blocks = [canonical(_create_temporal_baseline(n, {n_features}, {length_scale:?}), {n_features})
          for n in {lengths:?}]
save('features', np.vstack(blocks))
"
    ));
    // Eigenvectors of the well-conditioned kernel agree to ~1e-13 in float64;
    // the output is float32 of entries below sqrt(2 * length_scale + 1).
    assert_close_f32("temporal baseline", &ours.data, &work.read("features"), 1e-5);
}

#[test]
fn correlation_statistics_match_scipy_and_sklearn() {
    let mut rng = seeded("correlation_statistics_match_scipy_and_sklearn");
    let n = rng.random_range(10..400);
    let units = 60;
    let prediction = random_matrix(&mut rng, n, units);
    let noise = random_matrix(&mut rng, n, units);
    // Correlations spread from 0 to about 0.95, so p runs from ~1 to tiny.
    let actual = Matrix::from_vec(
        n,
        units,
        (0..n * units)
            .map(|i| {
                let strength = (i % units) as f32 / units as f32 * 3.0;
                strength * prediction.data[i] + noise.data[i]
            })
            .collect(),
    );
    let r = pearson_columns(&prediction, &actual);
    let p: Vec<f64> = r.iter().map(|&r| pearson_p_value(r, n)).collect();
    let r2 = r2_columns(&prediction, &actual);

    let work = Workspace::new("correlation");
    work.matrix("prediction", &prediction);
    work.matrix("actual", &actual);
    work.python(
        "
import scipy.stats, sklearn.metrics
x, y = load('prediction'), load('actual')
results = [scipy.stats.pearsonr(x[:, c], y[:, c]) for c in range(x.shape[1])]
save('r', [res.statistic for res in results])
save('p', [res.pvalue for res in results])
save('r2', sklearn.metrics.r2_score(y, x, multioutput='raw_values'))
",
    );
    // Same float32 inputs, float64 sums in a different order: ~1e-15.
    assert_close_f64("pearson r", &r, &work.read("r"), 1e-12);
    assert_close_f64("r2", &r2, &work.read("r2"), 1e-10);
    // p-values span many decades: compare relatively. Our continued fraction
    // and ln-gamma are good to ~1e-12 relative, and the 1e-16 difference in
    // r moves p by at most n r / (1 - r^2) * 1e-16 relative (~1e-12 here).
    let reference = work.read("p");
    for (unit, (&ours, &theirs)) in p.iter().zip(&reference).enumerate() {
        let error = (ours - theirs).abs();
        assert!(
            error <= 1e-8 * theirs + 1e-300,
            "p-value of unit {unit} (r = {}, n = {n}): {ours:e} vs scipy {theirs:e}",
            r[unit]
        );
    }
}

#[test]
fn fdr_and_percentile_match_scipy_and_numpy() {
    let mut rng = seeded("fdr_and_percentile_match_scipy_and_numpy");
    let m = rng.random_range(1..2000);
    let mut p: Vec<f64> = (0..m).map(|_| rng.random::<f64>().powi(4)).collect();
    // Some ties and some extreme values.
    for i in (0..m).step_by(17) {
        p[i] = p[i / 2];
    }
    p[0] = 1e-250;
    p[m - 1] = 1.0;
    let q = benjamini_hochberg(&p);

    let values: Vec<f64> = (0..rng.random_range(1..300)).map(|_| rng.sample::<f64, _>(StandardNormal) * 5.0).collect();
    let qs = [0.0, 2.5, 25.0, 50.0, 75.0, 97.5, 100.0, rng.random_range(0.0..100.0)];
    let ours: Vec<f64> = qs.iter().map(|&q| percentile(&values, q)).collect();

    let work = Workspace::new("fdr-percentile");
    work.f64s("p", &p);
    work.f64s("values", &values);
    work.python(&format!(
        "
import scipy.stats
save('q', scipy.stats.false_discovery_control(vec('p'), method='bh'))
save('percentiles', np.percentile(vec('values'), {qs:?}))
"
    ));
    // Same products p * (m / i) and the same running minimum: ulps apart.
    assert_close_f64("BH q-values", &q, &work.read("q"), 1e-14);
    assert_close_f64("percentile", &ours, &work.read("percentiles"), 1e-12);
}

#[test]
fn noise_ceiling_matches_the_numpy_formulas() {
    let mut rng = seeded("noise_ceiling_matches_the_numpy_formulas");
    let (n, units, n_repeats) = (rng.random_range(20..300), 40, rng.random_range(2..6));
    let signal = random_matrix(&mut rng, n, units);
    let repeats: Vec<Matrix> = (0..n_repeats)
        .map(|_| {
            let noise = random_matrix(&mut rng, n, units);
            let data = (0..n * units).map(|i| signal.data[i] + noise.data[i] * (i % units) as f32 * 0.2).collect();
            Matrix::from_vec(n, units, data)
        })
        .collect();
    let views: Vec<&Matrix> = repeats.iter().collect();
    let ours = noise_ceiling(&views).unwrap();

    let work = Workspace::new("noise-ceiling");
    for (r, m) in repeats.iter().enumerate() {
        work.matrix(&format!("repeat{r}"), m);
    }
    work.python(&format!(
        "
data = np.stack([load(f'repeat{{r}}') for r in range({n_repeats})])  # repeats x time x units
# Gallant lab voxelwise_tutorials.utils.explainable_variance, no z-scoring.
mean_var = data.var(axis=1, dtype=np.float64, ddof=1).mean(axis=0)
var_mean = data.mean(axis=0).var(axis=0, dtype=np.float64, ddof=1)
ev = var_mean / mean_var
ev = ev - (1 - ev) / ({n_repeats} - 1)
# Schoppe et al. 2016: signal power and CC_max.
R = {n_repeats}
sp = (data.sum(axis=0).var(axis=0) - data.var(axis=1).sum(axis=0)) / (R * (R - 1))
cc_max = np.sqrt(np.clip(sp, 0, None) / data.mean(axis=0).var(axis=0))
save('ev', ev)
save('cc_max', cc_max)
"
    ));
    assert_close_f64("explainable variance", &ours.explainable_variance, &work.read("ev"), 1e-9);
    assert_close_f64("cc_max", &ours.cc_max, &work.read("cc_max"), 1e-9);
}

/// An RNG from the clock (or `VOXFLOW_TEST_SEED`), with the seed printed.
fn seeded(test: &str) -> StdRng {
    println!("{test}");
    StdRng::seed_from_u64(common::fresh_seed())
}

fn random_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> Matrix {
    let data = (0..rows * cols).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Matrix::from_vec(rows, cols, data)
}

/// `max |ours - reference| <= tolerance * max(1, max |reference|)`.
fn assert_close_f32(what: &str, ours: &[f32], reference: &[f64], tolerance: f64) {
    let ours: Vec<f64> = ours.iter().map(|&x| x as f64).collect();
    assert_close_f64(what, &ours, reference, tolerance);
}

fn assert_close_f64(what: &str, ours: &[f64], reference: &[f64], tolerance: f64) {
    assert_eq!(ours.len(), reference.len(), "{what}: {} values, reference has {}", ours.len(), reference.len());
    let scale = reference.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let (index, error) = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f64), |best, (i, e)| if e > best.1 || e.is_nan() { (i, e) } else { best });
    println!("{what}: max abs difference {error:e} (scale {scale:e})");
    assert!(
        error <= tolerance * scale,
        "{what}: value {index} is {} but the reference is {} (difference {error:e}, allowed {:e})",
        ours[index],
        reference[index],
        tolerance * scale
    );
}

/// A scratch directory for one exchange with Python, removed afterwards.
struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    fn new(name: &str) -> Workspace {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos();
        let dir = std::env::temp_dir().join(format!("voxflow-signal-reference-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Workspace { dir }
    }

    fn matrix(&self, name: &str, m: &Matrix) {
        let path = self.dir.join(format!("{name}.npy"));
        write_npy(&path, m).unwrap_or_else(|e| panic!("{e}"));
    }

    fn f64s(&self, name: &str, values: &[f64]) {
        let path = self.dir.join(format!("{name}.f64"));
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn read(&self, name: &str) -> Vec<f64> {
        let path = self.dir.join(format!("{name}.out"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
    }

    fn python(&self, script: &str) {
        let python = common::python();
        let output = Command::new(&python)
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(
            output.status.success(),
            "the Python reference failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
