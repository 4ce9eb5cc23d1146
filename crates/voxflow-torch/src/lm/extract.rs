//! Hidden states per word: windows planned by [`super::windows`], packed
//! into batches under a token budget (longest first, right padding with an
//! attention mask), one forward pass per batch, and only the states the
//! pooling needs copied off the device.

use std::ops::Range;

use tch::{Kind, Tensor};

use super::model::{LanguageModel, LmError, TokenizedWords};
use voxflow::lm::windows::{plan_windows, pooled_tokens, ContextMode, Window};
use voxflow::numeric::Matrix;

/// How a word's tokens become one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The state of the word's last token.
    Last,
    /// The mean over the word's tokens.
    Mean,
    /// Every token of every word, one row each, in story order (for pooling
    /// all tokens of a TR).
    Tokens,
}

/// How the passes are organised. The features are the same whichever is
/// chosen (within float32 rounding); only the cost differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Words share a pass where the definition allows (causal models) and
    /// windows are batched: what `features.lm` runs.
    Shared,
    /// One forward pass per word, batch size one: the definition, and the
    /// way LITcoder computes it (the benchmark's reference).
    PerWord,
}

#[derive(Clone, Debug)]
pub struct ExtractOptions {
    pub layers: Vec<usize>,
    pub mode: ContextMode,
    pub lookback: usize,
    pub pool: Pool,
    /// Upper bound on padded tokens per forward pass.
    pub batch_tokens: usize,
    pub strategy: Strategy,
}

/// The hidden states of one story: per requested layer, rows = words
/// (`Last`, `Mean`; a word without tokens gets zeros) or tokens (`Tokens`).
pub struct StoryStates {
    pub layers: Vec<Matrix>,
    /// Forward passes and padded tokens processed.
    pub passes: usize,
    pub tokens_processed: usize,
}

/// Checks the options against the model before any work.
pub fn check_options(model: &LanguageModel, options: &ExtractOptions) -> Result<(), LmError> {
    let layers = model.config.layers;
    if let Some(bad) = options.layers.iter().find(|&&l| l > layers) {
        return Err(LmError::Mismatch(format!(
            "layer {bad} is out of range: the model in {} has {layers} layers; use 0 (embeddings) to {layers}",
            model.dir.display()
        )));
    }
    let (before, after) = model.specials();
    if options.lookback == 0 || options.lookback + before + after > model.config.max_positions {
        return Err(LmError::Mismatch(format!(
            "lookback {} does not fit the model's {} positions{}; use a lookback from 1 to {}",
            options.lookback,
            model.config.max_positions,
            if before + after > 0 { " (with [CLS] and [SEP])" } else { "" },
            model.config.max_positions - before - after
        )));
    }
    Ok(())
}

/// The hidden states of one tokenised story.
pub fn extract_story(
    model: &LanguageModel,
    story: &TokenizedWords,
    options: &ExtractOptions,
    mut on_pass: impl FnMut(usize, usize),
) -> Result<StoryStates, LmError> {
    check_options(model, options)?;
    let windows = match options.strategy {
        Strategy::Shared => plan_windows(&story.spans, options.mode, options.lookback, model.causal()),
        Strategy::PerWord => plan_windows(&story.spans, options.mode, options.lookback, false),
    };
    let (before, after) = model.specials();
    let length = |w: &Window| w.tokens.len() + before + after;
    // Longest first, so that a batch pads little.
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(length(&windows[i])));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for &i in &order {
        match batches.last_mut() {
            Some(batch)
                if options.strategy == Strategy::Shared
                    && (batch.len() + 1) * length(&windows[batch[0]]) <= options.batch_tokens.max(1) =>
            {
                batch.push(i)
            }
            _ => batches.push(vec![i]),
        }
    }

    let hidden = model.config.hidden;
    let n_rows = match options.pool {
        Pool::Tokens => story.ids.len(),
        _ => story.spans.len(),
    };
    let mut layers: Vec<Matrix> = options.layers.iter().map(|_| Matrix::zeros(n_rows, hidden)).collect();
    let mut tokens_processed = 0;
    let total = batches.len();
    for (done, batch) in batches.iter().enumerate() {
        let width = length(&windows[batch[0]]);
        let mut ids = vec![0i64; batch.len() * width];
        let mut mask = vec![0i64; batch.len() * width];
        // (flat position in the batch, destination row, weight) for each state kept.
        let mut picks: Vec<(i64, usize, f32)> = Vec::new();
        for (r, &wi) in batch.iter().enumerate() {
            let window = &windows[wi];
            let row = &mut ids[r * width..(r + 1) * width];
            let mut at = 0;
            if let Some((cls, _)) = model.cls_sep {
                row[0] = cls;
                at = 1;
            }
            row[at..at + window.tokens.len()].copy_from_slice(&story.ids[window.tokens.clone()]);
            if let Some((_, sep)) = model.cls_sep {
                row[at + window.tokens.len()] = sep;
            }
            mask[r * width..r * width + length(window)].fill(1);
            let position = |token: usize| (r * width + before + token - window.tokens.start) as i64;
            for &word in &window.words {
                let span: Range<usize> = pooled_tokens(&story.spans[word], &window.tokens);
                match options.pool {
                    Pool::Last => picks.push((position(span.end - 1), word, 1.0)),
                    Pool::Mean => {
                        let weight = 1.0 / span.len() as f32;
                        picks.extend(span.map(|t| (position(t), word, weight)));
                    }
                    // A word longer than the lookback keeps its last tokens; the cut ones stay zero.
                    Pool::Tokens => picks.extend(span.map(|t| (position(t), t, 1.0))),
                }
            }
        }
        tokens_processed += ids.len();
        let device = model.device;
        let ids = Tensor::from_slice(&ids).view([batch.len() as i64, width as i64]).to_device(device);
        let mask = Tensor::from_slice(&mask).view([batch.len() as i64, width as i64]).to_device(device);
        let index: Vec<i64> = picks.iter().map(|p| p.0).collect();
        let index = Tensor::from_slice(&index).to_device(device);
        let states = model.hidden_states(&ids, &mask, &options.layers);
        for (state, out) in states.iter().zip(layers.iter_mut()) {
            let picked = state
                .view([-1, hidden as i64])
                .index_select(0, &index)
                .to_kind(Kind::Float)
                .to_device(tch::Device::Cpu)
                .contiguous();
            let values = Vec::<f32>::try_from(picked.view([-1]))?;
            for (k, &(_, dest, weight)) in picks.iter().enumerate() {
                let src = &values[k * hidden..(k + 1) * hidden];
                for (o, v) in out.data[dest * hidden..(dest + 1) * hidden].iter_mut().zip(src) {
                    *o += weight * v;
                }
            }
        }
        on_pass(done + 1, total);
    }
    Ok(StoryStates { layers, passes: batches.len(), tokens_processed })
}

/// The floor of the benchmark: the story's tokens in back-to-back chunks of
/// the model's length, all chunks in one batch, one pass. Returns the tokens
/// processed.
pub fn floor_pass(model: &LanguageModel, ids: &[i64], layers: &[usize]) -> usize {
    let (before, after) = model.specials();
    let chunk = model.config.max_positions - before - after;
    let chunks: Vec<&[i64]> = ids.chunks(chunk).collect();
    let width = chunks.first().map_or(0, |c| c.len()) + before + after;
    let mut flat = vec![0i64; chunks.len() * width];
    let mut mask = vec![0i64; chunks.len() * width];
    for (r, c) in chunks.iter().enumerate() {
        let row = &mut flat[r * width..(r + 1) * width];
        let mut at = 0;
        if let Some((cls, sep)) = model.cls_sep {
            row[0] = cls;
            row[c.len() + 1] = sep;
            at = 1;
        }
        row[at..at + c.len()].copy_from_slice(c);
        mask[r * width..r * width + c.len() + before + after].fill(1);
    }
    let shape = [chunks.len() as i64, width as i64];
    let ids = Tensor::from_slice(&flat).view(shape).to_device(model.device);
    let mask = Tensor::from_slice(&mask).view(shape).to_device(model.device);
    let states = model.hidden_states(&ids, &mask, layers);
    if let Some(s) = states.first() {
        let _ = s.sum(Kind::Float).double_value(&[]);
    }
    flat.len()
}
