//! Batches of token windows: the seeded sampler of the training step and the
//! fixed windows of the validation loss.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::TrainError;

/// The sampler's stream of its ChaCha8 generator (the model's
/// initialisation draws from stream 0 of the same seed).
pub const SAMPLER_STREAM: u64 = 1;

/// `batch_size` windows of `context_length + 1` tokens: `inputs` the first
/// `context_length` of each, `targets` the last `context_length` (`[B, T]`, int64).
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
}

impl Batch {
    /// A batch from windows of `T + 1` token ids each.
    pub fn from_windows(windows: &[&[u32]], device: Device) -> Batch {
        let t = windows[0].len() as i64 - 1;
        let flat: Vec<i64> = windows.iter().flat_map(|w| w.iter().map(|&id| id as i64)).collect();
        let all = Tensor::from_slice(&flat).view([windows.len() as i64, t + 1]).to_device(device);
        Batch { inputs: all.narrow(1, 0, t), targets: all.narrow(1, 1, t) }
    }

    /// The windows as token ids, `[B][T + 1]` (for logs and references).
    pub fn windows(&self) -> Vec<Vec<i64>> {
        let inputs: Vec<Vec<i64>> = Vec::try_from(&self.inputs.to_device(Device::Cpu)).expect("int64 ids");
        let targets: Vec<Vec<i64>> = Vec::try_from(&self.targets.to_device(Device::Cpu)).expect("int64 ids");
        inputs
            .into_iter()
            .zip(targets)
            .map(|(mut i, t)| {
                i.push(*t.last().expect("a window has tokens"));
                i
            })
            .collect()
    }
}

/// Checks that `tokens` hold a window and only ids the model knows.
pub fn check_tokens(tokens: &[u32], context_length: usize, vocab_size: usize, what: &str) -> Result<(), TrainError> {
    if tokens.len() < context_length + 1 {
        return Err(TrainError::Data(format!(
            "the {what} tokens ({}) are fewer than context_length + 1 ({}): give more text or a shorter context_length",
            tokens.len(),
            context_length + 1
        )));
    }
    if let Some((i, id)) = tokens.iter().enumerate().find(|(_, &id)| id as usize >= vocab_size) {
        return Err(TrainError::Data(format!(
            "{what} token {i} has id {id}, outside the model's vocab_size {vocab_size}: the tokenizer and the model config do not match"
        )));
    }
    Ok(())
}

/// The sampler's generator state, for the training state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The ChaCha8 key, 64 hex digits.
    pub seed: String,
    pub stream: u64,
    /// The position in the stream in 32-bit words (a u128, as a decimal string).
    pub word_pos: String,
}

/// Draws windows uniformly (with replacement) from a token array with its
/// own ChaCha8 generator.
pub struct BatchSampler {
    rng: ChaCha8Rng,
    pub batch_size: usize,
    pub context_length: usize,
}

impl BatchSampler {
    pub fn new(seed: u64, batch_size: usize, context_length: usize) -> BatchSampler {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(SAMPLER_STREAM);
        BatchSampler { rng, batch_size, context_length }
    }

    /// The next batch from `tokens` (which [`check_tokens`] accepts).
    pub fn sample(&mut self, tokens: &[u32], device: Device) -> Batch {
        let window = self.context_length + 1;
        let last_start = tokens.len() - window;
        let windows: Vec<&[u32]> = (0..self.batch_size)
            .map(|_| {
                let start = self.rng.random_range(0..=last_start);
                &tokens[start..start + window]
            })
            .collect();
        Batch::from_windows(&windows, device)
    }

    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: self.rng.get_stream(),
            word_pos: self.rng.get_word_pos().to_string(),
        }
    }

    pub fn set_state(&mut self, state: &SamplerState) -> Result<(), String> {
        let bad = || format!("sampler seed `{}` is not 64 hex digits", state.seed);
        if state.seed.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&state.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let word_pos: u128 =
            state.word_pos.parse().map_err(|_| format!("sampler word_pos `{}` is not an integer", state.word_pos))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(word_pos);
        self.rng = rng;
        Ok(())
    }
}

/// The validation windows: `context_length + 1` tokens starting every
/// `context_length` tokens from the start (each token a target once), at
/// most `max_windows` of them.
pub fn validation_windows(tokens: &[u32], context_length: usize, max_windows: usize) -> Vec<&[u32]> {
    let window = context_length + 1;
    (0..)
        .map(|i| i * context_length)
        .take_while(|start| start + window <= tokens.len())
        .take(max_windows)
        .map(|start| &tokens[start..start + window])
        .collect()
}

/// The mean next-token loss of `model` over `windows`, `batch_size` at a
/// time, without dropout or gradients.
pub fn mean_loss(model: &super::GptModel, windows: &[&[u32]], batch_size: usize) -> f64 {
    let _guard = tch::no_grad_guard();
    let mut total = 0.0;
    for chunk in windows.chunks(batch_size.max(1)) {
        let batch = Batch::from_windows(chunk, model.device);
        let logits = model.forward(&batch.inputs, false);
        let loss = super::GptModel::loss(&logits, &batch.targets).to_kind(Kind::Double).double_value(&[]);
        total += loss * chunk.len() as f64;
    }
    total / windows.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_state_round_trips_and_resumes_the_stream() {
        let tokens: Vec<u32> = (0..500).collect();
        let mut a = BatchSampler::new(3, 4, 8);
        a.sample(&tokens, Device::Cpu);
        let state = a.state();
        let next = a.sample(&tokens, Device::Cpu).windows();
        let mut b = BatchSampler::new(99, 4, 8);
        b.set_state(&state).unwrap();
        assert_eq!(b.sample(&tokens, Device::Cpu).windows(), next);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<SamplerState>(&json).unwrap(), state);
        // Windows are contiguous slices of the tokens.
        for w in &next {
            assert_eq!(w.len(), 9);
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
        }
    }

    #[test]
    fn validation_windows_cover_each_target_once() {
        let tokens: Vec<u32> = (0..20).collect();
        let windows = validation_windows(&tokens, 4, 100);
        assert_eq!(windows.len(), 4); // starts 0, 4, 8, 12; 16 would need 21 tokens
        assert_eq!(windows[1], &[4, 5, 6, 7, 8]);
        assert_eq!(validation_windows(&tokens, 4, 2).len(), 2);
    }

    #[test]
    fn bad_tokens_are_named() {
        let message = check_tokens(&[1, 2, 3], 4, 10, "training").unwrap_err().to_string();
        assert!(message.contains("(3)") && message.contains("(5)"), "{message}");
        let message = check_tokens(&[1, 2, 30, 4, 5], 4, 10, "validation").unwrap_err().to_string();
        assert!(message.contains("id 30") && message.contains("vocab_size 10"), "{message}");
    }
}
