//! `ridge`: cross-validated ridge regression for many targets (voxels) at
//! once. Penalty convention (himalaya's): for X = U S V^T the weights are
//! `V diag(s / (s^2 + alpha)) U^T y`, i.e. minimise `||Xw - y||^2 + alpha
//! ||w||^2`, no intercept (prep z-scores). Folds: leave-one-story-out
//! (default), contiguous k-fold, or chunked k-fold with a seed. Alphas per
//! voxel (default) or one shared alpha; refit on all training rows; targets in
//! batches so that 100k voxels fit in memory. `banded: true` fits one alpha
//! per feature band (the `bands` prep recorded), himalaya's random search.
//! The linear algebra lives in `numeric::ridge`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact::MatrixArtifact;
use crate::device::{Device, DeviceRequest};
use crate::numeric::ridge::{self, BandedConfig, CvScore, Fold, RidgeConfig};
use crate::numeric::Matrix;
use crate::stage::{param, Kind, ParamDoc, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldParams {
    #[serde(default)]
    pub by: FoldBy,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "default_chunk")]
    pub chunk: usize,
    #[serde(default)]
    pub seed: u64,
}

/// How the training rows are split into folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoldBy {
    /// Leave one story out.
    #[default]
    Story,
    /// k contiguous blocks.
    Contiguous,
    /// Chunks of `chunk` TRs dealt into k folds with `seed`.
    Chunked,
}

impl FoldBy {
    fn name(self) -> &'static str {
        match self {
            FoldBy::Story => "story",
            FoldBy::Contiguous => "contiguous",
            FoldBy::Chunked => "chunked",
        }
    }
}

fn default_k() -> usize {
    5
}
fn default_chunk() -> usize {
    40
}

impl Default for FoldParams {
    fn default() -> Self {
        FoldParams { by: FoldBy::default(), k: default_k(), chunk: default_chunk(), seed: 0 }
    }
}

/// How alphas are scored on the validation folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Score {
    #[default]
    L2,
    Pearson,
}

impl Score {
    fn name(self) -> &'static str {
        match self {
            Score::L2 => "l2",
            Score::Pearson => "pearson",
        }
    }
}

impl Score {
    /// What a `cv_scores` value means (its metadata and the docs say it).
    fn convention(self) -> &'static str {
        match self {
            Score::L2 => "l2: minus the mean squared error of the validation predictions, averaged over folds (himalaya's l2_neg_loss, scikit-learn's neg_mean_squared_error); higher is better, 0 is perfect",
            Score::Pearson => "pearson: Pearson r between the validation predictions and targets, averaged over folds; higher is better",
        }
    }
}

impl From<Score> for CvScore {
    fn from(score: Score) -> CvScore {
        match score {
            Score::L2 => CvScore::L2,
            Score::Pearson => CvScore::Pearson,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RidgeParams {
    #[serde(default = "default_alphas")]
    pub alphas: Vec<f64>,
    /// One alpha per voxel (true) or one for all voxels.
    #[serde(default = "yes")]
    pub per_voxel: bool,
    #[serde(default)]
    pub score: Score,
    #[serde(default)]
    pub folds: FoldParams,
    #[serde(default = "default_batch")]
    pub target_batch: usize,
    /// One alpha per feature band (random search over band weights).
    #[serde(default)]
    pub banded: bool,
    #[serde(default = "default_iter")]
    pub n_iter: usize,
    #[serde(default = "default_concentration")]
    pub concentration: f64,
    #[serde(default)]
    pub seed: u64,
    /// `cpu` (default), `auto`, `cuda` or `cuda:N`: the CUDA path runs the
    /// same algorithm in libtorch (`voxflow_torch::ridge`), in the worker process.
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_alphas() -> Vec<f64> {
    (0..=10).map(|i| 10f64.powf(i as f64 * 0.5)).collect()
}
fn yes() -> bool {
    true
}
fn default_batch() -> usize {
    ridge::DEFAULT_TARGET_BATCH
}
fn default_iter() -> usize {
    20
}
fn default_concentration() -> f64 {
    1.0
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Cpu
}

pub struct Ridge;

impl Kind for Ridge {
    type Params = RidgeParams;
    const NAME: &'static str = "ridge";
    // 2: weights are voxel-major (one row per voxel), written block by block.
    // 3: cv_scores has an `alpha` column and states its score convention;
    // provenance in the `alphas` table's metadata.
    const VERSION: u32 = 3;
    const SUMMARY: &'static str =
        "cross-validated ridge for many voxels: per-voxel alphas, folds by story, banded option";
    const PARAM_DOCS: &'static [ParamDoc] = &[
        param("alphas", "list of numbers > 0", "the penalties tried: minimise ||Xw - y||^2 + alpha ||w||^2"),
        param("per_voxel", "bool", "one alpha per voxel (true) or one alpha for all voxels"),
        param("score", "l2 | pearson", "how an alpha is scored on the validation folds (l2: minus the squared error)"),
        param(
            "folds.by",
            "story | contiguous | chunked",
            "leave one story out, k contiguous blocks, or chunks dealt into k folds",
        ),
        param("folds.k", "integer >= 2", "number of folds (contiguous, chunked)"),
        param("folds.chunk", "integer >= 1", "TRs per chunk (chunked)"),
        param("folds.seed", "integer", "seed that deals the chunks (chunked)"),
        param("target_batch", "integer >= 1", "voxels solved at once (memory)"),
        param("banded", "bool", "one alpha per feature band (the bands prep recorded), random search"),
        param("n_iter", "integer", "random-search iterations (banded)"),
        param("concentration", "number", "Dirichlet concentration of the band weights (banded)"),
        param("seed", "integer", "seed of the random search (banded)"),
        param("device", "cpu | auto | cuda | cuda:N", "where the fit runs; not part of the key"),
    ];

    fn wants_gpu(&self, params: &RidgeParams) -> bool {
        params.device.wants_gpu()
    }
    /// On a GPU the fit is libtorch's, in the worker; on the CPU it runs here.
    fn in_worker(&self, params: &RidgeParams, assigned: Device) -> bool {
        !params.banded && params.device.resolve(assigned) != Device::Cpu
    }
    fn input_problems(&self, _params: &RidgeParams, roles: &[&str]) -> Vec<(String, String)> {
        // Either a prep stage as `data`, or the three matrices by name.
        let named = ["x_train", "y_train", "x_test"];
        if roles.contains(&"data") || named.iter().all(|n| roles.contains(n)) {
            return Vec::new();
        }
        let missing: Vec<&str> = named.iter().copied().filter(|n| !roles.contains(n)).collect();
        vec![(
            format!("kind `ridge` needs a `data` input or inputs named x_train, y_train and x_test (missing: {})", missing.join(", ")),
            "add `inputs: {data: <prep stage>}`, or `inputs: {x_train: ..., y_train: ..., x_test: ...}` with load.matrix stages".into(),
        )]
    }
    /// `band_weights` only for a banded fit.
    fn outputs(&self, params: &RidgeParams) -> Vec<String> {
        let mut outputs: Vec<String> =
            ["alphas", "cv_scores", "weights", "weight_columns", "predictions"].iter().map(|s| s.to_string()).collect();
        if params.banded {
            outputs.push("band_weights".into());
        }
        outputs
    }
    fn validate(&self, p: &RidgeParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.alphas.is_empty() {
            errors.push(ParamError::new("alphas", "give at least one alpha"));
        }
        if let Some(bad) = p.alphas.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
            errors.push(ParamError::new("alphas", format!("alphas must be positive, found {bad}")));
        }
        if p.folds.by != FoldBy::Story && p.folds.k < 2 {
            errors.push(ParamError::new("folds.k", "k must be at least 2"));
        }
        if p.folds.chunk == 0 || p.target_batch == 0 {
            errors.push(ParamError::new("folds.chunk", "chunk and target_batch must be at least 1"));
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        if p.banded && p.device != DeviceRequest::Cpu {
            errors.push(
                ParamError::new("device", "banded ridge runs on the CPU only")
                    .hint("use `device: cpu` with `banded: true`"),
            );
        }
        errors
    }
    fn run(&self, p: &RidgeParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let x_train = matrix_input(ctx, "x_train")?;
        let y_train = matrix_input(ctx, "y_train")?;
        let x_test = matrix_input(ctx, "x_test")?;
        if x_train.matrix.rows != y_train.matrix.rows {
            return Err(StageError::failed(format!(
                "x_train has {} rows but y_train has {}",
                x_train.matrix.rows, y_train.matrix.rows
            )));
        }
        if x_test.matrix.cols != x_train.matrix.cols {
            return Err(StageError::failed(format!(
                "x_test has {} columns but x_train has {}",
                x_test.matrix.cols, x_train.matrix.cols
            )));
        }
        let folds = make_folds(&p.folds, &x_train)?;
        let score = CvScore::from(p.score);
        let fail = |e: ridge::RidgeError| StageError::failed(e.to_string());
        let n_voxels = y_train.matrix.cols;
        let n_features = x_train.matrix.cols;
        let mut weight_meta = std::collections::BTreeMap::new();
        weight_meta.insert("layout".to_string(), "voxel-major: row v holds voxel v's weights over the features".into());
        if let Some(bands) = x_train.metadata.get("bands") {
            weight_meta.insert("bands".into(), bands.clone());
        }
        // Weights go to disk one block of voxels at a time (one row per voxel),
        // and the test predictions are made from each block as it passes.
        let mut writer = ctx.matrix_writer("weights", n_voxels, n_features, &weight_meta)?;
        let mut predictions = Matrix::zeros(x_test.matrix.rows, n_voxels);
        let mut write_error = None;
        let mut take_block = |targets: &[usize], block: Matrix| {
            let part = ridge::predict_voxel_major(&x_test.matrix, &block);
            for i in 0..part.rows {
                for (j, &t) in targets.iter().enumerate() {
                    predictions.set(i, t, part.get(i, j));
                }
            }
            if write_error.is_none() {
                write_error = writer.write_rows(block.data).err();
            }
        };
        let (best_alphas, cv_scores, band_weights) = if p.banded {
            let bands = bands_of(&x_train)?;
            let parts: Vec<Matrix> =
                bands.iter().map(|(start, width)| x_train.matrix.select_cols(*start, *width)).collect();
            let refs: Vec<&Matrix> = parts.iter().collect();
            let config = BandedConfig {
                n_iter: p.n_iter,
                alphas: p.alphas.clone(),
                concentration: p.concentration,
                seed: p.seed,
                score,
                target_batch: p.target_batch,
            };
            let result = ridge::banded_ridge_cv(&refs, &y_train.matrix, &folds, &config).map_err(fail)?;
            feed_dense(&result.weights, p.target_batch, &mut take_block);
            (result.best_alphas, result.cv_scores, Some(result.gammas))
        } else {
            let config = RidgeConfig {
                alphas: p.alphas.clone(),
                per_target_alpha: p.per_voxel,
                score,
                target_batch: p.target_batch,
            };
            let device = p.device.resolve(ctx.device);
            ctx.device = device;
            let (alphas, scores) = match device {
                Device::Cpu => {
                    ridge::ridge_cv_streaming(&x_train.matrix, &y_train.matrix, &folds, &config, &mut take_block)
                        .map_err(fail)?
                }
                Device::Cuda(_) => {
                    let result = crate::worker::runtime(Self::NAME)?
                        .ridge_cv(&x_train.matrix, &y_train.matrix, &folds, &config, device)
                        .map_err(fail)?;
                    feed_dense(&result.weights, p.target_batch, &mut take_block);
                    (result.best_alphas, result.cv_scores)
                }
            };
            (alphas, scores, None)
        };
        if let Some(error) = write_error {
            return Err(error.into());
        }
        writer.finish()?;
        ctx.add_matrix("weights", n_voxels, n_features);
        ctx.check_cancelled()?;

        let n_voxels = best_alphas.len();
        let best_scores: Vec<f64> = (0..n_voxels)
            .map(|v| (0..cv_scores.rows).map(|a| cv_scores.get(a, v) as f64).fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let schema = Schema::new(vec![
            Field::new("voxel", DataType::Int32, false),
            Field::new("alpha", DataType::Float64, false),
            Field::new("cv_score", DataType::Float64, false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from((0..n_voxels as i32).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(best_alphas)),
            Arc::new(Float64Array::from(best_scores)),
        ];
        let table = RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| StageError::failed(e.to_string()))?;
        ctx.write_table("alphas", &table)?;
        // One row per alpha, one column per voxel; the alphas as a column
        // too, which polars and pandas keep (they drop schema metadata).
        // (A banded fit: one row per random-search sample, an `iteration` column.)
        let rows = cv_scores.rows;
        let mut scores = MatrixArtifact::new(cv_scores);
        let layout = if p.banded {
            scores.row_labels.push(("iteration".into(), (0..rows).map(|i| i as f64).collect()));
            "row i: random-search sample i (the `iteration` column); column v of `data`: voxel v"
        } else {
            scores.row_labels.push(("alpha".into(), p.alphas.clone()));
            "row a: alpha a (the `alpha` column); column v of `data`: voxel v"
        };
        scores.metadata.insert("layout".into(), layout.into());
        scores.metadata.insert("alphas".into(), serde_json::to_string(&p.alphas).expect("alphas"));
        scores.metadata.insert("score".into(), p.score.name().into());
        scores.metadata.insert("score_convention".into(), p.score.convention().into());
        ctx.write_matrix("cv_scores", &scores)?;
        ctx.write_table("weight_columns", &weight_columns(&x_train, n_features)?)?;
        ctx.write_matrix("predictions", &MatrixArtifact::with_segments(predictions, x_test.segments.clone()))?;
        if let Some(gammas) = band_weights {
            ctx.write_matrix("band_weights", &MatrixArtifact::new(gammas))?;
        }
        Ok(())
    }
}

/// Hands a dense p x v weight matrix to `take` in voxel-major blocks of
/// `batch` voxels, like the streaming refit does.
fn feed_dense(weights: &Matrix, batch: usize, take: &mut dyn FnMut(&[usize], Matrix)) {
    let targets: Vec<usize> = (0..weights.cols).collect();
    for chunk in targets.chunks(batch.max(1)) {
        let mut block = Matrix::zeros(chunk.len(), weights.rows);
        for (j, &t) in chunk.iter().enumerate() {
            for f in 0..weights.rows {
                block.set(j, f, weights.get(f, t));
            }
        }
        take(chunk, block);
    }
}

/// `name` as its own input role, or as that output of the `data` input.
fn matrix_input(ctx: &StageContext, name: &str) -> Result<MatrixArtifact, StageError> {
    if ctx.has_input(name) {
        return ctx.input_matrix(name);
    }
    let data = ctx.input("data").map_err(|_| {
        StageError::failed(format!(
            "ridge needs `{name}`: give a `data` input (a prep stage) or inputs named x_train, y_train, x_test"
        ))
    })?;
    Ok(crate::artifact::read_matrix(&data.output_path(name)?)?)
}

fn make_folds(params: &FoldParams, x_train: &MatrixArtifact) -> Result<Vec<Fold>, StageError> {
    let n = x_train.matrix.rows;
    let folds = match params.by {
        FoldBy::Story => {
            if x_train.segments.len() < 2 {
                return Err(StageError::failed(format!(
                    "folds by story need at least 2 training stories, found {}",
                    x_train.segments.len()
                ))
                .with_hint("use `folds: {by: chunked, k: 5}` for a single training story"));
            }
            let mut groups = Vec::with_capacity(n);
            for (i, segment) in x_train.segments.iter().enumerate() {
                groups.extend(std::iter::repeat_n(i, segment.rows));
            }
            ridge::folds_by_group(&groups)
        }
        FoldBy::Contiguous => {
            refuse_too_many_folds(params, n, None)?;
            ridge::folds_contiguous(n, params.k)
        }
        FoldBy::Chunked => {
            refuse_too_many_folds(params, n, Some(n.div_ceil(params.chunk.max(1))))?;
            ridge::folds_chunked(n, params.k, params.chunk, params.seed)
        }
    };
    if let Some((i, _)) = folds.iter().enumerate().find(|(_, f)| f.validation.is_empty() || f.train.is_empty()) {
        return Err(StageError::failed(format!("fold {i} is empty: {n} training rows are too few for these folds")));
    }
    Ok(folds)
}

/// Refuses more folds than `n` training rows (contiguous) or than `chunks`
/// (chunked), before k index lists of n rows each are built.
fn refuse_too_many_folds(params: &FoldParams, n: usize, chunks: Option<usize>) -> Result<(), StageError> {
    let (units, what, rows) = match chunks {
        None => (n, "training rows", String::new()),
        Some(chunks) => (chunks, "chunks", format!(" ({n} rows)")),
    };
    if params.k <= units {
        return Ok(());
    }
    Err(StageError::failed(format!(
        "{} folds need at least {} {what}, the training set has {units}{rows}",
        params.k, params.k
    ))
    .with_hint(format!("use `folds: {{by: {}, k: {}}}` or fewer", params.by.name(), units.max(2))))
}

/// Column ranges of the feature bands recorded by prep.
/// What each column of the weights is: its index in `data`, its band (the
/// prep input it came from), its feature (by name where the feature stage
/// recorded names, else `band[i]`) and its delay in TRs (where lag recorded
/// the delays; its column blocks are delay-major).
fn weight_columns(x: &MatrixArtifact, n_features: usize) -> Result<RecordBatch, StageError> {
    let bands: Vec<Value> = x
        .metadata
        .get("bands")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| vec![serde_json::json!({"name": "x", "start": 0, "width": n_features})]);
    let (mut index, mut band_names, mut features, mut delays) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for band in &bands {
        let name = band["name"].as_str().unwrap_or("x");
        let (start, width) =
            (band["start"].as_u64().unwrap_or(0) as usize, band["width"].as_u64().unwrap_or(0) as usize);
        let band_delays: Vec<i64> =
            band["delays"].as_array().map(|d| d.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
        let blocks = if !band_delays.is_empty() && width % band_delays.len() == 0 { band_delays.len() } else { 1 };
        let per_block = width / blocks.max(1);
        let names: Vec<String> = band["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for j in 0..width {
            let feature = j % per_block.max(1);
            index.push((start + j) as i32);
            band_names.push(name.to_string());
            features.push(match names.get(feature) {
                Some(feature_name) if names.len() == per_block => feature_name.clone(),
                _ => format!("{name}[{feature}]"),
            });
            delays.push((blocks == band_delays.len()).then(|| band_delays[j / per_block.max(1)]));
        }
    }
    let schema = Schema::new(vec![
        Field::new("column", DataType::Int32, false),
        Field::new("band", DataType::Utf8, false),
        Field::new("feature", DataType::Utf8, false),
        Field::new("delay", DataType::Int64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(index)),
        Arc::new(arrow::array::StringArray::from(band_names)),
        Arc::new(arrow::array::StringArray::from(features)),
        Arc::new(arrow::array::Int64Array::from(delays)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| StageError::failed(e.to_string()))
}

fn bands_of(x: &MatrixArtifact) -> Result<Vec<(usize, usize)>, StageError> {
    let text = x.metadata.get("bands").ok_or_else(|| {
        StageError::failed("banded ridge needs feature bands")
            .with_hint("give prep one input per feature space; it records the bands")
    })?;
    let bands: Vec<Value> =
        serde_json::from_str(text).map_err(|e| StageError::failed(format!("bad bands metadata: {e}")))?;
    let out: Vec<(usize, usize)> = bands
        .iter()
        .map(|b| (b["start"].as_u64().unwrap_or(0) as usize, b["width"].as_u64().unwrap_or(0) as usize))
        .collect();
    if out.len() < 2 {
        return Err(StageError::failed("banded ridge needs at least two feature bands"));
    }
    Ok(out)
}
