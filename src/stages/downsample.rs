//! `downsample`: word-level features -> TR-level features, per story, with
//! one of LITcoder's methods (rect, average, sum, last, lanczos, sinc). The
//! kernels are in `numeric::signal`; Lanczos follows Huth's lanczosinterp2D:
//! `L(t) = w sin(pi t) sin(pi t / w) / (pi^2 t^2)`, `cutoff = cutoff_mult / TR`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tables::{self};
use super::{checked, parse_params, typed_params, ParamError, Stage, StageContext, StageError};
use crate::artifact::{MatrixArtifact, Segment};
use crate::numeric::signal::{self, DownsampleMethod};
use crate::numeric::Matrix;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownsampleParams {
    /// rect, average, sum, last, lanczos or sinc.
    #[serde(default = "default_method")]
    pub method: String,
    /// Lobes of the lanczos/sinc kernel.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Kernel cutoff as a multiple of 1/TR.
    #[serde(default = "default_cutoff")]
    pub cutoff_mult: f64,
    /// Which time stands for a word: midpoint, onset or offset.
    #[serde(default = "default_word_time")]
    pub word_time: String,
}

fn default_method() -> String {
    "lanczos".into()
}
fn default_window() -> usize {
    3
}
fn default_cutoff() -> f64 {
    1.0
}
fn default_word_time() -> String {
    "midpoint".into()
}

const METHODS: &[&str] = &["rect", "average", "sum", "last", "lanczos", "sinc"];

impl DownsampleParams {
    fn method(&self) -> DownsampleMethod {
        match self.method.as_str() {
            "rect" => DownsampleMethod::Rect,
            "average" => DownsampleMethod::Average,
            "sum" => DownsampleMethod::Sum,
            "last" => DownsampleMethod::Last,
            "sinc" => DownsampleMethod::Sinc { window: self.window, cutoff_mult: self.cutoff_mult },
            _ => DownsampleMethod::Lanczos { window: self.window, cutoff_mult: self.cutoff_mult },
        }
    }
}

pub struct Downsample;

impl Stage for Downsample {
    fn kind(&self) -> &'static str {
        "downsample"
    }
    fn version(&self) -> u32 {
        1
    }
    fn summary(&self) -> &'static str {
        "word-level features to the TR grid (rect, average, sum, last, lanczos, sinc), per story"
    }
    fn required_inputs(&self, _params: &Value) -> Vec<&'static str> {
        vec!["features", "words", "trs"]
    }
    fn outputs(&self, _params: &Value) -> Vec<String> {
        vec!["features".into()]
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let (parsed, canonical) = parse_params::<DownsampleParams>(params)?;
        let mut errors = Vec::new();
        if !METHODS.contains(&parsed.method.as_str()) {
            let hint = crate::spec::nearest(&parsed.method, METHODS.iter().copied())
                .map(|n| format!("did you mean `{n}`?"))
                .unwrap_or_else(|| format!("methods: {}", METHODS.join(", ")));
            errors.push(ParamError::new("method", format!("unknown method `{}`", parsed.method)).hint(hint));
        }
        if parsed.window == 0 {
            errors.push(ParamError::new("window", "window must be at least 1"));
        }
        if !(parsed.cutoff_mult.is_finite() && parsed.cutoff_mult > 0.0) {
            errors.push(ParamError::new("cutoff_mult", "cutoff_mult must be positive"));
        }
        if !["midpoint", "onset", "offset"].contains(&parsed.word_time.as_str()) {
            errors.push(ParamError::new("word_time", "word_time must be midpoint, onset or offset"));
        }
        checked(canonical, errors)
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let params: DownsampleParams = typed_params(ctx.params)?;
        let features = ctx.input_matrix("features")?;
        if features.metadata.get("level").map(String::as_str) == Some("tr") {
            return Err(StageError::failed("these features are already at TR level")
                .with_hint("connect TR-level features (e.g. features.temporal_baseline) straight to `lag`"));
        }
        let words = tables::words_from_batch(&ctx.input_table("words")?)?;
        let grid = tables::grid_from_batch(&ctx.input_table("trs")?)?;
        let method = params.method();
        let mut parts = Vec::new();
        let mut segments = Vec::new();
        let ranges = features.segment_ranges();
        // The TR grid decides which stories come out; features may cover more.
        for trs in &grid.stories {
            let story = trs.story.clone();
            let story_words = words
                .iter()
                .find(|s| s.story == story)
                .ok_or_else(|| tables::story_without_words(&story, words.iter().map(|s| s.story.as_str())))?;
            let (_, range) = ranges.iter().find(|(name, _)| *name == story).cloned().ok_or_else(|| {
                StageError::failed(format!("story `{story}` has words but no rows in the features"))
                    .with_hint("the features must come from the same words as the `words` input")
            })?;
            if story_words.words.len() != range.len() {
                return Err(StageError::failed(format!(
                    "story `{story}`: {} feature rows but {} words",
                    range.len(),
                    story_words.words.len()
                ))
                .with_hint("features and words must come from the same word table"));
            }
            let times: Vec<f64> = story_words
                .words
                .iter()
                .map(|w| match params.word_time.as_str() {
                    "onset" => w.onset,
                    "offset" => w.offset,
                    _ => 0.5 * (w.onset + w.offset),
                })
                .collect();
            let values = features.matrix.select_rows(&range.collect::<Vec<_>>());
            let out = signal::downsample(&values, &times, &trs.times, grid.tr_seconds, &method)
                .map_err(|e| StageError::failed(format!("story `{story}`: {e}")))?;
            segments.push(Segment { name: story.clone(), rows: out.rows });
            parts.push(out);
            ctx.check_cancelled()?;
        }
        let refs: Vec<&Matrix> = parts.iter().collect();
        let mut artifact = MatrixArtifact::with_segments(Matrix::vstack(&refs), segments);
        artifact.metadata = features.metadata.clone();
        artifact.metadata.insert("level".into(), "tr".into());
        artifact.metadata.insert("downsample".into(), params.method.clone());
        ctx.write_matrix("features", &artifact)
    }
}
