//! `downsample`: word-level features -> TR-level features, per story, with
//! one of LITcoder's methods (rect, average, sum, last, lanczos, sinc). The
//! kernels are in `numeric::signal`; Lanczos follows Huth's lanczosinterp2D:
//! `L(t) = w sin(pi t) sin(pi t / w) / (pi^2 t^2)`, `cutoff = cutoff_mult / TR`.

use serde::{Deserialize, Serialize};

use crate::artifact::{MatrixArtifact, Segment};
use crate::kinds::tables::{self, WordTime};
use crate::numeric::signal::{self, DownsampleMethod};
use crate::numeric::Matrix;
use crate::stage::{param, Kind, ParamDoc, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownsampleParams {
    #[serde(default)]
    pub method: Method,
    /// Lobes of the lanczos/sinc kernel.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Kernel cutoff as a multiple of 1/TR.
    #[serde(default = "default_cutoff")]
    pub cutoff_mult: f64,
    /// Which time stands for a word.
    #[serde(default)]
    pub word_time: WordTime,
}

/// LITcoder's downsampling methods; lanczos by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Rect,
    Average,
    Sum,
    Last,
    #[default]
    Lanczos,
    Sinc,
}

impl Method {
    /// The name as written in params (and in the output's metadata).
    fn name(self) -> &'static str {
        match self {
            Method::Rect => "rect",
            Method::Average => "average",
            Method::Sum => "sum",
            Method::Last => "last",
            Method::Lanczos => "lanczos",
            Method::Sinc => "sinc",
        }
    }
}

fn default_window() -> usize {
    3
}
fn default_cutoff() -> f64 {
    1.0
}

impl DownsampleParams {
    fn method(&self) -> DownsampleMethod {
        let (window, cutoff_mult) = (self.window, self.cutoff_mult);
        match self.method {
            Method::Rect => DownsampleMethod::Rect,
            Method::Average => DownsampleMethod::Average,
            Method::Sum => DownsampleMethod::Sum,
            Method::Last => DownsampleMethod::Last,
            Method::Sinc => DownsampleMethod::Sinc { window, cutoff_mult },
            Method::Lanczos => DownsampleMethod::Lanczos { window, cutoff_mult },
        }
    }
}

pub struct Downsample;

impl Kind for Downsample {
    type Params = DownsampleParams;
    const NAME: &'static str = "downsample";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "word-level features to the TR grid (rect, average, sum, last, lanczos, sinc), per story";
    const INPUTS: &'static [&'static str] = &["features", "words", "trs"];
    const PARAM_DOCS: &'static [ParamDoc] = &[
        param("method", "rect | average | sum | last | lanczos | sinc", "how the words of a TR become its row"),
        param("window", "integer", "lobes of the lanczos/sinc kernel"),
        param("cutoff_mult", "number", "kernel cutoff as a multiple of 1/TR"),
        param("word_time", "midpoint | onset | offset", "which time stands for a word"),
    ];
    const OUTPUTS: &'static [&'static str] = &["features"];

    fn validate(&self, params: &DownsampleParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if params.window == 0 {
            errors.push(ParamError::new("window", "window must be at least 1"));
        }
        if !(params.cutoff_mult.is_finite() && params.cutoff_mult > 0.0) {
            errors.push(ParamError::new("cutoff_mult", "cutoff_mult must be positive"));
        }
        errors
    }
    fn run(&self, params: &DownsampleParams, ctx: &mut StageContext) -> Result<(), StageError> {
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
            let times: Vec<f64> = story_words.words.iter().map(|w| params.word_time.of(w)).collect();
            // Words more than a TR after the last TR reach no TR. A story's
            // responses are often trimmed at the end, so this is a warning
            // (kept in the manifest, shown by `run`), not an error.
            if let Some(&last_tr) = trs.times.last() {
                let past = times.iter().filter(|&&t| t > last_tr + grid.tr_seconds).count();
                if past > 0 {
                    let last_word = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    ctx.warn(format!(
                        "story `{story}`: {past} of {} words ({:.0}%) come more than one TR after its last TR \
                         ({} TRs, the last at {last_tr:.1} s; the last word at {last_word:.1} s): do the responses \
                         and the word timings belong together?",
                        times.len(),
                        100.0 * past as f64 / times.len() as f64,
                        trs.times.len()
                    ));
                }
            }
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
        artifact.metadata.insert("downsample".into(), params.method.name().into());
        ctx.write_matrix("features", &artifact)
    }
}
