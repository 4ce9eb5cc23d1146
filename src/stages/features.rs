//! Feature stages. Word-level features have one row per word of the `words`
//! table (segments = stories, metadata `level = word`) and go through
//! `downsample`; TR-level features (`level = tr`) go straight to `lag`.
//!
//! - `features.word_rate`: a column of ones per word (its downsampled sum is
//!   the number of words in each TR).
//! - `features.random_embedding`: each word mapped to a fixed random vector
//!   drawn from a generator seeded by BLAKE3(seed, word): a content-free
//!   lexical control, identical for the same word everywhere. `synth.stories`
//!   builds its ground truth from the same vectors.
//! - `features.temporal_baseline`: LITcoder's exponential-correlation control,
//!   at TR level.
//! - `features.from_table`: word- or TR-level vectors a user brings (for
//!   example from their own script through a `command` stage).

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tables::{self, StoryWords};
use super::{checked, parse_params, typed_params, ParamError, Stage, StageContext, StageError};
use crate::artifact::{MatrixArtifact, Segment};
use crate::numeric::{signal, Matrix};

/// The random embedding of `word`: `dim` standard normal values from a
/// ChaCha8 generator seeded by BLAKE3 of (seed, word).
pub fn random_embedding(word: &str, dim: usize, seed: u64) -> Vec<f32> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(word.as_bytes());
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(*hasher.finalize().as_bytes());
    (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// A word-level matrix with one row per word, segments = stories.
pub fn word_level(stories: &[StoryWords], cols: usize, mut row: impl FnMut(&str) -> Vec<f32>) -> MatrixArtifact {
    let mut data = Vec::new();
    let mut segments = Vec::new();
    for story in stories {
        for word in &story.words {
            data.extend(row(&word.word));
        }
        segments.push(Segment { name: story.story.clone(), rows: story.words.len() });
    }
    let rows = data.len() / cols.max(1);
    let mut artifact = MatrixArtifact::with_segments(Matrix::from_vec(rows, cols, data), segments);
    artifact.metadata.insert("level".into(), "word".into());
    artifact
}

fn read_words(ctx: &StageContext) -> Result<Vec<StoryWords>, StageError> {
    tables::words_from_batch(&ctx.input_table("words")?)
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WordRateParams {}

pub struct WordRate;

impl Stage for WordRate {
    fn kind(&self) -> &'static str {
        "features.word_rate"
    }
    fn version(&self) -> u32 {
        1
    }
    fn summary(&self) -> &'static str {
        "word rate: a column of ones per word (downsample with sum for words per TR)"
    }
    fn required_inputs(&self, _params: &Value) -> Vec<&'static str> {
        vec!["words"]
    }
    fn outputs(&self, _params: &Value) -> Vec<String> {
        vec!["features".into()]
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        parse_params::<WordRateParams>(params).map(|(_, v)| v)
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let words = read_words(ctx)?;
        let mut artifact = word_level(&words, 1, |_| vec![1.0]);
        artifact.metadata.insert("columns".into(), "[\"word_rate\"]".into());
        ctx.write_matrix("features", &artifact)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomEmbeddingParams {
    #[serde(default = "default_dim")]
    pub dim: usize,
    #[serde(default)]
    pub seed: u64,
    /// Lower-case words before hashing.
    #[serde(default = "yes")]
    pub lowercase: bool,
}

fn default_dim() -> usize {
    16
}
fn yes() -> bool {
    true
}

pub struct RandomEmbedding;

impl Stage for RandomEmbedding {
    fn kind(&self) -> &'static str {
        "features.random_embedding"
    }
    fn version(&self) -> u32 {
        1
    }
    fn summary(&self) -> &'static str {
        "a fixed random vector per word (hash of its text): a content-free lexical control"
    }
    fn required_inputs(&self, _params: &Value) -> Vec<&'static str> {
        vec!["words"]
    }
    fn outputs(&self, _params: &Value) -> Vec<String> {
        vec!["features".into()]
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let (parsed, canonical) = parse_params::<RandomEmbeddingParams>(params)?;
        if parsed.dim == 0 || parsed.dim > 100_000 {
            return Err(vec![ParamError::new("dim", format!("dim must be between 1 and 100000, got {}", parsed.dim))]);
        }
        Ok(canonical)
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let params: RandomEmbeddingParams = typed_params(ctx.params)?;
        let words = read_words(ctx)?;
        let mut cache: HashMap<String, Vec<f32>> = HashMap::new();
        let artifact = word_level(&words, params.dim, |word| {
            let key = if params.lowercase { word.to_lowercase() } else { word.to_string() };
            cache.entry(key.clone()).or_insert_with(|| random_embedding(&key, params.dim, params.seed)).clone()
        });
        ctx.write_matrix("features", &artifact)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalBaselineParams {
    #[serde(default = "default_dim")]
    pub n_features: usize,
    /// Correlation length in TRs: corr(row i, row j) = exp(-|i - j| / length_scale).
    #[serde(default = "default_length_scale")]
    pub length_scale: f64,
}

fn default_length_scale() -> f64 {
    10.0
}

pub struct TemporalBaseline;

impl Stage for TemporalBaseline {
    fn kind(&self) -> &'static str {
        "features.temporal_baseline"
    }
    fn version(&self) -> u32 {
        1
    }
    fn summary(&self) -> &'static str {
        "LITcoder's temporal baseline: TR-level features whose correlation decays exponentially with distance"
    }
    fn required_inputs(&self, _params: &Value) -> Vec<&'static str> {
        vec!["trs"]
    }
    fn outputs(&self, _params: &Value) -> Vec<String> {
        vec!["features".into()]
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let (parsed, canonical) = parse_params::<TemporalBaselineParams>(params)?;
        let mut errors = Vec::new();
        if parsed.n_features == 0 {
            errors.push(ParamError::new("n_features", "n_features must be at least 1"));
        }
        if !(parsed.length_scale.is_finite() && parsed.length_scale > 0.0) {
            errors.push(ParamError::new("length_scale", "length_scale must be a positive number of TRs"));
        }
        checked(canonical, errors)
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let params: TemporalBaselineParams = typed_params(ctx.params)?;
        let grid = tables::grid_from_batch(&ctx.input_table("trs")?)?;
        let lengths: Vec<usize> = grid.stories.iter().map(|s| s.times.len()).collect();
        let matrix = signal::temporal_baseline(&lengths, params.n_features, params.length_scale, 0)
            .map_err(|e| StageError::failed(e.to_string()))?;
        let segments = grid.stories.iter().map(|s| Segment { name: s.story.clone(), rows: s.times.len() }).collect();
        let mut artifact = MatrixArtifact::with_segments(matrix, segments);
        artifact.metadata.insert("level".into(), "tr".into());
        ctx.write_matrix("features", &artifact)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromTableParams {
    /// Feature columns; empty means every numeric column except story/tr/onset/offset.
    #[serde(default)]
    pub columns: Vec<String>,
    /// `word`: one row per word of the `words` input, in order; `tr`: one row per TR of the `trs` input.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "word".into()
}

pub struct FromTable;

impl Stage for FromTable {
    fn kind(&self) -> &'static str {
        "features.from_table"
    }
    fn version(&self) -> u32 {
        1
    }
    fn summary(&self) -> &'static str {
        "word- or TR-level feature vectors from a table the user brings (story column + numeric columns)"
    }
    fn required_inputs(&self, _params: &Value) -> Vec<&'static str> {
        vec!["table"]
    }
    fn outputs(&self, _params: &Value) -> Vec<String> {
        vec!["features".into()]
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let (parsed, canonical) = parse_params::<FromTableParams>(params)?;
        if parsed.level != "word" && parsed.level != "tr" {
            return Err(vec![ParamError::new(
                "level",
                format!("level must be `word` or `tr`, got `{}`", parsed.level),
            )]);
        }
        Ok(canonical)
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let params: FromTableParams = typed_params(ctx.params)?;
        let table = ctx.input_table("table")?;
        let story = tables::text_column(&table, "story", "the feature table")?;
        let reserved = ["story", "tr", "onset", "offset", "word", "time"];
        let columns: Vec<String> = if params.columns.is_empty() {
            // pandas stores a non-default index as `__index_level_N__`.
            table
                .schema()
                .fields()
                .iter()
                .filter(|f| {
                    f.data_type().is_numeric()
                        && !reserved.contains(&f.name().as_str())
                        && !f.name().starts_with("__index_level_")
                })
                .map(|f| f.name().clone())
                .collect()
        } else {
            params.columns.clone()
        };
        if columns.is_empty() {
            return Err(StageError::failed("the feature table has no numeric feature columns"));
        }
        let mut values = Vec::new();
        for name in &columns {
            let column = table
                .column_by_name(name)
                .ok_or_else(|| StageError::failed(format!("the feature table has no column `{name}`")))?;
            let cast = arrow::compute::cast(column, &DataType::Float64)
                .map_err(|_| StageError::failed(format!("column `{name}` is not numeric")))?;
            values.push(cast.as_primitive::<Float64Type>().clone());
        }
        let rows = table.num_rows();
        let mut data = Vec::with_capacity(rows * columns.len());
        for i in 0..rows {
            for (c, column) in values.iter().enumerate() {
                if column.is_null(i) || !column.value(i).is_finite() {
                    return Err(StageError::failed(format!(
                        "feature table row {i}, column `{}`: missing or non-finite value",
                        columns[c]
                    )));
                }
                data.push(column.value(i) as f32);
            }
        }
        let segments = tables::story_segments(&story, "the feature table")?;
        // Check the rows line up with the words or TRs they describe.
        let expected: Vec<(String, usize)> = if params.level == "word" {
            match ctx.has_input("words") {
                true => read_words(ctx)?.into_iter().map(|s| (s.story, s.words.len())).collect(),
                false => Vec::new(),
            }
        } else if ctx.has_input("trs") {
            tables::grid_from_batch(&ctx.input_table("trs")?)?
                .stories
                .into_iter()
                .map(|s| (s.story, s.times.len()))
                .collect()
        } else {
            Vec::new()
        };
        for (name, count) in &expected {
            let have = segments.iter().find(|s| &s.name == name).map(|s| s.rows).unwrap_or(0);
            if have != *count {
                return Err(StageError::failed(format!(
                    "story `{name}`: the feature table has {have} rows but there are {count} {}s",
                    params.level
                )));
            }
        }
        let mut artifact = MatrixArtifact::with_segments(Matrix::from_vec(rows, columns.len(), data), segments);
        artifact.metadata.insert("level".into(), params.level.clone());
        artifact.metadata.insert("columns".into(), serde_json::to_string(&columns).expect("names"));
        ctx.write_matrix("features", &artifact)
    }
}
