//! The training loop's parts: [`TrainConfig`], the step, the validation
//! loss, and the resumable state.
//!
//! A state directory ([`Trainer::save_state`]) is a Hugging Face checkpoint
//! (config.json, model.safetensors: [`GptModel::save_hf`]'s files) plus
//! `optimizer.safetensors` (AdamW's moments, `{name}.exp_avg` and
//! `{name}.exp_avg_sq`) and `trainer.json` (format, model and training
//! configs, steps done, the sampler's generator state). It is written
//! atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::data::{self, Batch, BatchSampler, SamplerState};
use super::gpt::{self, GptConfig, GptModel};
use super::optim::{AdamW, AdamWConfig, Schedule};
use super::TrainError;

/// The `format` of trainer.json.
pub const STATE_FORMAT: &str = "voxflow.train.gpt.state/1";

/// How to train. Defaults are nanoGPT's (GPT-2 small on OpenWebText) where
/// it has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds the initialisation (ChaCha8 stream 0), the batch sampler
    /// (stream 1) and dropout (torch's generator, reseeded every step).
    pub seed: u64,
    /// Optimizer steps in all (the schedule's length).
    pub steps: usize,
    /// Sequences per step, each `context_length` tokens.
    pub batch_size: usize,
    /// The peak learning rate, reached at the end of warmup.
    pub learning_rate: f64,
    pub warmup_steps: usize,
    /// Where the cosine decay ends (at `steps`); 0 decays to zero.
    pub min_lr: f64,
    /// AdamW's decoupled weight decay, on matrices only (embeddings and
    /// Conv1D weights; not biases or LayerNorm).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this; 0 switches clipping off.
    pub grad_clip: f64,
    /// Validation every this many steps (and after the last); 0: never.
    pub eval_every: usize,
    /// Batches of fixed validation windows per validation.
    pub eval_batches: usize,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            seed: 0,
            steps: 1000,
            batch_size: 8,
            learning_rate: 6e-4,
            warmup_steps: 100,
            min_lr: 6e-5,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_every: 100,
            eval_batches: 20,
        }
    }
}

impl TrainConfig {
    /// Checks the values; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), TrainError> {
        let fail = |message: String| Err(TrainError::Config(message));
        if self.steps == 0 {
            return fail("training `steps` is 0: it must be at least 1".into());
        }
        if self.batch_size == 0 {
            return fail("training `batch_size` is 0: it must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return fail(format!("training `learning_rate` is {}: it must be positive", self.learning_rate));
        }
        if !(0.0..=self.learning_rate).contains(&self.min_lr) {
            return fail(format!(
                "training `min_lr` is {}: it must be between 0 and learning_rate ({})",
                self.min_lr, self.learning_rate
            ));
        }
        if self.warmup_steps > self.steps {
            return fail(format!(
                "training `warmup_steps` ({}) is more than `steps` ({}): lower warmup_steps",
                self.warmup_steps, self.steps
            ));
        }
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return fail(format!("training `{name}` is {value}: it must be at least 0 and below 1"));
            }
        }
        if !(self.eps > 0.0) {
            return fail(format!("training `eps` is {}: it must be positive (1e-8 is usual)", self.eps));
        }
        if !(self.weight_decay >= 0.0) {
            return fail(format!("training `weight_decay` is {}: it must be 0 or more", self.weight_decay));
        }
        if !(self.grad_clip >= 0.0) {
            return fail(format!("training `grad_clip` is {}: it must be 0 (off) or more", self.grad_clip));
        }
        if self.eval_every > 0 && self.eval_batches == 0 {
            return fail(
                "training `eval_batches` is 0 while `eval_every` is set: give at least 1, or eval_every 0".into(),
            );
        }
        Ok(())
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            learning_rate: self.learning_rate,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            steps: self.steps,
        }
    }

    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig { beta1: self.beta1, beta2: self.beta2, eps: self.eps, weight_decay: self.weight_decay }
    }
}

/// What one training step did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Steps done, this one included (1 after the first step).
    pub step: usize,
    /// The mean next-token loss of the batch before the update.
    pub loss: f64,
    /// The auxiliary loss added to it, when there was one.
    pub aux_loss: Option<f64>,
    /// The learning rate of this update.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: String,
    model: GptConfig,
    train: TrainConfig,
    step: usize,
    sampler: SamplerState,
}

/// A model, its optimizer and its sampler, at some step.
pub struct Trainer {
    pub model: GptModel,
    pub config: TrainConfig,
    optimizer: AdamW,
    sampler: BatchSampler,
    step: usize,
}

impl Trainer {
    /// A fresh model (initialised from `config.seed`) on `device`.
    pub fn new(model: &GptConfig, config: TrainConfig, device: Device) -> Result<Trainer, TrainError> {
        config.validate()?;
        let model = GptModel::new(model, config.seed, device)?;
        Trainer::from_model(model, config)
    }

    /// Trains `model` as it is (e.g. one loaded with [`GptModel::load_hf`]) from step 0.
    pub fn from_model(model: GptModel, config: TrainConfig) -> Result<Trainer, TrainError> {
        config.validate()?;
        let params =
            model.parameters().iter().map(|(name, t)| (name.clone(), t.shallow_clone(), gpt::decays(name))).collect();
        let optimizer = AdamW::new(config.adamw(), params);
        let sampler = BatchSampler::new(config.seed, config.batch_size, model.config.context_length);
        Ok(Trainer { model, config, optimizer, sampler, step: 0 })
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Whether all `config.steps` are done.
    pub fn finished(&self) -> bool {
        self.step >= self.config.steps
    }

    /// Whether validation is due after the steps done: every `eval_every`
    /// steps and after the last.
    pub fn eval_due(&self) -> bool {
        self.config.eval_every > 0 && self.step > 0 && (self.step % self.config.eval_every == 0 || self.finished())
    }

    /// The next batch from the training tokens (advances the sampler).
    pub fn next_batch(&mut self, tokens: &[u32]) -> Result<Batch, TrainError> {
        data::check_tokens(tokens, self.model.config.context_length, self.model.config.vocab_size, "training")?;
        Ok(self.sampler.sample(tokens, self.model.device))
    }

    /// One step on the next batch of `tokens`.
    pub fn train_on(&mut self, tokens: &[u32]) -> Result<StepStats, TrainError> {
        let batch = self.next_batch(tokens)?;
        Ok(self.train_step(&batch))
    }

    /// One step on `batch`: next-token cross-entropy, backward, clipping,
    /// AdamW at the schedule's rate for this step.
    pub fn train_step(&mut self, batch: &Batch) -> StepStats {
        self.train_step_with(batch, |_| None)
    }

    /// [`Trainer::train_step`] with an auxiliary loss computed from the
    /// per-block sublayer outputs ([`GptModel::forward_with_sublayers`]),
    /// added to the language-model loss (TopoLM's spatial loss goes here).
    pub fn train_step_with(&mut self, batch: &Batch, aux: impl FnOnce(&[Tensor]) -> Option<Tensor>) -> StepStats {
        let lr = self.config.schedule().lr(self.step);
        if self.model.config.dropout > 0.0 {
            // Dropout masks from (seed, step) alone, so that a resumed run draws the same ones.
            tch::manual_seed((splitmix(self.config.seed ^ splitmix(self.step as u64)) >> 1) as i64);
        }
        self.optimizer.zero_grad();
        let (logits, sublayers) = self.model.forward_with_sublayers(&batch.inputs, true);
        let loss = GptModel::loss(&logits, &batch.targets);
        let aux = aux(&sublayers);
        let total = match &aux {
            Some(aux) => &loss + aux,
            None => loss.shallow_clone(),
        };
        total.backward();
        let grad_norm = self.optimizer.clip_grad_norm(self.config.grad_clip);
        self.optimizer.step(lr);
        self.step += 1;
        StepStats {
            step: self.step,
            loss: loss.double_value(&[]),
            aux_loss: aux.map(|a| a.double_value(&[])),
            lr,
            grad_norm,
        }
    }

    /// The mean loss over the first `eval_batches * batch_size` fixed
    /// windows of `tokens` ([`data::validation_windows`]).
    pub fn eval_loss(&self, tokens: &[u32]) -> Result<f64, TrainError> {
        let config = &self.model.config;
        data::check_tokens(tokens, config.context_length, config.vocab_size, "validation")?;
        let windows = data::validation_windows(
            tokens,
            config.context_length,
            self.config.eval_batches.max(1) * self.config.batch_size,
        );
        Ok(data::mean_loss(&self.model, &windows, self.config.batch_size))
    }

    /// Writes the model as a Hugging Face checkpoint ([`GptModel::save_hf`]).
    pub fn save_hf(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), TrainError> {
        self.model.save_hf(dir, tokenizer)
    }

    /// Writes everything a resumed run needs into `dir`, atomically.
    pub fn save_state(&self, dir: &Path) -> Result<(), TrainError> {
        super::checkpoint::write_dir_atomically(dir, |tmp| self.save_state_into(tmp))
    }

    /// The files of [`Trainer::save_state`], written into an existing directory.
    pub fn save_state_into(&self, tmp: &Path) -> Result<(), TrainError> {
        {
            self.model.write_hf_files(tmp, None)?;
            self.optimizer.save(&tmp.join("optimizer.safetensors"))?;
            let state = StateFile {
                format: STATE_FORMAT.into(),
                model: self.model.config.clone(),
                train: self.config.clone(),
                step: self.step,
                sampler: self.sampler.state(),
            };
            let path = tmp.join("trainer.json");
            let text = serde_json::to_string_pretty(&state).expect("JSON") + "\n";
            std::fs::write(&path, text).map_err(|e| TrainError::file(&path, e))
        }
    }

    /// A trainer from a state written by [`Trainer::save_state`], on `device`.
    pub fn load_state(dir: &Path, device: Device) -> Result<Trainer, TrainError> {
        let path = dir.join("trainer.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, format!("cannot read: {e}")))?;
        let state: StateFile =
            serde_json::from_str(&text).map_err(|e| TrainError::file(&path, format!("not a training state: {e}")))?;
        if state.format != STATE_FORMAT {
            return Err(TrainError::file(&path, format!("format `{}`, expected `{STATE_FORMAT}`", state.format)));
        }
        let weights = dir.join("model.safetensors");
        let tensors = Tensor::read_safetensors(&weights)
            .map_err(|e| TrainError::file(&weights, e))?
            .into_iter()
            .map(|(name, t)| (name.strip_prefix(gpt::PREFIX).map(str::to_string).unwrap_or(name), t))
            .collect();
        let model = GptModel::from_tensors(&state.model, tensors, device).map_err(|e| TrainError::file(&weights, e))?;
        let mut trainer = Trainer::from_model(model, state.train)?;
        trainer.optimizer.load(&dir.join("optimizer.safetensors"), state.step as u64)?;
        trainer.sampler.set_state(&state.sampler).map_err(|e| TrainError::file(&path, e))?;
        trainer.step = state.step;
        Ok(trainer)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_fill_in_and_unknown_keys_fail() {
        let config: TrainConfig = serde_json::from_str(r#"{"steps": 10, "warmup_steps": 2}"#).unwrap();
        assert_eq!(config.steps, 10);
        assert_eq!(config.learning_rate, 6e-4);
        config.validate().unwrap();
        assert!(serde_json::from_str::<TrainConfig>(r#"{"stepz": 10}"#).is_err());
        let message = TrainConfig { warmup_steps: 20, steps: 10, ..TrainConfig::default() }.validate().unwrap_err();
        assert!(message.to_string().contains("warmup_steps"), "{message}");
    }

    #[test]
    fn an_auxiliary_loss_on_the_sublayers_is_added_and_reported() {
        let model = GptConfig {
            vocab_size: 13,
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            context_length: 5,
            dropout: 0.0,
            layer_norm_epsilon: 1e-5,
        };
        let config = TrainConfig { steps: 2, warmup_steps: 0, batch_size: 2, grad_clip: 0.0, ..TrainConfig::default() };
        let tokens: Vec<u32> = (0..100).map(|i| (i * 5 % 13) as u32).collect();
        let mut plain = Trainer::new(&model, config.clone(), Device::Cpu).unwrap();
        let mut topo = Trainer::new(&model, config, Device::Cpu).unwrap();
        let batch = plain.next_batch(&tokens).unwrap();
        let a = plain.train_step(&batch);
        let mut seen = 0;
        let b = topo.train_step_with(&batch, |sublayers| {
            seen = sublayers.len();
            Some(sublayers[3].pow_tensor_scalar(2).mean(tch::Kind::Float))
        });
        assert_eq!(seen, 4);
        assert_eq!(a.loss, b.loss);
        assert!(a.aux_loss.is_none() && b.aux_loss.unwrap() > 0.0);
        // The auxiliary term reached the gradients (Adam's first update is
        // about lr sign(g), so compare gradients, not weights).
        assert!((b.grad_norm - a.grad_norm).abs() > 1e-4, "{a:?} {b:?}");
        assert!(!plain.model.parameters()[2].1.grad().equal(&topo.model.parameters()[2].1.grad()));
    }

    #[test]
    fn dropout_runs_are_reproducible() {
        let model = GptConfig {
            vocab_size: 13,
            n_layer: 1,
            n_head: 2,
            n_embd: 8,
            context_length: 5,
            dropout: 0.2,
            layer_norm_epsilon: 1e-5,
        };
        let config = TrainConfig { steps: 3, warmup_steps: 1, batch_size: 2, ..TrainConfig::default() };
        let tokens: Vec<u32> = (0..200).map(|i| (i * 7 % 13) as u32).collect();
        let run = || {
            let mut trainer = Trainer::new(&model, config.clone(), Device::Cpu).unwrap();
            (0..3).map(|_| trainer.train_on(&tokens).unwrap().loss).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
