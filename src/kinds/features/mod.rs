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

pub mod lm;

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::artifact::{MatrixArtifact, Segment};
use crate::kinds::tables::{self, StoryWords};
use crate::numeric::{signal, Matrix};
use crate::stage::{Kind, ParamError, StageContext, StageError};

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

impl Kind for WordRate {
    type Params = WordRateParams;
    const NAME: &'static str = "features.word_rate";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "word rate: a column of ones per word (downsample with sum for words per TR)";
    const INPUTS: &'static [&'static str] = &["words"];
    const OUTPUTS: &'static [&'static str] = &["features"];

    fn run(&self, _params: &WordRateParams, ctx: &mut StageContext) -> Result<(), StageError> {
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

impl Kind for RandomEmbedding {
    type Params = RandomEmbeddingParams;
    const NAME: &'static str = "features.random_embedding";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "a fixed random vector per word (hash of its text): a content-free lexical control";
    const INPUTS: &'static [&'static str] = &["words"];
    const OUTPUTS: &'static [&'static str] = &["features"];

    fn validate(&self, params: &RandomEmbeddingParams) -> Vec<ParamError> {
        if params.dim == 0 || params.dim > 100_000 {
            return vec![ParamError::new("dim", format!("dim must be between 1 and 100000, got {}", params.dim))];
        }
        Vec::new()
    }
    fn run(&self, params: &RandomEmbeddingParams, ctx: &mut StageContext) -> Result<(), StageError> {
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

impl Kind for TemporalBaseline {
    type Params = TemporalBaselineParams;
    const NAME: &'static str = "features.temporal_baseline";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "LITcoder's temporal baseline: TR-level features whose correlation decays exponentially with distance";
    const INPUTS: &'static [&'static str] = &["trs"];
    const OUTPUTS: &'static [&'static str] = &["features"];

    fn validate(&self, params: &TemporalBaselineParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if params.n_features == 0 {
            errors.push(ParamError::new("n_features", "n_features must be at least 1"));
        }
        if !(params.length_scale.is_finite() && params.length_scale > 0.0) {
            errors.push(ParamError::new("length_scale", "length_scale must be a positive number of TRs"));
        }
        errors
    }
    fn run(&self, params: &TemporalBaselineParams, ctx: &mut StageContext) -> Result<(), StageError> {
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
    #[serde(default)]
    pub level: Level,
}

/// What a row of a feature table stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One row per word of the `words` input, in order.
    #[default]
    Word,
    /// One row per TR of the `trs` input.
    Tr,
}

impl Level {
    /// The name as written in params and in the `level` metadata.
    pub fn name(self) -> &'static str {
        match self {
            Level::Word => "word",
            Level::Tr => "tr",
        }
    }
}

pub struct FromTable;

impl Kind for FromTable {
    type Params = FromTableParams;
    const NAME: &'static str = "features.from_table";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "word- or TR-level feature vectors from a table the user brings (story column + numeric columns)";
    const INPUTS: &'static [&'static str] = &["table"];
    const OUTPUTS: &'static [&'static str] = &["features"];

    fn run(&self, params: &FromTableParams, ctx: &mut StageContext) -> Result<(), StageError> {
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
        let expected: Vec<(String, usize)> = match params.level {
            Level::Word if ctx.has_input("words") => {
                read_words(ctx)?.into_iter().map(|s| (s.story, s.words.len())).collect()
            }
            Level::Tr if ctx.has_input("trs") => tables::grid_from_batch(&ctx.input_table("trs")?)?
                .stories
                .into_iter()
                .map(|s| (s.story, s.times.len()))
                .collect(),
            Level::Word | Level::Tr => Vec::new(),
        };
        for (name, count) in &expected {
            let have = segments.iter().find(|s| &s.name == name).map(|s| s.rows).unwrap_or(0);
            if have != *count {
                return Err(StageError::failed(format!(
                    "story `{name}`: the feature table has {have} rows but there are {count} {}s",
                    params.level.name()
                )));
            }
        }
        let mut artifact = MatrixArtifact::with_segments(Matrix::from_vec(rows, columns.len(), data), segments);
        artifact.metadata.insert("level".into(), params.level.name().into());
        artifact.metadata.insert("columns".into(), serde_json::to_string(&columns).expect("names"));
        ctx.write_matrix("features", &artifact)
    }
}
