//! `prep`: turns TR-level features and responses into the matrices ridge
//! fits: stories matched by name, trimmed (LeBel's [10:-5] preset or any
//! start/end), head motion handled (confound regression or dropping TRs
//! above a framewise-displacement threshold), split into train and test by
//! story (nothing leaks: a story is wholly train or wholly test), and
//! z-scored with the training set's statistics (population std; constant
//! columns left at 0 with a warning).
//!
//! Inputs: `responses` (matrix, story segments), optional `repeats` (the
//! test story's repeats, segments `<story>/rep<k>`), optional `confounds`
//! (fMRIPrep-style table with `story`, `tr`, and confound columns), and any
//! number of feature sets under other role names: they are placed side by
//! side in role-name order, and their column ranges recorded as `bands` for
//! banded ridge.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};

use crate::artifact::{MatrixArtifact, Segment};
use crate::numeric::matrix::first_non_finite;
use crate::numeric::signal::{self, ZScore};
use crate::numeric::Matrix;
use crate::stage::{param, Kind, ParamDoc, ParamError, StageContext, StageError};

/// `trim`: a preset name or explicit row counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TrimSpec {
    Preset(TrimPreset),
    Rows { start: usize, end: usize },
}

/// The trim presets: `lebel` ([10:-5]) or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrimPreset {
    Lebel,
    None,
}

impl<'de> Deserialize<'de> for TrimSpec {
    /// A string is a preset (an unknown one is reported like an enum's
    /// unknown value, the row form listed beside the presets); a mapping
    /// gives the rows.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Named like the outer type: serde's "did not match any variant of
        // untagged enum TrimSpec" stays what it was.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum TrimSpec {
            Preset(String),
            Rows { start: usize, end: usize },
        }
        match TrimSpec::deserialize(deserializer)? {
            TrimSpec::Preset(name) => match name.as_str() {
                "lebel" => Ok(Self::Preset(TrimPreset::Lebel)),
                "none" => Ok(Self::Preset(TrimPreset::None)),
                _ => Err(serde::de::Error::unknown_variant(&name, &["lebel", "none", "{start: N, end: M}"])),
            },
            TrimSpec::Rows { start, end } => Ok(Self::Rows { start, end }),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionParams {
    #[serde(default)]
    pub mode: MotionMode,
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default = "default_confounds")]
    pub columns: Vec<String>,
}

/// What prep does about head motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MotionMode {
    #[default]
    None,
    /// Regress the confounds out of the responses, per story.
    Regress,
    /// Remove training TRs whose framewise displacement exceeds `threshold`.
    Drop,
}

impl MotionMode {
    fn name(self) -> &'static str {
        match self {
            MotionMode::None => "none",
            MotionMode::Regress => "regress",
            MotionMode::Drop => "drop",
        }
    }
}

fn default_threshold() -> f64 {
    0.5
}
fn default_confounds() -> Vec<String> {
    ["framewise_displacement", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for MotionParams {
    fn default() -> Self {
        MotionParams { mode: MotionMode::default(), threshold: default_threshold(), columns: default_confounds() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepParams {
    /// Stories held out for testing.
    #[serde(default = "default_test")]
    pub test_stories: Vec<String>,
    #[serde(default = "default_trim")]
    pub trim: TrimSpec,
    #[serde(default = "yes")]
    pub zscore: bool,
    #[serde(default)]
    pub motion: MotionParams,
    /// A null model: shuffle the features in blocks of TRs within each story
    /// (responses untouched), breaking their alignment with the responses.
    #[serde(default)]
    pub shuffle: Option<NullParams>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullParams {
    #[serde(default)]
    pub seed: u64,
    /// Block length in TRs (keeps the features' autocorrelation).
    #[serde(default = "default_block")]
    pub block: usize,
}

fn default_block() -> usize {
    10
}

fn default_test() -> Vec<String> {
    vec![super::synth::TEST_STORY.to_string()]
}
fn default_trim() -> TrimSpec {
    TrimSpec::Preset(TrimPreset::None)
}
fn yes() -> bool {
    true
}

impl PrepParams {
    fn trim(&self) -> (usize, usize) {
        match &self.trim {
            TrimSpec::Preset(TrimPreset::Lebel) => (10, 5),
            TrimSpec::Preset(TrimPreset::None) => (0, 0),
            TrimSpec::Rows { start, end } => (*start, *end),
        }
    }
}

const RESERVED: &[&str] = &["responses", "repeats", "confounds"];
/// No feature input: found at validation (`input_problems`), and by `run`
/// for a stage built without it.
const NO_FEATURES: (&str, &str) = (
    "prep needs at least one feature input besides `responses`",
    "add e.g. `inputs: {responses: synth.responses, embedding: lag_emb}`",
);

pub struct Prep;

impl Kind for Prep {
    type Params = PrepParams;
    const NAME: &'static str = "prep";
    // 2: each band records its delays and feature names (for ridge's weight_columns).
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "match stories, trim, handle head motion, split train/test by story, z-score with training statistics";
    const INPUTS: &'static [&'static str] = &["responses"];
    const PARAM_DOCS: &'static [ParamDoc] = &[
        param("test_stories", "list of story names", "stories held out for testing"),
        param("trim", "lebel | none | {start: N, end: M}", "TRs cut from each story's start and end (lebel: [10:-5])"),
        param("zscore", "bool", "z-score features and responses with the training statistics"),
        param("motion.mode", "none | regress | drop", "regress the confounds out, or drop high-motion training TRs"),
        param("motion.threshold", "number", "framewise displacement above which a TR is dropped (drop)"),
        param("motion.columns", "list of names", "confound columns regressed out (regress)"),
        param(
            "shuffle",
            "{seed, block} or none",
            "null model: shuffle the features in blocks of TRs within each story",
        ),
    ];
    const OUTPUTS: &'static [&'static str] = &["x_train", "y_train", "x_test", "y_test", "y_test_repeats"];

    fn required_inputs(&self, params: &PrepParams) -> Vec<&'static str> {
        match params.motion.mode {
            MotionMode::None => vec!["responses"],
            MotionMode::Regress | MotionMode::Drop => vec!["responses", "confounds"],
        }
    }
    fn input_problems(&self, _params: &PrepParams, roles: &[&str]) -> Vec<(String, String)> {
        if roles.iter().any(|r| !RESERVED.contains(r)) {
            return Vec::new();
        }
        vec![(NO_FEATURES.0.into(), NO_FEATURES.1.into())]
    }
    fn validate(&self, p: &PrepParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.test_stories.is_empty() {
            errors.push(ParamError::new("test_stories", "name at least one held-out story"));
        }
        errors
    }
    fn run(&self, params: &PrepParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let mut responses = ctx.input_matrix("responses")?;
        if responses.segments.is_empty() {
            return Err(StageError::failed("the responses have no story segments"));
        }
        check_finite(&responses, "responses")?;
        let feature_roles: Vec<String> =
            ctx.inputs.keys().filter(|r| !RESERVED.contains(&r.as_str())).cloned().collect();
        if feature_roles.is_empty() {
            return Err(StageError::failed(NO_FEATURES.0).with_hint(NO_FEATURES.1));
        }
        let mut feature_sets = Vec::new();
        for role in &feature_roles {
            let features = ctx.input_matrix(role)?;
            if features.metadata.get("level").map(String::as_str) == Some("word") {
                return Err(StageError::failed(format!("feature input `{role}` is word-level"))
                    .with_hint("downsample it to TRs (and lag it) first"));
            }
            check_finite(&features, role)?;
            feature_sets.push((role.clone(), features));
        }
        for story in &params.test_stories {
            if !responses.segments.iter().any(|s| &s.name == story) {
                return Err(StageError::failed(format!("test story `{story}` is not in the responses")).with_hint(
                    format!(
                        "stories: {}",
                        responses.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let (trim_start, trim_end) = params.trim();
        let confounds = match ctx.has_input("confounds") {
            true => Some(read_confounds(&ctx.input_table("confounds")?, &params.motion.columns)?),
            false if params.motion.mode != MotionMode::None => {
                return Err(StageError::failed(format!(
                    "motion mode `{}` needs a `confounds` input",
                    params.motion.mode.name()
                )))
            }
            false => None,
        };

        // Per story: the feature rows and which response rows are kept,
        // trimmed and cleaned. The responses are not copied per story: the
        // test rows are copied out, then the training rows are moved up in
        // place in the responses' own buffer, which becomes y_train. The
        // stage then holds about one copy of the responses (it held three).
        let mut train = Split::default();
        let mut test = Split::default();
        let mut dropped = 0usize;
        for (story, range) in responses.segment_ranges() {
            let n = range.len();
            let mut parts = Vec::new();
            for (role, features) in &feature_sets {
                let (_, feature_range) =
                    features.segment_ranges().into_iter().find(|(name, _)| *name == story).ok_or_else(|| {
                        StageError::failed(format!(
                            "story `{story}` has responses but no rows in feature input `{role}`"
                        ))
                        .with_hint("the feature and response stories must match by name")
                    })?;
                if feature_range.len() != n {
                    return Err(StageError::failed(format!(
                        "story `{story}`: feature input `{role}` has {} TRs but the responses have {n}",
                        feature_range.len()
                    ))
                    .with_hint("check the TR counts of the alignment (align.trs) against the response files"));
                }
                parts.push(features.matrix.select_rows(&feature_range.collect::<Vec<_>>()));
            }
            let refs: Vec<&Matrix> = parts.iter().collect();
            let mut x = Matrix::hstack(&refs);
            if let Some(null) = &params.shuffle {
                x = shuffle_blocks(&x, null.block.max(1), null.seed, &story);
            }
            if let (Some(confounds), MotionMode::Regress) = (&confounds, params.motion.mode) {
                let c = confounds
                    .get(&story)
                    .ok_or_else(|| StageError::failed(format!("story `{story}` has no rows in the confounds table")))?;
                if c.rows != n {
                    return Err(StageError::failed(format!(
                        "story `{story}`: the confounds table has {} TRs but the responses have {n}",
                        c.rows
                    )));
                }
                let cols = responses.matrix.cols;
                let block = &mut responses.matrix.data[range.start * cols..range.end * cols];
                let mut y = Matrix::from_vec(n, cols, block.to_vec());
                regress_out(&mut y, c);
                block.copy_from_slice(&y.data);
            }
            let kept = signal::trim(&[n], trim_start, trim_end).map_err(|_| {
                StageError::failed(format!(
                    "story `{story}` has {n} TRs, too few to trim {trim_start} at the start and {trim_end} at the end"
                ))
            })?;
            let mut rows: Vec<usize> = signal::trimmed_rows(&kept);
            let is_test = params.test_stories.contains(&story);
            if let (Some(confounds), MotionMode::Drop, false) = (&confounds, params.motion.mode, is_test) {
                let c = confounds
                    .get(&story)
                    .ok_or_else(|| StageError::failed(format!("story `{story}` has no rows in the confounds table")))?;
                let before = rows.len();
                rows.retain(|&t| t >= c.rows || (c.get(t, 0) as f64) <= params.motion.threshold);
                dropped += before - rows.len();
            }
            let split = if is_test { &mut test } else { &mut train };
            split.push(&story, x.select_rows(&rows), rows.iter().map(|&r| range.start + r));
            ctx.check_cancelled()?;
        }
        if train.segments.is_empty() {
            return Err(StageError::failed("every story is a test story: nothing left to train on"));
        }
        if dropped > 0 {
            ctx.warn(format!(
                "dropped {dropped} training TRs with framewise displacement above {}",
                params.motion.threshold
            ));
        }
        // The test rows first: moving the training rows up overwrites them.
        let y_test = responses.matrix.select_rows(&test.y_rows);
        let (mut x_test, mut y_test) = test.finish(y_test);
        let y_train = compact_rows(responses.matrix, &train.y_rows);
        let (mut x_train, mut y_train) = train.finish(y_train);

        let mut repeats = None;
        if ctx.has_input("repeats") {
            let all = ctx.input_matrix("repeats")?;
            check_finite(&all, "repeats")?;
            let mut split = Split::default();
            for (name, range) in all.segment_ranges() {
                let story = name.split('/').next().unwrap_or(&name).to_string();
                if !params.test_stories.contains(&story) {
                    continue;
                }
                let kept = signal::trim(&[range.len()], trim_start, trim_end)
                    .map_err(|e| StageError::failed(format!("repeat `{name}`: {e}")))?;
                let rows: Vec<usize> = signal::trimmed_rows(&kept).into_iter().map(|r| r + range.start).collect();
                split.push(&name, Matrix::zeros(rows.len(), 0), rows.iter().copied());
            }
            let y = all.matrix.select_rows(&split.y_rows);
            repeats = Some(split.finish(y).1);
        }

        if params.zscore {
            let x_stats = ZScore::fit(&x_train.matrix);
            let constant = x_stats.constant_columns();
            if !constant.is_empty() {
                ctx.warn(format!("{} constant feature column(s) left at 0 (first: {})", constant.len(), constant[0]));
            }
            x_stats.apply(&mut x_train.matrix);
            x_stats.apply(&mut x_test.matrix);
            let y_stats = ZScore::fit(&y_train.matrix);
            let constant = y_stats.constant_columns();
            if !constant.is_empty() {
                ctx.warn(format!(
                    "{} voxel(s) constant over the training TRs, left at 0 (first: {})",
                    constant.len(),
                    constant[0]
                ));
            }
            y_stats.apply(&mut y_train.matrix);
            y_stats.apply(&mut y_test.matrix);
            if let Some(r) = repeats.as_mut() {
                y_stats.apply(&mut r.matrix);
            }
        }
        let mut bands = Vec::new();
        let mut start = 0;
        for (role, features) in &feature_sets {
            let mut band = serde_json::json!({"name": role, "start": start, "width": features.matrix.cols});
            // What lag and the feature stage recorded: the delays (delay-major
            // column blocks) and the feature names.
            for key in ["delays", "columns"] {
                if let Some(value) =
                    features.metadata.get(key).and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                {
                    band[key] = value;
                }
            }
            bands.push(band);
            start += features.matrix.cols;
        }
        let bands = serde_json::to_string(&bands).expect("bands");
        for x in [&mut x_train, &mut x_test] {
            x.metadata.insert("bands".into(), bands.clone());
        }
        ctx.write_matrix("x_train", &x_train)?;
        ctx.write_matrix("y_train", &y_train)?;
        ctx.write_matrix("x_test", &x_test)?;
        ctx.write_matrix("y_test", &y_test)?;
        if let Some(repeats) = repeats {
            ctx.write_matrix("y_test_repeats", &repeats)?;
        }
        Ok(())
    }
}

/// One side of the split: feature rows per story, and the rows of the
/// responses that go with them.
#[derive(Default)]
struct Split {
    x: Vec<Matrix>,
    y_rows: Vec<usize>,
    segments: Vec<Segment>,
}

impl Split {
    fn push(&mut self, story: &str, x: Matrix, y_rows: impl Iterator<Item = usize>) {
        self.segments.push(Segment { name: story.to_string(), rows: x.rows });
        self.x.push(x);
        self.y_rows.extend(y_rows);
    }

    /// The features stacked, and `y` (this side's response rows, in order).
    fn finish(self, y: Matrix) -> (MatrixArtifact, MatrixArtifact) {
        let x =
            if self.x.is_empty() { Matrix::zeros(0, 0) } else { Matrix::vstack(&self.x.iter().collect::<Vec<_>>()) };
        (MatrixArtifact::with_segments(x, self.segments.clone()), MatrixArtifact::with_segments(y, self.segments))
    }
}

/// The rows `rows` (ascending) of `m`, moved up in place: row `rows[k]`
/// becomes row `k`, never overwriting a row still to be moved.
fn compact_rows(mut m: Matrix, rows: &[usize]) -> Matrix {
    let cols = m.cols;
    for (k, &r) in rows.iter().enumerate() {
        debug_assert!(r >= k && (k == 0 || r > rows[k - 1]), "rows must be ascending");
        if r != k {
            m.data.copy_within(r * cols..(r + 1) * cols, k * cols);
        }
    }
    m.data.truncate(rows.len() * cols);
    m.rows = rows.len();
    m
}

/// The rows of `x` in blocks of `block`, the blocks in a random order
/// drawn from (seed, story).
fn shuffle_blocks(x: &Matrix, block: usize, seed: u64, story: &str) -> Matrix {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(story.as_bytes());
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(*hasher.finalize().as_bytes());
    let mut blocks: Vec<usize> = (0..x.rows.div_ceil(block)).collect();
    blocks.shuffle(&mut rng);
    let rows: Vec<usize> = blocks.iter().flat_map(|&b| b * block..((b + 1) * block).min(x.rows)).collect();
    x.select_rows(&rows)
}

fn check_finite(artifact: &MatrixArtifact, what: &str) -> Result<(), StageError> {
    let m = &artifact.matrix;
    if let Some(position) = first_non_finite(&m.data) {
        let (row, col) = (position / m.cols.max(1), position % m.cols.max(1));
        let mut story = String::from("?");
        let mut tr = row;
        for (name, range) in artifact.segment_ranges() {
            if range.contains(&row) {
                story = name;
                tr = row - range.start;
            }
        }
        return Err(StageError::failed(format!(
            "{what}: story `{story}`, TR {tr}, column {col} is {}",
            m.data[position]
        ))
        .with_hint("remove or interpolate NaN/inf values (e.g. voxels outside the brain) before fitting"));
    }
    Ok(())
}

/// Confound columns per story.
fn read_confounds(
    batch: &arrow::array::RecordBatch,
    columns: &[String],
) -> Result<BTreeMap<String, Matrix>, StageError> {
    let story = super::tables::text_column(batch, "story", "the confounds table")?;
    let mut values = Vec::new();
    for name in columns {
        let column = batch.column_by_name(name).ok_or_else(|| {
            StageError::failed(format!("the confounds table has no column `{name}`"))
                .with_hint("set `motion.columns` to the confound names your table has")
        })?;
        let cast = arrow::compute::cast(column, &DataType::Float64)
            .map_err(|_| StageError::failed(format!("confound `{name}` is not numeric")))?;
        values.push(cast.as_primitive::<Float64Type>().clone());
    }
    let mut per_story: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for i in 0..batch.num_rows() {
        let row = per_story.entry(story.value(i).to_string()).or_default();
        for column in &values {
            // fMRIPrep leaves the first framewise displacement empty.
            let v = if column.is_valid(i) { column.value(i) } else { 0.0 };
            row.push(if v.is_finite() { v as f32 } else { 0.0 });
        }
    }
    Ok(per_story
        .into_iter()
        .map(|(k, v)| (k, Matrix::from_vec(v.len() / columns.len().max(1), columns.len(), v)))
        .collect())
}

use arrow::array::Array;

/// Replaces `y` by its residuals after least squares on [1, confounds].
fn regress_out(y: &mut Matrix, confounds: &Matrix) {
    let n = y.rows;
    let k = confounds.cols + 1;
    let design = faer::Mat::<f64>::from_fn(n, k, |i, j| if j == 0 { 1.0 } else { confounds.get(i, j - 1) as f64 });
    let target = faer::Mat::<f64>::from_fn(n, y.cols, |i, j| y.get(i, j) as f64);
    use faer::linalg::solvers::SolveLstsq;
    let qr = design.col_piv_qr();
    let coefficients = qr.solve_lstsq(&target);
    let fitted = &design * &coefficients;
    for i in 0..n {
        for j in 0..y.cols {
            y.set(i, j, (target[(i, j)] - fitted[(i, j)]) as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    /// Moving rows up in place gives what copying them out gives, for random
    /// ascending subsets (empty, all, gaps at either end).
    #[test]
    fn compacting_rows_in_place_equals_selecting_them() {
        let mut rng = fresh_rng("compacting_rows_in_place_equals_selecting_them");
        for case in 0..50 {
            let (rows, cols) = (rng.random_range(0..40), rng.random_range(1..7));
            let m = random_matrix(&mut rng, rows, cols);
            let keep: Vec<usize> = match case {
                0 => Vec::new(),
                1 => (0..rows).collect(),
                _ => (0..rows).filter(|_| rng.random_bool(0.6)).collect(),
            };
            let expected = m.select_rows(&keep);
            assert_eq!(compact_rows(m, &keep), expected, "rows {rows}, kept {keep:?}");
        }
    }
}
