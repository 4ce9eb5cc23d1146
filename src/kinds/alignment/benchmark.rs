//! The sentence benchmark: `benchmark.generate` (a benchmark with a known
//! answer, for tests and the demo) and `benchmark.sentences` (a model's
//! score on a benchmark).
//!
//! A benchmark table (Parquet; `benchmark.generate` writes one, `load.table`
//! reads a user's CSV or Parquet in the same layout, `benchmark.table`
//! assembles one from a .npy response matrix and a table of ids): one row per sentence
//! and subject, columns `sentence` (integer id), `passage` (integer id; the
//! cross-validation keeps a passage's sentences together), `text` (utf8),
//! optionally `subject` (utf8; without it the table is one subject and the
//! ceilings are NaN), and every other column numeric: the response units
//! (voxels, electrodes or fROIs), shared by the subjects. Each subject has
//! each sentence exactly once; rows may come in any order (sentences are
//! taken in the order they first appear).
//!
//! `benchmark.generate` (worker): input `stimuli` (item, text, label;
//! `stimuli.langloc`), param `model` (a directory, default MiniLM where
//! scripts/setup-python.sh links it); the items with label `label` (default
//! `S`, the sentences) in order, `passage_size` consecutive sentences per
//! passage. Features: the model's hidden state `layer` (default the last),
//! pooled as `pool`, z-scored per feature, reduced to its first
//! `components` principal components (default 10, each scaled to unit
//! variance; none: every feature); signal = those x W, W a seeded Gaussian
//! (components x `units`), each unit's signal scaled to unit variance (so
//! the responses are a random linear map of rank `components` of the
//! model's features); subject s's response = signal + noise, the noise Gaussian with
//! variance 1 / `snr` (seeded per subject). So the mean of N subjects has
//! reliability N snr / (1 + N snr), and a model whose features span the
//! generator's reaches sqrt of that.
//!
//! `benchmark.sentences` (worker): inputs `model` (or the param `model`, a
//! directory on disk), `benchmark`, and `units`
//! (localize.units's `units`: the features are those units, pooled as they
//! were localized); without `units`, every unit of `layers` pooled as
//! `pool`. The score (CPU, [`score`]): the target is the subjects' mean
//! response; outer folds group sentences by passage (passages shuffled with
//! `seed`, dealt round-robin into `folds` folds); in each, features are
//! z-scored and responses centred with the training rows' statistics, and
//! ridge (`numeric::ridge::ridge_cv`, an alpha per unit chosen by
//! leave-one-group-out over the training passages' folds) predicts the
//! held-out sentences. Pearson r per unit is taken over all held-out
//! predictions together; the raw score is the median r over units. Both
//! ceilings of `numeric::ceiling` are computed per unit (split-half with
//! Spearman-Brown, and Brain-Score's subject-pool extrapolation); `ceiling`
//! (default `split_half`) says which one normalises: ceiling = the median
//! of the per-unit ceilings, score = raw / ceiling, and each unit's
//! `normalized` = r / its ceiling.
//!
//! Outputs of `benchmark.sentences`: `scores` (scores.parquet, one row per
//! unit: `unit` utf8, `r`, `ceiling_split_half`, `ceiling_extrapolation`,
//! `normalized`, float64) and `summary` (one row: `raw`, `ceiling`,
//! `score`, float64; `ceiling_method` utf8; `n_sentences`, `n_passages`,
//! `n_subjects`, `n_units`, `n_features` int64).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::localize::{check_layers, default_batch_size, default_device};
use super::{table, SentencePool};
use crate::device::{Device, DeviceRequest};
use crate::numeric::ceiling::{self, ExtrapolationConfig};
use crate::numeric::ridge::{folds_by_group, predict, ridge_cv, CvScore, Fold, RidgeConfig, DEFAULT_TARGET_BATCH};
use crate::numeric::stats::pearson_columns;
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// Where scripts/setup-python.sh links all-MiniLM-L6-v2 (relative to the
/// pipeline file).
pub const DEFAULT_MODEL: &str = "../models/all-MiniLM-L6-v2";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    /// The reference model (a directory); hashed by content.
    #[serde(default = "default_model")]
    pub model: String,
    /// Its hidden state; default the last.
    #[serde(default)]
    pub layer: Option<usize>,
    #[serde(default)]
    pub pool: SentencePool,
    /// The stimulus label kept; none: every item.
    #[serde(default = "default_label")]
    pub label: Option<String>,
    #[serde(default = "default_passage_size")]
    pub passage_size: usize,
    #[serde(default = "default_subjects")]
    pub subjects: usize,
    #[serde(default = "default_units")]
    pub units: usize,
    /// The map reads the first `components` principal components of the
    /// z-scored features (a map of that rank); none: every feature.
    #[serde(default = "default_components")]
    pub components: Option<usize>,
    /// Signal variance over noise variance, per subject.
    #[serde(default = "default_snr")]
    pub snr: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_model() -> String {
    DEFAULT_MODEL.into()
}
fn default_label() -> Option<String> {
    Some("S".into())
}
fn default_passage_size() -> usize {
    4
}
fn default_subjects() -> usize {
    5
}
fn default_units() -> usize {
    20
}
fn default_components() -> Option<usize> {
    Some(10)
}
fn default_snr() -> f64 {
    0.5
}

pub struct BenchmarkGenerate;

impl Kind for BenchmarkGenerate {
    type Params = GenerateParams;
    const NAME: &'static str = "benchmark.generate";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a sentence benchmark with a known answer: a reference model's features through a random linear map plus noise, several subjects (libtorch)";
    const INPUTS: &'static [&'static str] = &["stimuli"];
    const OUTPUTS: &'static [&'static str] = &["benchmark"];

    fn file_params(&self, params: &GenerateParams) -> Vec<(String, String)> {
        vec![("model".into(), params.model.clone())]
    }
    fn missing_file_hint(&self, param: &str) -> Option<&'static str> {
        (param == "model").then_some("scripts/setup-python.sh links all-MiniLM-L6-v2 as models/all-MiniLM-L6-v2")
    }
    fn wants_gpu(&self, params: &GenerateParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &GenerateParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &GenerateParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        let positive = [
            ("passage_size", p.passage_size),
            ("subjects", p.subjects),
            ("units", p.units),
            ("batch_size", p.batch_size),
        ];
        for (name, value) in positive {
            if value == 0 {
                errors.push(ParamError::new(name, format!("`{name}` is 0")).hint("give a positive count"));
            }
        }
        if p.components == Some(0) {
            errors.push(
                ParamError::new("components", "components is 0")
                    .hint("give a positive count, or leave it out for every feature"),
            );
        }
        if !(p.snr.is_finite() && p.snr > 0.0) {
            errors.push(
                ParamError::new("snr", format!("snr is {}", p.snr))
                    .hint("give a positive signal-to-noise ratio, e.g. 0.5"),
            );
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &GenerateParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.benchmark_generate(params, ctx)
    }
}

/// Which noise ceiling normalises the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeilingMethod {
    /// Split-half over subjects, Spearman-Brown corrected.
    #[default]
    SplitHalf,
    /// Brain-Score's subject-pool extrapolation.
    Extrapolation,
}

impl CeilingMethod {
    pub fn name(self) -> &'static str {
        match self {
            CeilingMethod::SplitHalf => "split_half",
            CeilingMethod::Extrapolation => "extrapolation",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentencesParams {
    /// A model directory on disk (hashed by content); or none, with the
    /// model as the input `model`.
    #[serde(default)]
    pub model: Option<String>,
    /// Hidden states used without a `units` input; default the last.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    /// Pooling without a `units` input (with one, the pooling it was localized with).
    #[serde(default)]
    pub pool: SentencePool,
    #[serde(default = "default_folds")]
    pub folds: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_alphas")]
    pub alphas: Vec<f64>,
    #[serde(default)]
    pub ceiling: CeilingMethod,
    /// Random half splits of the split-half ceiling.
    #[serde(default = "default_splits")]
    pub splits: usize,
    /// Bootstraps of the extrapolation ceiling.
    #[serde(default = "default_bootstraps")]
    pub bootstraps: usize,
    /// Subject subsets per pool size in the extrapolation, at most.
    #[serde(default = "default_max_subsets")]
    pub max_subsets: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_folds() -> usize {
    5
}
fn default_alphas() -> Vec<f64> {
    vec![0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
}
fn default_splits() -> usize {
    20
}
fn default_bootstraps() -> usize {
    100
}
fn default_max_subsets() -> usize {
    20
}

pub struct BenchmarkSentences;

impl Kind for BenchmarkSentences {
    type Params = SentencesParams;
    const NAME: &'static str = "benchmark.sentences";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a model's score on a sentence benchmark: CV ridge (folds by passage) from its localized units, median Pearson r over a noise ceiling (libtorch)";
    const INPUTS: &'static [&'static str] = &["benchmark"];
    const OUTPUTS: &'static [&'static str] = &["scores", "summary"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn input_problems(&self, params: &SentencesParams, roles: &[&str]) -> Vec<(String, String)> {
        super::localize::model_problems(Self::NAME, &params.model, roles)
    }
    fn file_params(&self, params: &SentencesParams) -> Vec<(String, String)> {
        params.model.iter().map(|model| ("model".to_string(), model.clone())).collect()
    }
    fn wants_gpu(&self, params: &SentencesParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &SentencesParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &SentencesParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        check_layers(&p.layers, &mut errors);
        if p.folds < 2 {
            errors.push(ParamError::new("folds", format!("folds is {}", p.folds)).hint("use at least 2 (default 5)"));
        }
        if p.alphas.is_empty() || p.alphas.iter().any(|a| !(a.is_finite() && *a > 0.0)) {
            errors.push(
                ParamError::new("alphas", "alphas must be positive and finite, at least one")
                    .hint("e.g. [1, 10, 100, 1000]"),
            );
        }
        if p.splits == 0 || p.bootstraps == 0 || p.max_subsets == 0 || p.batch_size == 0 {
            errors.push(ParamError::new("splits", "splits, bootstraps, max_subsets and batch_size must be positive"));
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &SentencesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.benchmark_sentences(params, ctx)
    }
}

/// A benchmark table read into matrices.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// Sentence ids, in order of first appearance.
    pub sentences: Vec<i64>,
    pub passages: Vec<i64>,
    pub texts: Vec<String>,
    pub subjects: Vec<String>,
    pub unit_names: Vec<String>,
    /// Per subject: sentences x units.
    pub responses: Vec<Matrix>,
}

const ID_COLUMNS: [&str; 4] = ["sentence", "passage", "text", "subject"];

/// Reads a benchmark table; `what` names it in errors (stage and role).
pub fn read_benchmark(batch: &RecordBatch, what: &str) -> Result<Benchmark, StageError> {
    let hint = "a benchmark table has columns sentence, passage (integers), text, optionally subject, and numeric response columns; one row per sentence and subject";
    let fail = |message: String| StageError::failed(format!("{what}: {message}")).with_hint(hint);
    let ints = |name: &str| -> Result<Vec<i64>, StageError> {
        let column = batch.column_by_name(name).ok_or_else(|| fail(format!("no column `{name}`")))?;
        let cast = arrow::compute::cast(column, &DataType::Int64).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        if cast.null_count() > 0 {
            return Err(fail(format!("column `{name}` has missing values")));
        }
        Ok(cast.as_primitive::<Int64Type>().values().to_vec())
    };
    let strings = |name: &str| -> Result<Option<Vec<String>>, StageError> {
        let Some(column) = batch.column_by_name(name) else { return Ok(None) };
        let cast = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        Ok(Some(cast.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect()))
    };
    let sentence = ints("sentence")?;
    let passage = ints("passage")?;
    let text = strings("text")?.ok_or_else(|| fail("no column `text`".into()))?;
    let subject = strings("subject")?.unwrap_or_else(|| vec!["all".into(); batch.num_rows()]);
    let schema = batch.schema();
    let unit_columns: Vec<usize> =
        (0..batch.num_columns()).filter(|&c| !ID_COLUMNS.contains(&schema.field(c).name().as_str())).collect();
    if unit_columns.is_empty() {
        return Err(fail("no response columns".into()));
    }
    let mut unit_values = Vec::new();
    for &c in &unit_columns {
        let name = schema.field(c).name();
        let cast = arrow::compute::cast(batch.column(c), &DataType::Float64).map_err(|e| {
            fail(format!("response column `{name}` ({}) is not numeric: {e}", schema.field(c).data_type()))
        })?;
        if cast.null_count() > 0 {
            return Err(fail(format!("response column `{name}` has missing values")));
        }
        let values = cast.as_primitive::<Float64Type>().values().to_vec();
        if let Some(row) = values.iter().position(|v| !v.is_finite()) {
            return Err(fail(format!("response column `{name}`, row {row}: {} is not finite", values[row])));
        }
        unit_values.push(values);
    }
    let mut sentence_index: HashMap<i64, usize> = HashMap::new();
    let (mut sentences, mut passages, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    let mut subject_index: HashMap<String, usize> = HashMap::new();
    let mut subjects = Vec::new();
    for row in 0..batch.num_rows() {
        match sentence_index.get(&sentence[row]) {
            Some(&i) => {
                if passages[i] != passage[row] {
                    return Err(fail(format!(
                        "row {row}: sentence {} is in passage {}, but an earlier row puts it in passage {}",
                        sentence[row], passage[row], passages[i]
                    )));
                }
            }
            None => {
                sentence_index.insert(sentence[row], sentences.len());
                sentences.push(sentence[row]);
                passages.push(passage[row]);
                texts.push(text[row].clone());
            }
        }
        if !subject_index.contains_key(&subject[row]) {
            subject_index.insert(subject[row].clone(), subjects.len());
            subjects.push(subject[row].clone());
        }
    }
    let (n, m) = (sentences.len(), unit_columns.len());
    let mut responses = vec![Matrix::zeros(n, m); subjects.len()];
    let mut seen = vec![vec![false; n]; subjects.len()];
    for row in 0..batch.num_rows() {
        let (s, i) = (subject_index[&subject[row]], sentence_index[&sentence[row]]);
        if seen[s][i] {
            return Err(fail(format!("row {row}: subject `{}` has sentence {} twice", subject[row], sentence[row])));
        }
        seen[s][i] = true;
        for (u, values) in unit_values.iter().enumerate() {
            responses[s].set(i, u, values[row] as f32);
        }
    }
    for (s, seen) in seen.iter().enumerate() {
        if let Some(i) = seen.iter().position(|x| !x) {
            return Err(fail(format!("subject `{}` has no row for sentence {}", subjects[s], sentences[i])));
        }
    }
    let unit_names = unit_columns.iter().map(|&c| schema.field(c).name().clone()).collect();
    Ok(Benchmark { sentences, passages, texts, subjects, unit_names, responses })
}

/// The generated benchmark table from the reference model's `features`
/// (sentences x features) of the kept stimuli.
pub fn generate(features: &Matrix, items: &[u32], texts: &[String], p: &GenerateParams) -> RecordBatch {
    let (n, d) = (features.rows, features.cols);
    let (z, d) = match p.components {
        Some(c) if c < n.min(d) => (principal_scores(&zscore_columns(features), n, d, c), c),
        _ => (zscore_columns(features), d),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let weights: Vec<f64> = (0..d * p.units).map(|_| StandardNormal.sample(&mut rng)).collect();
    let mut signal = vec![0.0f64; n * p.units];
    for i in 0..n {
        for f in 0..d {
            let x = z[i * d + f];
            for u in 0..p.units {
                signal[i * p.units + u] += x * weights[f * p.units + u];
            }
        }
    }
    for u in 0..p.units {
        let mean = (0..n).map(|i| signal[i * p.units + u]).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| (signal[i * p.units + u] - mean).powi(2)).sum::<f64>() / n as f64;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        for i in 0..n {
            signal[i * p.units + u] = (signal[i * p.units + u] - mean) / sd;
        }
    }
    let noise_sd = (1.0 / p.snr).sqrt();
    let rows = n * p.subjects;
    let (mut sentence, mut passage, mut subject, mut text) =
        (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows));
    let mut units: Vec<Vec<f64>> = vec![Vec::with_capacity(rows); p.units];
    for s in 0..p.subjects {
        let mut noise = ChaCha8Rng::seed_from_u64(p.seed.wrapping_add(1 + s as u64));
        for i in 0..n {
            sentence.push(items[i]);
            passage.push((i / p.passage_size) as u32);
            subject.push(format!("s{s}"));
            text.push(texts[i].clone());
            for (u, column) in units.iter_mut().enumerate() {
                let e: f64 = StandardNormal.sample(&mut noise);
                column.push(signal[i * p.units + u] + noise_sd * e);
            }
        }
    }
    let width = (p.units.max(2) - 1).to_string().len();
    let names: Vec<String> = (0..p.units).map(|u| format!("r{u:0width$}")).collect();
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("sentence", Arc::new(UInt32Array::from(sentence))),
        ("passage", Arc::new(UInt32Array::from(passage))),
        ("subject", Arc::new(StringArray::from(subject))),
        ("text", Arc::new(StringArray::from(text))),
    ];
    for (name, values) in names.iter().zip(units) {
        columns.push((name.as_str(), Arc::new(Float64Array::from(values))));
    }
    table(columns)
}

/// The first `c` principal component scores of `z` (n x d, centred),
/// each scaled to unit variance, row-major n x c: the top eigenvectors of
/// the Gram matrix z z^T (faer), each signed so that its largest entry is
/// positive.
fn principal_scores(z: &[f64], n: usize, d: usize, c: usize) -> Vec<f64> {
    use faer::{Mat, Side};
    let gram = Mat::<f64>::from_fn(n, n, |i, j| (0..d).map(|f| z[i * d + f] * z[j * d + f]).sum());
    let eigen = gram.self_adjoint_eigen(Side::Lower).expect("eigendecomposition of a Gram matrix");
    let vectors = eigen.U();
    let mut out = vec![0.0; n * c];
    for k in 0..c {
        // faer sorts eigenvalues ascending.
        let column = n - 1 - k;
        let values: Vec<f64> = (0..n).map(|i| vectors[(i, column)]).collect();
        let largest = values.iter().copied().fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        let sign = if largest < 0.0 { -1.0 } else { 1.0 };
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        for i in 0..n {
            out[i * c + k] = if sd > 0.0 { sign * (values[i] - mean) / sd } else { 0.0 };
        }
    }
    out
}

/// Columns z-scored (population sd; a constant column becomes 0), row-major f64.
fn zscore_columns(m: &Matrix) -> Vec<f64> {
    let (n, d) = (m.rows, m.cols);
    let mut out: Vec<f64> = m.data.iter().map(|&v| v as f64).collect();
    for f in 0..d {
        let mean = (0..n).map(|i| out[i * d + f]).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| (out[i * d + f] - mean).powi(2)).sum::<f64>() / n as f64;
        let sd = var.sqrt();
        for i in 0..n {
            out[i * d + f] = if sd > 0.0 { (out[i * d + f] - mean) / sd } else { 0.0 };
        }
    }
    out
}

/// A model's score on a benchmark.
#[derive(Debug, Clone)]
pub struct Score {
    pub r: Vec<f64>,
    pub ceiling_split_half: Vec<f64>,
    pub ceiling_extrapolation: Vec<f64>,
    pub method: CeilingMethod,
    pub raw: f64,
    pub ceiling: f64,
    pub score: f64,
    pub n_passages: usize,
}

/// Outer folds: distinct passages shuffled with `seed`, dealt round-robin
/// into `folds` groups; returns each sentence's fold.
pub fn passage_folds(passages: &[i64], folds: usize, seed: u64) -> Vec<usize> {
    let mut distinct: Vec<i64> = passages.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    distinct.shuffle(&mut rng);
    let fold_of: HashMap<i64, usize> = distinct.iter().enumerate().map(|(i, &p)| (p, i % folds)).collect();
    passages.iter().map(|p| fold_of[p]).collect()
}

/// The score of `features` (sentences x features, in the benchmark's
/// sentence order) on `bench` (module docs).
pub fn score(features: &Matrix, bench: &Benchmark, p: &SentencesParams) -> Result<Score, StageError> {
    let n = bench.sentences.len();
    assert_eq!(features.rows, n, "one feature row per sentence");
    let mut distinct = bench.passages.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < p.folds {
        return Err(StageError::failed(format!(
            "benchmark.sentences: {} passages, fewer than `folds` ({})",
            distinct.len(),
            p.folds
        ))
        .with_hint("lower `folds`, or give the benchmark more passages"));
    }
    let subjects: Vec<&Matrix> = bench.responses.iter().collect();
    let target = ceiling::mean_of(&subjects);
    let m = target.cols;
    let fold_of = passage_folds(&bench.passages, p.folds, p.seed);
    let mut prediction = Matrix::zeros(n, m);
    for fold in 0..p.folds {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != fold).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold_of[i] == fold).collect();
        let (x_train, x_test) = standardize(features, &train, &test);
        let y_all = target.select_rows(&train);
        let y_mean: Vec<f64> =
            (0..m).map(|u| train.iter().map(|&i| target.get(i, u) as f64).sum::<f64>() / train.len() as f64).collect();
        let mut y_train = y_all.clone();
        for i in 0..train.len() {
            for u in 0..m {
                y_train.set(i, u, (y_all.get(i, u) as f64 - y_mean[u]) as f32);
            }
        }
        let inner: Vec<usize> = train.iter().map(|&i| fold_of[i]).collect();
        let inner_folds: Vec<Fold> = folds_by_group(&inner);
        let config = RidgeConfig {
            alphas: p.alphas.clone(),
            per_target_alpha: true,
            score: CvScore::L2,
            target_batch: DEFAULT_TARGET_BATCH,
        };
        let fit = ridge_cv(&x_train, &y_train, &inner_folds, &config)
            .map_err(|e| StageError::failed(format!("benchmark.sentences: ridge, outer fold {fold}: {e}")))?;
        let predicted = predict(&x_test, &fit.weights);
        for (k, &i) in test.iter().enumerate() {
            for u in 0..m {
                prediction.set(i, u, (predicted.get(k, u) as f64 + y_mean[u]) as f32);
            }
        }
    }
    let r = pearson_columns(&prediction, &target);
    let ceiling_split_half = ceiling::split_half(&subjects, p.splits, p.seed);
    let config = ExtrapolationConfig { bootstraps: p.bootstraps, max_subsets: p.max_subsets, seed: p.seed };
    let (_, ceiling_extrapolation) = ceiling::extrapolation(&subjects, &config);
    let chosen = match p.ceiling {
        CeilingMethod::SplitHalf => &ceiling_split_half,
        CeilingMethod::Extrapolation => &ceiling_extrapolation,
    };
    let raw = median(&r);
    let ceiling = median(chosen);
    Ok(Score {
        score: raw / ceiling,
        raw,
        ceiling,
        r,
        method: p.ceiling,
        ceiling_split_half,
        ceiling_extrapolation,
        n_passages: distinct.len(),
    })
}

/// Rows `train` and `test` of `x`, z-scored with the training rows' means
/// and sds (population; a constant column becomes 0).
fn standardize(x: &Matrix, train: &[usize], test: &[usize]) -> (Matrix, Matrix) {
    let d = x.cols;
    let mut mean = vec![0.0f64; d];
    for &i in train {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= train.len() as f64);
    let mut var = vec![0.0f64; d];
    for &i in train {
        for ((s, &v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let sd: Vec<f64> = var.iter().map(|v| (v / train.len() as f64).sqrt()).collect();
    let take = |rows: &[usize]| {
        let mut out = Matrix::zeros(rows.len(), d);
        for (k, &i) in rows.iter().enumerate() {
            for f in 0..d {
                let value = if sd[f] > 0.0 { (x.get(i, f) as f64 - mean[f]) / sd[f] } else { 0.0 };
                out.set(k, f, value as f32);
            }
        }
        out
    };
    (take(train), take(test))
}

/// The median of the finite values (NaN if none).
pub fn median(values: &[f64]) -> f64 {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return f64::NAN;
    }
    finite.sort_by(f64::total_cmp);
    let m = finite.len() / 2;
    if finite.len() % 2 == 1 {
        finite[m]
    } else {
        (finite[m - 1] + finite[m]) / 2.0
    }
}

/// Writes `scores` and `summary`.
pub fn write_score(ctx: &mut StageContext, bench: &Benchmark, s: &Score, n_features: usize) -> Result<(), StageError> {
    let chosen = match s.method {
        CeilingMethod::SplitHalf => &s.ceiling_split_half,
        CeilingMethod::Extrapolation => &s.ceiling_extrapolation,
    };
    let normalized: Vec<f64> = s.r.iter().zip(chosen).map(|(r, c)| if *c > 0.0 { r / c } else { f64::NAN }).collect();
    let scores = table(vec![
        ("unit", Arc::new(StringArray::from(bench.unit_names.clone())) as ArrayRef),
        ("r", Arc::new(Float64Array::from(s.r.clone()))),
        ("ceiling_split_half", Arc::new(Float64Array::from(s.ceiling_split_half.clone()))),
        ("ceiling_extrapolation", Arc::new(Float64Array::from(s.ceiling_extrapolation.clone()))),
        ("normalized", Arc::new(Float64Array::from(normalized))),
    ]);
    ctx.write_table("scores", &scores)?;
    let int = |v: usize| Arc::new(Int64Array::from(vec![v as i64])) as ArrayRef;
    let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    let summary = table(vec![
        ("raw", float(s.raw)),
        ("ceiling", float(s.ceiling)),
        ("score", float(s.score)),
        ("ceiling_method", Arc::new(StringArray::from(vec![s.method.name()])) as ArrayRef),
        ("n_sentences", int(bench.sentences.len())),
        ("n_passages", int(s.n_passages)),
        ("n_subjects", int(bench.subjects.len())),
        ("n_units", int(bench.unit_names.len())),
        ("n_features", int(n_features)),
    ]);
    ctx.write_table("summary", &summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passage_folds_keep_passages_together_and_use_every_fold() {
        let passages: Vec<i64> = (0..40).map(|i| i / 4).collect();
        let folds = passage_folds(&passages, 5, 7);
        for i in 0..40 {
            assert_eq!(folds[i], folds[i / 4 * 4]);
        }
        for f in 0..5 {
            assert_eq!(folds.iter().filter(|&&x| x == f).count(), 8);
        }
    }
}
