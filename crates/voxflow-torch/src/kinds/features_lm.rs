//! `features.lm`'s run in the worker: the kind's params and checks are
//! `voxflow::kinds::features::lm`; this is the part that calls libtorch.

use crate::lm::extract::{extract_story, ExtractOptions, Pool, Strategy};
use crate::lm::model::LanguageModel;
use voxflow::artifact::{MatrixArtifact, Segment};
use voxflow::kinds::features::lm::{LmParams, Pooling};
use voxflow::kinds::tables;
use voxflow::numeric::{signal, Matrix};
use voxflow::stage::{StageContext, StageError};

pub fn features_lm(p: &LmParams, ctx: &mut StageContext) -> Result<(), StageError> {
    // A CUDA device asked for by name was checked at validation.
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let dir = match &p.model {
        Some(model) => ctx.resolve(model),
        None => ctx.input("model")?.single_output()?.1,
    };
    let fix = "point `model:` at a directory with config.json, model.safetensors and tokenizer.json";
    ctx.phase("loading model");
    let model = LanguageModel::load(&dir, crate::device::to_tch(device))
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
        batch_tokens: p.batch_tokens.unwrap_or(if device == voxflow::device::Device::Cpu { 2048 } else { 16384 }),
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
    // Progress in words, updated after every forward pass.
    let total_words: u64 = words.iter().map(|story| story.words.len() as u64).sum();
    let mut words_before = 0u64;
    ctx.progress_unit("words");
    ctx.progress(0, total_words);
    for story in words.iter() {
        let texts: Vec<&str> = story.words.iter().map(|w| w.word.as_str()).collect();
        let tokenized =
            model.tokenize_words(&texts).map_err(|e| StageError::failed(format!("story `{}`: {e}", story.story)))?;
        unknown.extend(tokenized.unknown_words.iter().cloned());
        empty_words += tokenized.spans.iter().filter(|s| s.is_empty()).count();
        let story_words = story.words.len() as u64;
        let states = extract_story(&model, &tokenized, &options, |pass, passes| {
            ctx.progress(words_before + story_words * pass as u64 / passes.max(1) as u64, total_words)
        })
        .map_err(|e| StageError::failed(format!("story `{}`: {e}", story.story)))?;
        words_before += story_words;
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
                    let binned =
                        signal::downsample(&m, &times, &trs.times, grid.tr_seconds, &signal::DownsampleMethod::Average)
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
        let model =
            p.model.clone().unwrap_or_else(|| ctx.inputs.get("model").map(|i| i.stage.clone()).unwrap_or_default());
        artifact.metadata.insert("model".into(), model);
        ctx.write_matrix(&format!("layer{layer}"), &artifact)?;
    }
    Ok(())
}
