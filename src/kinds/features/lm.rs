//! `features.lm`: hidden states of a transformer language model per word
//! (pool `last` or `mean`) or per TR (pool `tr`: the mean over every token
//! whose word falls in the TR, LITcoder's finding that all tokens of a TR
//! beat the last one). One output per layer, `layer<N>` (0 = embeddings).
//!
//! Params: `model` (a directory with config.json, model.safetensors,
//! tokenizer.json; hashed by content), `layers`, `context` (fullcontext,
//! nocontext, halfcontext; see `lm::windows` for the exact definition),
//! `lookback` (tokens), `pool`, `word_time` (for `pool: tr`),
//! `batch_tokens` (padded tokens per forward pass), `device`.
//!
//! Needs the `torch` cargo feature (on by default); without it the kind
//! still exists so that validation can say what is missing.

use serde::{Deserialize, Serialize};

use crate::device::DeviceRequest;
use crate::kinds::tables::WordTime;
use crate::lm::windows::ContextMode;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmParams {
    /// The model directory (Hugging Face layout), relative to the pipeline file.
    pub model: String,
    pub layers: Vec<usize>,
    #[serde(default)]
    pub context: Context,
    #[serde(default = "default_lookback")]
    pub lookback: usize,
    #[serde(default)]
    pub pool: Pooling,
    #[serde(default)]
    pub word_time: WordTime,
    /// Padded tokens per forward pass; default 2048 on the CPU (larger
    /// batches of long windows run slower there) and 16384 on CUDA.
    #[serde(default)]
    pub batch_tokens: Option<usize>,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

/// How much context precedes each word (`lm::windows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    #[default]
    FullContext,
    NoContext,
    HalfContext,
}

impl From<Context> for ContextMode {
    fn from(context: Context) -> ContextMode {
        match context {
            Context::FullContext => ContextMode::Full,
            Context::NoContext => ContextMode::None,
            Context::HalfContext => ContextMode::Half,
        }
    }
}

/// How tokens become rows: the word's last token, the mean of the word's
/// tokens, or the mean of every token in a TR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Last,
    Mean,
    Tr,
}

fn default_lookback() -> usize {
    128
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct FeaturesLm;

impl Kind for FeaturesLm {
    type Params = LmParams;
    const NAME: &'static str = "features.lm";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "language-model hidden states per word or per TR (BERT or GPT-2 layout, libtorch, CPU or CUDA)";
    const INPUTS: &'static [&'static str] = &["words"];

    fn required_inputs(&self, params: &LmParams) -> Vec<&'static str> {
        // pool: tr averages the tokens of each TR of the `trs` grid.
        match params.pool {
            Pooling::Tr => vec!["words", "trs"],
            Pooling::Last | Pooling::Mean => vec!["words"],
        }
    }
    fn outputs(&self, params: &LmParams) -> Vec<String> {
        params.layers.iter().map(|l| format!("layer{l}")).collect()
    }
    fn file_params(&self, params: &LmParams) -> Vec<(String, String)> {
        vec![("model".to_string(), params.model.clone())]
    }
    fn wants_gpu(&self, params: &LmParams) -> bool {
        params.device.wants_gpu()
    }
    fn validate(&self, p: &LmParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if !cfg!(feature = "torch") {
            errors.push(
                ParamError::new(
                    "",
                    "features.lm needs libtorch, and this voxflow was built without the `torch` feature",
                )
                .hint("build with the default features (`cargo build --release`, after scripts/setup-python.sh)"),
            );
        }
        if p.layers.is_empty() {
            errors.push(ParamError::new("layers", "give at least one layer (0 = embeddings)"));
        }
        let mut sorted = p.layers.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != p.layers.len() {
            errors.push(ParamError::new("layers", "a layer is listed twice"));
        }
        if p.lookback < 2 {
            errors.push(ParamError::new("lookback", "lookback must be at least 2 tokens"));
        }
        if p.batch_tokens == Some(0) {
            errors.push(ParamError::new("batch_tokens", "batch_tokens must be positive"));
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &LmParams, ctx: &mut StageContext) -> Result<(), StageError> {
        #[cfg(feature = "torch")]
        {
            torch::run(params, ctx)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (params, ctx);
            Err(StageError::failed("features.lm needs the `torch` feature")
                .with_hint("build with the default features"))
        }
    }
}

#[cfg(feature = "torch")]
mod torch {
    use super::*;
    use crate::artifact::{MatrixArtifact, Segment};
    use crate::kinds::tables;
    use crate::lm::extract::{extract_story, ExtractOptions, Pool, Strategy};
    use crate::lm::model::LanguageModel;
    use crate::numeric::{signal, Matrix};

    pub fn run(p: &LmParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::device::init_torch();
        // A CUDA device asked for by name was checked at validation.
        let device = p.device.resolve(ctx.device);
        ctx.device = device;
        tch::set_num_threads(ctx.threads.max(1) as i32);
        let dir = ctx.resolve(&p.model);
        let fix = "point `model:` at a directory with config.json, model.safetensors and tokenizer.json";
        let model = LanguageModel::load(&dir, device.into())
            .map_err(|e| StageError::failed(format!("model {}: {e}", dir.display())).with_hint(fix))?;
        let pool = match p.pool {
            Pooling::Last => Pool::Last,
            Pooling::Mean => Pool::Mean,
            Pooling::Tr => Pool::Tokens,
        };
        let options = ExtractOptions {
            layers: p.layers.clone(),
            mode: p.context.into(),
            lookback: p.lookback,
            pool,
            batch_tokens: p.batch_tokens.unwrap_or(if device == crate::device::Device::Cpu { 2048 } else { 16384 }),
            strategy: Strategy::Shared,
        };
        crate::lm::extract::check_options(&model, &options).map_err(|e| StageError::failed(e.to_string()))?;
        let words = tables::words_from_batch(&ctx.input_table("words")?)?;
        let grid = if pool == Pool::Tokens {
            if !ctx.has_input("trs") {
                return Err(StageError::failed("`pool: tr` needs the TR grid")
                    .with_hint("add `trs: <align.trs stage>` to the inputs, or use pool: last or mean"));
            }
            Some(tables::grid_from_batch(&ctx.input_table("trs")?)?)
        } else {
            None
        };

        let hidden = model.config.hidden;
        let mut per_layer: Vec<Vec<Matrix>> = p.layers.iter().map(|_| Vec::new()).collect();
        let mut segments = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let mut empty_words = 0usize;
        let (mut passes, mut tokens, mut processed) = (0usize, 0usize, 0usize);
        let total_stories = words.len() as u64;
        for (done, story) in words.iter().enumerate() {
            let texts: Vec<&str> = story.words.iter().map(|w| w.word.as_str()).collect();
            let tokenized = model
                .tokenize_words(&texts)
                .map_err(|e| StageError::failed(format!("story `{}`: {e}", story.story)))?;
            unknown.extend(tokenized.unknown_words.iter().cloned());
            empty_words += tokenized.spans.iter().filter(|s| s.is_empty()).count();
            // Progress in thousandths of the stories, updated after every forward pass.
            let states = extract_story(&model, &tokenized, &options, |pass, passes| {
                ctx.progress(done as u64 * 1000 + (pass * 1000 / passes.max(1)) as u64, total_stories * 1000)
            })
            .map_err(|e| StageError::failed(format!("story `{}`: {e}", story.story)))?;
            passes += states.passes;
            tokens += tokenized.ids.len();
            processed += states.tokens_processed;
            match &grid {
                None => {
                    segments.push(Segment { name: story.story.clone(), rows: story.words.len() });
                    for (out, m) in per_layer.iter_mut().zip(states.layers) {
                        out.push(m);
                    }
                }
                Some(grid) => {
                    let Some(trs) = grid.story(&story.story) else { continue };
                    // Each token at its word's time; the TR's row is the mean of its tokens.
                    let mut times = Vec::with_capacity(tokenized.ids.len());
                    for (word, span) in story.words.iter().zip(&tokenized.spans) {
                        let t = p.word_time.of(word);
                        times.extend(std::iter::repeat_n(t, span.len()));
                    }
                    for (out, m) in per_layer.iter_mut().zip(states.layers) {
                        let binned = signal::downsample(
                            &m,
                            &times,
                            &trs.times,
                            grid.tr_seconds,
                            &signal::DownsampleMethod::Average,
                        )
                        .map_err(|e| StageError::failed(format!("story `{}`: {e}", story.story)))?;
                        out.push(binned);
                    }
                    segments.push(Segment { name: story.story.clone(), rows: trs.times.len() });
                }
            }
            ctx.check_cancelled()?;
        }
        if let Some(grid) = &grid {
            if let Some(missing) = grid.stories.iter().find(|s| !words.iter().any(|w| w.story == s.story)) {
                return Err(tables::story_without_words(&missing.story, words.iter().map(|w| w.story.as_str())));
            }
        }
        if !unknown.is_empty() {
            unknown.sort();
            unknown.dedup();
            let shown: Vec<&str> = unknown.iter().take(8).map(String::as_str).collect();
            ctx.warn(format!(
                "{} distinct word(s) map to the tokenizer's unknown token, e.g. {}; their features carry no word identity (check the text's encoding, or use a model whose vocabulary covers it)",
                unknown.len(),
                shown.join(", ")
            ));
        }
        if empty_words > 0 {
            ctx.warn(format!("{empty_words} word(s) have no tokens (empty text); their rows are zero"));
        }
        tracing::info!(
            stage = ctx.name,
            "{}",
            format!(
                "{tokens} tokens, {passes} forward passes, {processed} padded tokens processed ({:.2} per token) on {}",
                processed as f64 / tokens.max(1) as f64,
                ctx.device
            )
        );
        for (layer, parts) in p.layers.iter().zip(per_layer) {
            let refs: Vec<&Matrix> = parts.iter().collect();
            let matrix = if refs.is_empty() { Matrix::zeros(0, hidden) } else { Matrix::vstack(&refs) };
            let mut artifact = MatrixArtifact::with_segments(matrix, segments.clone());
            artifact.metadata.insert("level".into(), if grid.is_some() { "tr" } else { "word" }.into());
            artifact.metadata.insert("layer".into(), layer.to_string());
            artifact.metadata.insert("model".into(), p.model.clone());
            ctx.write_matrix(&format!("layer{layer}"), &artifact)?;
        }
        Ok(())
    }
}
