//! Log-probabilities of token sequences under a causal language model
//! (GPT-2 / train.gpt checkpoints, GPT-NeoX, Llama), batched: the
//! [`voxflow::kinds::competence::Scorer`] the competence kinds run on.
//!
//! Sequences are sorted by length (longest first) and packed into batches
//! of at most `batch_tokens` padded tokens (at least one sequence), padded
//! on the right with an attention mask: the model is causal, so padding
//! changes no real token's logits. Token t's log-probability is
//! `log_softmax(logits[t - 1])[id_t]` in float32, returned as float64.
//!
//! The prefix (`prefix: bos`): tokenizer_config.json's `bos_token` (or
//! special_tokens_map.json's), else `<|endoftext|>` when the tokenizer has
//! it (GPT-2, Pythia, and train.gpt's corpus tokenizers, whose documents
//! each end with it), as lm-eval's `prefix_token_id` for an empty context.

use std::cmp::Reverse;

use tch::{Kind, Tensor};
use voxflow::kinds::competence::{Prefix, Scorer};

use super::model::{LanguageModel, LmError};

/// The token GPT-2-style tokenizers begin and end documents with.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A loaded causal model as a [`Scorer`].
pub struct TorchScorer<'a> {
    pub model: &'a LanguageModel,
    pub prefix: Option<(i64, String)>,
    pub batch_tokens: usize,
}

impl<'a> TorchScorer<'a> {
    /// The scorer for `prefix`; `Prefix::Bos` fails when the model has no
    /// beginning-of-sequence token.
    pub fn new(model: &'a LanguageModel, prefix: Prefix, batch_tokens: usize) -> Result<TorchScorer<'a>, LmError> {
        let prefix = match prefix {
            Prefix::None => None,
            Prefix::Bos => Some(bos_token(model).ok_or_else(|| {
                LmError::Mismatch(format!(
                    "{}: no beginning-of-sequence token: tokenizer_config.json and special_tokens_map.json name no `bos_token` \
                     and the tokenizer has no `{END_OF_TEXT}`; use `prefix: none` (the first token of each text then has no probability)",
                    model.dir.display()
                ))
            })?),
        };
        Ok(TorchScorer { model, prefix, batch_tokens: batch_tokens.max(1) })
    }
}

/// The model's beginning-of-sequence token and its text.
pub fn bos_token(model: &LanguageModel) -> Option<(i64, String)> {
    let named = |file: &str| -> Option<String> {
        let text = std::fs::read_to_string(model.dir.join(file)).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        match value.get("bos_token")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
            _ => None,
        }
    };
    let candidates = [named("tokenizer_config.json"), named("special_tokens_map.json"), Some(END_OF_TEXT.to_string())];
    candidates
        .into_iter()
        .flatten()
        .find_map(|token| model.tokenizer.token_to_id(&token).map(|id| (i64::from(id), token)))
}

impl Scorer for TorchScorer<'_> {
    fn encode(&self, text: &str) -> Result<Vec<(i64, (usize, usize))>, String> {
        let encoding = self.model.tokenizer.encode(text, false).map_err(|e| e.to_string())?;
        let vocab = self.model.config.vocab_size as i64;
        let mut out = Vec::with_capacity(encoding.get_ids().len());
        for (&id, &offsets) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
            if i64::from(id) >= vocab {
                return Err(format!(
                    "token id {id} is beyond the model's vocabulary ({vocab}): tokenizer.json does not belong to the model"
                ));
            }
            out.push((i64::from(id), offsets));
        }
        Ok(out)
    }

    fn prefix(&self) -> Option<(i64, String)> {
        self.prefix.clone()
    }

    fn token_text(&self, id: i64) -> String {
        self.model.tokenizer.id_to_token(id as u32).unwrap_or_default()
    }

    fn log_probs(
        &self,
        sequences: &[Vec<i64>],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Vec<f64>>, String> {
        sequence_log_probs(self.model, sequences, self.batch_tokens, progress).map_err(|e| e.to_string())
    }
}

/// For each sequence, the log-probability of each token after the first
/// given the tokens before it (`len - 1` values).
pub fn sequence_log_probs(
    model: &LanguageModel,
    sequences: &[Vec<i64>],
    batch_tokens: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f64>>, LmError> {
    let n = sequences.len();
    let limit = model.config.max_positions;
    if let Some(long) = sequences.iter().position(|s| s.len() > limit) {
        return Err(LmError::Mismatch(format!(
            "text {long} has {} tokens (prefix included), more than the model's {limit} positions",
            sequences[long].len()
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| Reverse(sequences[i].len()));
    let mut out = vec![Vec::new(); n];
    let _guard = tch::no_grad_guard();
    let mut start = 0;
    while start < n {
        let longest = sequences[order[start]].len();
        let per_batch = (batch_tokens / longest.max(1)).max(1);
        let end = n.min(start + per_batch);
        let batch = &order[start..end];
        if longest >= 2 {
            let mut flat = Vec::with_capacity(batch.len() * longest);
            let mut mask = Vec::with_capacity(batch.len() * longest);
            for &i in batch {
                let s = &sequences[i];
                flat.extend_from_slice(s);
                flat.extend(std::iter::repeat_n(0i64, longest - s.len()));
                mask.extend(std::iter::repeat_n(1i64, s.len()));
                mask.extend(std::iter::repeat_n(0i64, longest - s.len()));
            }
            let shape = [batch.len() as i64, longest as i64];
            let ids = Tensor::from_slice(&flat).view(shape).to_device(model.device);
            let attention = Tensor::from_slice(&mask).view(shape).to_device(model.device);
            let logits = model.logits(&ids, &attention)?;
            let t = longest as i64 - 1;
            let log_softmax = logits.narrow(1, 0, t).log_softmax(-1, Kind::Float);
            let targets = ids.narrow(1, 1, t).unsqueeze(-1);
            let picked = log_softmax.gather(2, &targets, false).squeeze_dim(-1);
            let values =
                Vec::<f64>::try_from(picked.to_kind(Kind::Double).to_device(tch::Device::Cpu).contiguous().view([-1]))?;
            for (b, &i) in batch.iter().enumerate() {
                let row = b * (longest - 1);
                out[i] = values[row..row + sequences[i].len().saturating_sub(1)].to_vec();
            }
        }
        progress(end, n);
        start = end;
    }
    Ok(out)
}
