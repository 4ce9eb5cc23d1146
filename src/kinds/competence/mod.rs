//! Linguistic competence of a causal language model, scored by
//! log-probabilities (arXiv 2503.01830's formal and functional competence):
//! `competence.minimal_pairs` (minimal_pairs.rs: the grammatical sentence
//! of each pair preferred by total log-probability, or the SyntaxGym
//! predictions of each item holding) and `competence.facts` (facts.rs: the
//! right attribute ranked first among the candidates). Both run in the
//! worker: the torch side loads the model and implements [`Scorer`]; the
//! scoring itself, the tables and the accuracy are here, the same for every
//! model layout.
//!
//! Params ([`CompetenceParams`]): `model` (a directory, or the input
//! `model`: a train.gpt checkpoint or a Hugging Face directory of a GPT-2,
//! GPT-NeoX or Llama model; BERT is refused: it has no next-token
//! probabilities), `prefix` (`bos`, the default: every text is scored after
//! the model's beginning-of-sequence token, so its first token has a
//! probability too: tokenizer_config.json's `bos_token`, else
//! `<|endoftext|>`, the token train.gpt's documents end with; lm-eval's
//! `prefix_token_id` for an empty context, GPT-2's and Pythia's
//! `<|endoftext|>`. `none`: nothing before the text, and its first token
//! has no probability, as Brain-Score's reading-time surprisal),
//! `batch_tokens` (padded tokens per forward pass; results do not depend on
//! it beyond float rounding) and `device`.
//!
//! Texts are encoded with the model's tokenizer.json as a whole, without
//! special tokens (`add_special_tokens` false); log-probabilities are
//! natural logs of the model's softmax in float32, summed in float64.
//!
//! Outputs: `accuracy` (Parquet: `source` utf8, `suite` utf8 (phenomenon,
//! SyntaxGym suite or relation; `overall` for the last row), `n` int64,
//! `correct` int64, `accuracy` float64; one row per suite in order of
//! first appearance, then `overall` over all items, whose `source` is the
//! stimuli's sources joined by `+`), `items` (per item, see each kind),
//! `summary` (one row: `accuracy` (overall), `n_items`, `correct`,
//! `mean_suite_accuracy` (the mean over suites, Brain-Score's SyntaxGym
//! aggregate), `prefix` (the token used, or empty)). competence.facts adds
//! `correct_norm` and `accuracy_norm` to `accuracy` and `accuracy_norm` to
//! `summary`: lm-eval's `acc_norm`, each choice's log-probability divided
//! by its length in characters.

pub mod facts;
pub mod minimal_pairs;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use serde::{Deserialize, Serialize};

use crate::device::DeviceRequest;
use crate::stage::{ParamError, StageContext, StageError};

/// What every text is scored after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefix {
    /// The model's beginning-of-sequence token (tokenizer_config.json's
    /// `bos_token`, else `<|endoftext|>`).
    #[default]
    Bos,
    /// Nothing: the first token of each text has no probability.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompetenceParams {
    /// The model directory (Hugging Face layout: config.json,
    /// model.safetensors, tokenizer.json), relative to the pipeline file;
    /// or none, with the model as the input `model`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prefix: Prefix,
    /// Padded tokens per forward pass; default 4096 on the CPU, 16384 on CUDA.
    #[serde(default)]
    pub batch_tokens: Option<usize>,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

/// The checks both competence kinds share.
pub(crate) fn validate(params: &CompetenceParams) -> Vec<ParamError> {
    let mut errors = Vec::new();
    if params.batch_tokens == Some(0) {
        errors.push(ParamError::new("batch_tokens", "batch_tokens is 0").hint("leave it out for the default"));
    }
    if let Err((message, hint)) = params.device.validate() {
        errors.push(ParamError::new("device", message).hint(hint));
    }
    errors
}

/// The `model` param or input, not both (as features.lm).
pub(crate) fn model_problems(kind: &str, params: &CompetenceParams, roles: &[&str]) -> Vec<(String, String)> {
    match (&params.model, roles.contains(&"model")) {
        (None, false) => vec![(
            format!("kind `{kind}` needs a model: the param `model` or an input named `model`"),
            "add `inputs: {model: <train.gpt stage>.step<N>}`, or `params: {model: <directory with config.json, model.safetensors, tokenizer.json>}`".into(),
        )],
        (Some(_), true) => vec![(
            format!("{kind} has both the param `model` and an input `model`"),
            "keep one: the param for a model on disk, the input for a checkpoint another stage writes".into(),
        )],
        _ => Vec::new(),
    }
}

/// A causal language model as the competence kinds use it (implemented in
/// crates/voxflow-torch for the models it loads; tests use a table).
pub trait Scorer {
    /// The token ids of `text` (no special tokens added) and each token's
    /// byte range in `text`.
    fn encode(&self, text: &str) -> Result<Vec<(i64, (usize, usize))>, String>;
    /// The token each text is scored after (`prefix: bos`), with its text.
    fn prefix(&self) -> Option<(i64, String)>;
    /// The text of a token, for the tokens table.
    fn token_text(&self, id: i64) -> String;
    /// For each sequence of ids, the natural log-probability of each token
    /// after the first given the ones before it (`len - 1` values).
    /// `progress(done, total)` counts sequences.
    fn log_probs(
        &self,
        sequences: &[Vec<i64>],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Vec<f64>>, String>;
}

/// A text as scored: its tokens, their byte ranges, and each token's
/// natural log-probability (NaN for the first token without a prefix).
#[derive(Debug, Clone)]
pub struct ScoredText {
    pub ids: Vec<i64>,
    pub offsets: Vec<(usize, usize)>,
    pub log_probs: Vec<f64>,
}

impl ScoredText {
    /// The total log-probability of the tokens that have one.
    pub fn total(&self) -> f64 {
        self.log_probs.iter().filter(|v| !v.is_nan()).sum()
    }
}

/// Scores `texts` (each alone, after the prefix if there is one); `what`
/// names the texts in errors (`item 3 (good)`).
pub fn score_texts(
    scorer: &dyn Scorer,
    texts: &[String],
    what: &dyn Fn(usize) -> String,
    ctx: &StageContext,
) -> Result<Vec<ScoredText>, StageError> {
    let prefix = scorer.prefix().map(|(id, _)| id);
    let mut encoded = Vec::with_capacity(texts.len());
    let mut sequences = Vec::with_capacity(texts.len());
    for (k, text) in texts.iter().enumerate() {
        let tokens = scorer
            .encode(text)
            .map_err(|e| StageError::failed(format!("{}: cannot tokenise {text:?}: {e}", what(k))))?;
        if tokens.is_empty() {
            return Err(StageError::failed(format!("{}: {text:?} has no tokens", what(k)))
                .with_hint("every sentence needs at least one token"));
        }
        let mut sequence: Vec<i64> = prefix.into_iter().collect();
        sequence.extend(tokens.iter().map(|(id, _)| *id));
        sequences.push(sequence);
        encoded.push(tokens);
    }
    ctx.progress_unit("texts");
    let log_probs = scorer
        .log_probs(&sequences, &mut |done, total| ctx.progress(done as u64, total as u64))
        .map_err(StageError::failed)?;
    Ok(encoded
        .into_iter()
        .zip(log_probs)
        .map(|(tokens, mut values)| {
            if prefix.is_none() {
                values.insert(0, f64::NAN);
            }
            ScoredText {
                ids: tokens.iter().map(|(id, _)| *id).collect(),
                offsets: tokens.iter().map(|(_, o)| *o).collect(),
                log_probs: values,
            }
        })
        .collect())
}

/// One scored item for the accuracy table.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub source: String,
    pub suite: String,
    pub correct: bool,
    /// Length-normalised correctness (competence.facts only; lm-eval's
    /// `acc_norm`): the right choice ranks first by log-probability divided
    /// by the choice's length in characters.
    pub correct_norm: Option<bool>,
}

/// The `accuracy` table: one row per (source, suite) in order of first
/// appearance, then `overall`.
pub fn accuracy_table(outcomes: &[Outcome]) -> RecordBatch {
    // (source, suite, n, correct, correct_norm)
    let mut groups: Vec<(String, String, i64, i64, i64)> = Vec::new();
    for o in outcomes {
        let norm = i64::from(o.correct_norm == Some(true));
        match groups.iter_mut().find(|g| g.0 == o.source && g.1 == o.suite) {
            Some(g) => {
                g.2 += 1;
                g.3 += i64::from(o.correct);
                g.4 += norm;
            }
            None => groups.push((o.source.clone(), o.suite.clone(), 1, i64::from(o.correct), norm)),
        }
    }
    let mut sources: Vec<&str> = Vec::new();
    for o in outcomes {
        if !sources.contains(&o.source.as_str()) {
            sources.push(&o.source);
        }
    }
    let correct = outcomes.iter().filter(|o| o.correct).count() as i64;
    let correct_norm = outcomes.iter().filter(|o| o.correct_norm == Some(true)).count() as i64;
    groups.push((sources.join("+"), "overall".into(), outcomes.len() as i64, correct, correct_norm));
    let ratio = |k: i64, n: i64| if n == 0 { f64::NAN } else { k as f64 / n as f64 };
    let accuracy: Vec<f64> = groups.iter().map(|g| ratio(g.3, g.2)).collect();
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("source", Arc::new(StringArray::from_iter_values(groups.iter().map(|g| g.0.as_str())))),
        ("suite", Arc::new(StringArray::from_iter_values(groups.iter().map(|g| g.1.as_str())))),
        ("n", Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.2)))),
        ("correct", Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.3)))),
        ("accuracy", Arc::new(Float64Array::from(accuracy))),
    ];
    if outcomes.iter().any(|o| o.correct_norm.is_some()) {
        columns.push(("correct_norm", Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.4)))));
        columns
            .push(("accuracy_norm", Arc::new(Float64Array::from_iter_values(groups.iter().map(|g| ratio(g.4, g.2))))));
    }
    table(columns)
}

/// The one-row `summary`.
pub fn summary_table(outcomes: &[Outcome], prefix: Option<&str>) -> RecordBatch {
    let accuracy = accuracy_table(outcomes);
    let rows = accuracy.num_rows();
    let values = accuracy.column(4).as_primitive::<arrow::datatypes::Float64Type>();
    let suites: Vec<f64> = (0..rows - 1).map(|r| values.value(r)).collect();
    let mean_suite = if suites.is_empty() { f64::NAN } else { suites.iter().sum::<f64>() / suites.len() as f64 };
    let n = outcomes.len() as i64;
    let correct = outcomes.iter().filter(|o| o.correct).count() as i64;
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("accuracy", Arc::new(Float64Array::from(vec![values.value(rows - 1)]))),
        ("n_items", Arc::new(Int64Array::from(vec![n]))),
        ("correct", Arc::new(Int64Array::from(vec![correct]))),
        ("mean_suite_accuracy", Arc::new(Float64Array::from(vec![mean_suite]))),
        ("prefix", Arc::new(StringArray::from(vec![prefix.unwrap_or("")]))),
    ];
    if let Ok(index) = accuracy.schema().index_of("accuracy_norm") {
        let norm = accuracy.column(index).as_primitive::<arrow::datatypes::Float64Type>();
        columns.push(("accuracy_norm", Arc::new(Float64Array::from(vec![norm.value(rows - 1)]))));
    }
    table(columns)
}

/// A table of named columns (nullable where the array has nulls).
pub fn table(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), array.null_count() > 0))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns of one length")
}

/// Reads the stimulus tables: a column by name, cast, without nulls.
pub(crate) struct StimulusColumns<'a> {
    pub table: &'a RecordBatch,
    pub stage: &'a str,
    pub kind: &'a str,
    pub hint: &'a str,
}

impl StimulusColumns<'_> {
    fn fail(&self, what: String) -> StageError {
        StageError::failed(format!("{}: the stimuli of `{}`: {what}", self.kind, self.stage))
            .with_hint(self.hint.to_string())
    }

    pub fn has(&self, name: &str) -> bool {
        self.table.column_by_name(name).is_some()
    }

    pub fn names(&self) -> String {
        self.table.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
    }

    fn column(&self, name: &str, to: &DataType) -> Result<ArrayRef, StageError> {
        let column = self
            .table
            .column_by_name(name)
            .ok_or_else(|| self.fail(format!("no column `{name}` (it has {})", self.names())))?;
        let cast = arrow::compute::cast(column, to)
            .map_err(|e| self.fail(format!("column `{name}` ({}): {e}", column.data_type())))?;
        if cast.null_count() > 0 {
            return Err(self.fail(format!("column `{name}` has missing values")));
        }
        Ok(cast)
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, StageError> {
        let column = self.column(name, &DataType::Utf8)?;
        Ok(column.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect())
    }

    pub fn u32s(&self, name: &str) -> Result<Vec<u32>, StageError> {
        Ok(self.column(name, &DataType::UInt32)?.as_primitive::<UInt32Type>().values().to_vec())
    }

    pub fn i64s(&self, name: &str) -> Result<Vec<i64>, StageError> {
        Ok(self.column(name, &DataType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec())
    }

    pub fn string_lists(&self, name: &str) -> Result<Vec<Vec<String>>, StageError> {
        let column = self
            .table
            .column_by_name(name)
            .ok_or_else(|| self.fail(format!("no column `{name}` (it has {})", self.names())))?;
        let list = column
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| self.fail(format!("column `{name}` is {}, not a list of strings", column.data_type())))?;
        let mut out = Vec::with_capacity(list.len());
        for row in 0..list.len() {
            if list.is_null(row) {
                return Err(self.fail(format!("column `{name}` has a missing value in row {row}")));
            }
            let values = arrow::compute::cast(&list.value(row), &DataType::Utf8)
                .map_err(|e| self.fail(format!("column `{name}`: {e}")))?;
            out.push(values.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect());
        }
        Ok(out)
    }
}

/// A list<utf8> column.
pub fn string_list_column(rows: &[Vec<String>]) -> ArrayRef {
    let mut builder = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    for row in rows {
        for value in row {
            builder.values().append_value(value);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

/// A uint32 column of 0..n.
pub fn item_column(n: usize) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(0..n as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_rows_per_suite_then_overall() {
        let o = |source: &str, suite: &str, correct| Outcome {
            source: source.into(),
            suite: suite.into(),
            correct,
            correct_norm: None,
        };
        let outcomes =
            vec![o("grammar", "b", true), o("grammar", "a", false), o("grammar", "b", false), o("blimp", "a", true)];
        let t = accuracy_table(&outcomes);
        let s = |c: usize| t.column(c).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(s(0), ["grammar", "grammar", "blimp", "grammar+blimp"]);
        assert_eq!(s(1), ["b", "a", "a", "overall"]);
        let acc = t.column(4).as_primitive::<arrow::datatypes::Float64Type>().values().to_vec();
        assert_eq!(acc, vec![0.5, 0.0, 1.0, 0.5]);
        let summary = summary_table(&outcomes, Some("<|endoftext|>"));
        let mean = summary.column(3).as_primitive::<arrow::datatypes::Float64Type>().value(0);
        assert!((mean - 0.5).abs() < 1e-12);
    }
}
