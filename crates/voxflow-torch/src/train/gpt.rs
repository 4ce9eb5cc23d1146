//! A GPT-2 for training: pre-LN blocks, causal self-attention, GELU (tanh
//! approximation, GPT-2's `gelu_new`), learned positions, the output head
//! tied to the token embedding.
//!
//! The parameters are kept in GPT-2's own layout: the names of
//! `transformers.GPT2Model` (`wte.weight`, `h.{i}.attn.c_attn.weight`, ...)
//! and its Conv1D matrices stored `[in, out]` (applied as `b + x W`, as
//! Conv1D does). A checkpoint is therefore the parameters as they are, with
//! the `transformer.` prefix of `GPT2LMHeadModel` (whose `lm_head.weight` is
//! tied to `transformer.wte.weight` and not stored).

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::TrainError;

/// The prefix of the weights in a checkpoint (`GPT2LMHeadModel`'s layout).
pub const PREFIX: &str = "transformer.";
/// The standard deviation of the initial weights (GPT-2's `initializer_range`).
pub const INIT_STD: f64 = 0.02;

fn default_eps() -> f64 {
    1e-5
}

/// The shape of a GPT-2 model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// The longest sequence the model sees (GPT-2's `n_positions`).
    pub context_length: usize,
    /// Dropout on the embeddings, the attention probabilities and both
    /// residual branches (GPT-2's `embd_pdrop`, `attn_pdrop`, `resid_pdrop`).
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
}

impl GptConfig {
    /// Checks the sizes; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), TrainError> {
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("context_length", self.context_length),
        ] {
            if value == 0 {
                return Err(TrainError::Config(format!("model `{name}` is 0: it must be a positive integer")));
            }
        }
        if self.n_embd % self.n_head != 0 {
            let (e, h) = (self.n_embd, self.n_head);
            let below = e / h * h;
            let above = below + h;
            let divisors: Vec<String> =
                (1..=e.min(64)).filter(|d| e % d == 0).map(|d| d.to_string()).collect::<Vec<_>>();
            let mut fix = format!("set n_embd to a multiple of {h} (e.g. ");
            if below > 0 {
                fix.push_str(&format!("{below} or "));
            }
            fix.push_str(&format!("{above}) or n_head to a divisor of {e} ({})", divisors.join(", ")));
            return Err(TrainError::Config(format!(
                "model `n_embd` ({e}) is not divisible by `n_head` ({h}): every attention head gets n_embd / n_head dimensions; {fix}"
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::Config(format!(
                "model `dropout` is {}: it must be at least 0 and below 1 (0 switches dropout off)",
                self.dropout
            )));
        }
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            return Err(TrainError::Config(format!(
                "model `layer_norm_epsilon` is {}: it must be positive (GPT-2 uses 1e-5)",
                self.layer_norm_epsilon
            )));
        }
        Ok(())
    }

    /// The checkpoint's config.json: what `transformers.GPT2Config` and
    /// voxflow's `LanguageModel::load` read.
    pub fn hf_json(&self) -> serde_json::Value {
        serde_json::json!({
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": self.vocab_size,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "n_positions": self.context_length,
            "n_ctx": self.context_length,
            "n_inner": null,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation_function": "gelu_new",
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": self.dropout,
            "initializer_range": INIT_STD,
            "scale_attn_weights": true,
            "scale_attn_by_inverse_layer_idx": false,
            "reorder_and_upcast_attn": false,
            "tie_word_embeddings": true,
            "use_cache": true,
            "torch_dtype": "float32",
        })
    }

    /// Reads a GPT-2 config.json (as written by [`GptConfig::hf_json`] or by transformers).
    pub fn from_hf_json(path: &Path) -> Result<GptConfig, TrainError> {
        #[derive(Deserialize)]
        struct Raw {
            model_type: String,
            vocab_size: usize,
            n_layer: usize,
            n_head: usize,
            n_embd: usize,
            n_positions: usize,
            layer_norm_epsilon: Option<f64>,
            activation_function: Option<String>,
            resid_pdrop: Option<f64>,
            n_inner: Option<usize>,
        }
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
        let raw: Raw =
            serde_json::from_str(&text).map_err(|e| TrainError::file(path, format!("not a GPT-2 config: {e}")))?;
        if raw.model_type != "gpt2" {
            return Err(TrainError::file(path, format!("model_type is `{}`, not `gpt2`", raw.model_type)));
        }
        let activation = raw.activation_function.unwrap_or_else(|| "gelu_new".into());
        if !matches!(activation.as_str(), "gelu_new" | "gelu_pytorch_tanh") {
            return Err(TrainError::file(
                path,
                format!("activation_function `{activation}`: training supports gelu_new"),
            ));
        }
        if raw.n_inner.is_some_and(|n| n != 4 * raw.n_embd) {
            return Err(TrainError::file(path, "n_inner is not 4 * n_embd: training supports GPT-2's MLP width only"));
        }
        let config = GptConfig {
            vocab_size: raw.vocab_size,
            n_layer: raw.n_layer,
            n_head: raw.n_head,
            n_embd: raw.n_embd,
            context_length: raw.n_positions,
            dropout: raw.resid_pdrop.unwrap_or(0.0),
            layer_norm_epsilon: raw.layer_norm_epsilon.unwrap_or_else(default_eps),
        };
        config.validate()?;
        Ok(config)
    }

    /// The parameters in their fixed order: (GPT-2 name, shape).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (v, d, t) = (self.vocab_size as i64, self.n_embd as i64, self.context_length as i64);
        let mut shapes = vec![("wte.weight".to_string(), vec![v, d]), ("wpe.weight".to_string(), vec![t, d])];
        for l in 0..self.n_layer {
            for (name, shape) in [
                ("ln_1.weight", vec![d]),
                ("ln_1.bias", vec![d]),
                ("attn.c_attn.weight", vec![d, 3 * d]),
                ("attn.c_attn.bias", vec![3 * d]),
                ("attn.c_proj.weight", vec![d, d]),
                ("attn.c_proj.bias", vec![d]),
                ("ln_2.weight", vec![d]),
                ("ln_2.bias", vec![d]),
                ("mlp.c_fc.weight", vec![d, 4 * d]),
                ("mlp.c_fc.bias", vec![4 * d]),
                ("mlp.c_proj.weight", vec![4 * d, d]),
                ("mlp.c_proj.bias", vec![d]),
            ] {
                shapes.push((format!("h.{l}.{name}"), shape));
            }
        }
        shapes.push(("ln_f.weight".into(), vec![d]));
        shapes.push(("ln_f.bias".into(), vec![d]));
        shapes
    }

    /// The number of trainable parameters (the tied head counted once).
    pub fn parameter_count(&self) -> usize {
        self.parameter_shapes().iter().map(|(_, s)| s.iter().product::<i64>() as usize).sum()
    }
}

/// Whether a parameter gets weight decay: every matrix (embeddings and
/// Conv1D weights, as nanoGPT), never biases or LayerNorm.
pub fn decays(name: &str) -> bool {
    name.ends_with(".weight") && !name.contains("ln_")
}

/// The initial value of a parameter, GPT-2/nanoGPT style: N(0, 0.02) for
/// matrices, N(0, 0.02 / sqrt(2 n_layer)) for the residual projections
/// (`attn.c_proj`, `mlp.c_proj`), zeros for biases, ones for LayerNorm weights.
fn init_values(name: &str, numel: usize, n_layer: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    if name.contains("ln_") {
        let one = if name.ends_with(".weight") { 1.0 } else { 0.0 };
        return vec![one; numel];
    }
    if name.ends_with(".bias") {
        return vec![0.0; numel];
    }
    let std = if name.ends_with("c_proj.weight") { INIT_STD / (2.0 * n_layer as f64).sqrt() } else { INIT_STD };
    let normal = Normal::new(0.0f32, std as f32).expect("positive std");
    (0..numel).map(|_| normal.sample(rng)).collect()
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

/// GPT-2's Conv1D: `bias + x weight`, weight `[in, out]`.
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

struct Block {
    ln_1: Norm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: Norm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

/// A GPT-2 language model with trainable (requires-grad) float32 parameters.
pub struct GptModel {
    pub config: GptConfig,
    pub device: Device,
    /// (name, tensor) in [`GptConfig::parameter_shapes`] order; the
    /// tensors share storage with the fields below.
    params: Vec<(String, Tensor)>,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
}

impl GptModel {
    /// A model with GPT-2's initialisation, drawn from `seed` by a ChaCha8
    /// generator on the host (the same values on every device and libtorch).
    pub fn new(config: &GptConfig, seed: u64, device: Device) -> Result<GptModel, TrainError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = Vec::new();
        for (name, shape) in config.parameter_shapes() {
            let numel = shape.iter().product::<i64>() as usize;
            let values = init_values(&name, numel, config.n_layer, &mut rng);
            tensors.push((name, Tensor::from_slice(&values).view(shape.as_slice())));
        }
        GptModel::from_tensors(config, tensors, device)
    }

    /// A model from named tensors (GPT-2 names without prefix, Conv1D
    /// `[in, out]`): every parameter must be there with its shape; other
    /// tensors (buffers such as `h.0.attn.bias`) are ignored.
    pub fn from_tensors(
        config: &GptConfig,
        tensors: Vec<(String, Tensor)>,
        device: Device,
    ) -> Result<GptModel, TrainError> {
        config.validate()?;
        crate::device::init_torch();
        let mut by_name: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut params = Vec::new();
        for (name, shape) in config.parameter_shapes() {
            let tensor = by_name.remove(&name).ok_or_else(|| {
                TrainError::Config(format!(
                    "the weights have no tensor `{name}`, which this model ({} layers) needs",
                    config.n_layer
                ))
            })?;
            if tensor.size() != shape {
                return Err(TrainError::Config(format!(
                    "tensor `{name}` has shape {:?} but the model config needs {shape:?}",
                    tensor.size()
                )));
            }
            let tensor = tensor.to_kind(Kind::Float).to_device(device).contiguous().detach().set_requires_grad(true);
            params.push((name, tensor));
        }
        let get = |name: &str| -> Tensor {
            params.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()).expect("parameter listed")
        };
        let norm =
            |prefix: &str| Norm { weight: get(&format!("{prefix}.weight")), bias: get(&format!("{prefix}.bias")) };
        let conv =
            |prefix: &str| Conv1D { weight: get(&format!("{prefix}.weight")), bias: get(&format!("{prefix}.bias")) };
        let blocks = (0..config.n_layer)
            .map(|l| Block {
                ln_1: norm(&format!("h.{l}.ln_1")),
                c_attn: conv(&format!("h.{l}.attn.c_attn")),
                attn_proj: conv(&format!("h.{l}.attn.c_proj")),
                ln_2: norm(&format!("h.{l}.ln_2")),
                c_fc: conv(&format!("h.{l}.mlp.c_fc")),
                mlp_proj: conv(&format!("h.{l}.mlp.c_proj")),
            })
            .collect();
        let (wte, wpe, ln_f) = (get("wte.weight"), get("wpe.weight"), norm("ln_f"));
        Ok(GptModel { config: config.clone(), device, params, wte, wpe, blocks, ln_f })
    }

    /// The parameters, (GPT-2 name, tensor), in a fixed order. The tensors
    /// are the model's own (shared storage): updating them in place
    /// (under `no_grad`) updates the model.
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    fn layer_norm(&self, x: &Tensor, norm: &Norm) -> Tensor {
        x.layer_norm(
            [self.config.n_embd as i64],
            Some(&norm.weight),
            Some(&norm.bias),
            self.config.layer_norm_epsilon,
            true,
        )
    }

    fn conv1d(x: &Tensor, conv: &Conv1D) -> Tensor {
        let mut shape = x.size();
        let inner = *shape.last().expect("activations have a last dimension");
        *shape.last_mut().expect("last") = conv.weight.size()[1];
        conv.bias.addmm(&x.reshape([-1, inner]), &conv.weight).view(shape.as_slice())
    }

    /// The logits `[B, T, vocab]` for token ids `ids` (`[B, T]`, int64, on
    /// the model's device, T at most `context_length`); `train` switches
    /// dropout on.
    pub fn forward(&self, ids: &Tensor, train: bool) -> Tensor {
        self.forward_with_sublayers(ids, train).0
    }

    /// The logits and, per block, its two sublayer outputs after their
    /// residual adds: `[x + attn(ln_1(x)), x' + mlp(ln_2(x'))]` for block 0,
    /// then block 1, ... (`2 n_layer` tensors, `[B, T, n_embd]`): the unit
    /// responses TopoLM's spatial loss reads.
    pub fn forward_with_sublayers(&self, ids: &Tensor, train: bool) -> (Tensor, Vec<Tensor>) {
        let (x, sublayers) = self.trunk(ids, train);
        let logits = self.layer_norm(&x, &self.ln_f).linear(&self.wte, None::<Tensor>);
        (logits, sublayers)
    }

    /// The hidden states as `LanguageModel::hidden_states` gives them: state
    /// 0 the embeddings, state `l` block `l`'s output, the last with the
    /// final LayerNorm applied (as transformers does). No gradients, no dropout.
    pub fn hidden_states(&self, ids: &Tensor) -> Vec<Tensor> {
        let _guard = tch::no_grad_guard();
        let (x, sublayers) = self.trunk(ids, false);
        let mut states = vec![self.embed(ids, false)];
        let n = self.config.n_layer;
        for l in 0..n {
            if l + 1 == n {
                states.push(self.layer_norm(&x, &self.ln_f));
            } else {
                states.push(sublayers[2 * l + 1].shallow_clone());
            }
        }
        states
    }

    fn embed(&self, ids: &Tensor, train: bool) -> Tensor {
        let (_, t) = ids.size2().expect("ids are [batch, tokens]");
        assert!(
            t as usize <= self.config.context_length,
            "{t} tokens per sequence, more than the model's context_length {}",
            self.config.context_length
        );
        let positions = Tensor::arange(t, (Kind::Int64, self.device));
        let tokens = Tensor::embedding(&self.wte, ids, -1, false, false);
        let pos = Tensor::embedding(&self.wpe, &positions, -1, false, false);
        (tokens + pos.unsqueeze(0)).dropout(self.config.dropout, train)
    }

    /// The residual stream after the last block, and the sublayer outputs.
    fn trunk(&self, ids: &Tensor, train: bool) -> (Tensor, Vec<Tensor>) {
        let p = if train { self.config.dropout } else { 0.0 };
        let mut x = self.embed(ids, train);
        let (b, t, d) = x.size3().expect("[B, T, D]");
        let h = self.config.n_head as i64;
        let mut sublayers = Vec::with_capacity(2 * self.config.n_layer);
        for block in &self.blocks {
            let qkv = Self::conv1d(&self.layer_norm(&x, &block.ln_1), &block.c_attn);
            let parts = qkv.split(d, -1);
            let heads = |y: &Tensor| y.view([b, t, h, d / h]).transpose(1, 2);
            let context = Tensor::scaled_dot_product_attention(
                &heads(&parts[0]),
                &heads(&parts[1]),
                &heads(&parts[2]),
                None::<Tensor>,
                p,
                true,
                None,
                false,
            );
            let context = context.transpose(1, 2).contiguous().view([b, t, d]);
            x = &x + Self::conv1d(&context, &block.attn_proj).dropout(p, train);
            sublayers.push(x.shallow_clone());
            let inner = Self::conv1d(&self.layer_norm(&x, &block.ln_2), &block.c_fc).gelu("tanh");
            x = &x + Self::conv1d(&inner, &block.mlp_proj).dropout(p, train);
            sublayers.push(x.shallow_clone());
        }
        (x, sublayers)
    }

    /// Mean next-token cross-entropy of `logits` (`[B, T, V]`) against `targets` (`[B, T]`).
    pub fn loss(logits: &Tensor, targets: &Tensor) -> Tensor {
        let v = *logits.size().last().expect("logits have a vocabulary dimension");
        logits.reshape([-1, v]).cross_entropy_for_logits(&targets.reshape([-1]))
    }

    /// The weights as a checkpoint holds them: `transformer.`-prefixed
    /// GPT-2 names, float32, contiguous, on the CPU.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|(name, t)| (format!("{PREFIX}{name}"), t.detach().to_device(Device::Cpu).contiguous()))
            .collect()
    }

    /// Writes a Hugging Face checkpoint into `dir` (atomically: a temp
    /// directory renamed into place): config.json ([`GptConfig::hf_json`]),
    /// model.safetensors in GPT2LMHeadModel's layout, and a copy of
    /// `tokenizer` as tokenizer.json when given (features.lm needs one).
    pub fn save_hf(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), TrainError> {
        super::checkpoint::write_dir_atomically(dir, |tmp| self.write_hf_files(tmp, tokenizer))
    }

    /// The files of [`GptModel::save_hf`], written into an existing directory.
    pub(crate) fn write_hf_files(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), TrainError> {
        let config = dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.config.hf_json()).expect("JSON");
        std::fs::write(&config, text + "\n").map_err(|e| TrainError::file(&config, e))?;
        Tensor::write_safetensors(&self.checkpoint_tensors(), dir.join("model.safetensors"))?;
        if let Some(source) = tokenizer {
            std::fs::copy(source, dir.join("tokenizer.json")).map_err(|e| TrainError::file(source, e))?;
        }
        Ok(())
    }

    /// Loads a checkpoint written by [`GptModel::save_hf`] (or a
    /// transformers GPT-2 with the same architecture) for further training.
    pub fn load_hf(dir: &Path, device: Device) -> Result<GptModel, TrainError> {
        let config = GptConfig::from_hf_json(&dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        let tensors = Tensor::read_safetensors(&path)
            .map_err(|e| TrainError::file(&path, e))?
            .into_iter()
            .filter(|(name, _)| name != "lm_head.weight")
            .map(|(name, t)| (name.strip_prefix(PREFIX).map(str::to_string).unwrap_or(name), t))
            .collect();
        GptModel::from_tensors(&config, tensors, device).map_err(|e| TrainError::file(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> GptConfig {
        GptConfig {
            vocab_size: 11,
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            context_length: 6,
            dropout: 0.0,
            layer_norm_epsilon: 1e-5,
        }
    }

    #[test]
    fn bad_head_count_names_both_numbers_and_the_fix() {
        let config = GptConfig { n_embd: 50, n_head: 3, ..tiny() };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("`n_embd` (50)") && message.contains("`n_head` (3)"), "{message}");
        assert!(message.contains("48 or 51") && message.contains("divisor of 50 (1, 2, 5, 10, 25, 50)"), "{message}");
        let message = GptConfig { n_layer: 0, ..tiny() }.validate().unwrap_err().to_string();
        assert!(message.contains("n_layer"), "{message}");
    }

    #[test]
    fn init_is_gpt2s_and_seeded() {
        let config = GptConfig { n_embd: 64, n_head: 4, vocab_size: 300, n_layer: 3, ..tiny() };
        let a = GptModel::new(&config, 7, Device::Cpu).unwrap();
        let b = GptModel::new(&config, 7, Device::Cpu).unwrap();
        let c = GptModel::new(&config, 8, Device::Cpu).unwrap();
        assert_eq!(a.parameters().len(), 2 + 12 * 3 + 2);
        for ((name, x), (_, y)) in a.parameters().iter().zip(b.parameters()) {
            assert!(x.equal(y), "{name}");
        }
        assert!(!a.parameters()[0].1.equal(&c.parameters()[0].1));
        let std = |name: &str| {
            let t = &a.parameters().iter().find(|(n, _)| n == name).unwrap().1;
            t.std(true).double_value(&[])
        };
        assert!((std("wte.weight") - 0.02).abs() < 0.001);
        assert!((std("h.1.mlp.c_proj.weight") - 0.02 / 6f64.sqrt()).abs() < 0.001);
        assert_eq!(std("h.0.attn.c_attn.bias"), 0.0);
        let ln = &a.parameters().iter().find(|(n, _)| n == "ln_f.weight").unwrap().1;
        assert!(ln.equal(&Tensor::ones([64], (Kind::Float, Device::Cpu))));
        assert!(decays("wte.weight") && decays("h.0.mlp.c_fc.weight"));
        assert!(!decays("h.0.ln_1.weight") && !decays("h.0.mlp.c_fc.bias") && !decays("ln_f.weight"));
    }

    #[test]
    fn sublayers_are_the_residual_stream() {
        let model = GptModel::new(&tiny(), 1, Device::Cpu).unwrap();
        let ids = Tensor::from_slice(&[1i64, 4, 2, 9, 0, 3]).view([2, 3]);
        let (logits, sublayers) = model.forward_with_sublayers(&ids, false);
        assert_eq!(logits.size(), [2, 3, 11]);
        assert_eq!(sublayers.len(), 4);
        let states = model.hidden_states(&ids);
        assert_eq!(states.len(), 3);
        assert!(states[1].allclose(&sublayers[1], 0.0, 0.0, false));
        // Causal: the first token's logits do not depend on the later tokens.
        let other = Tensor::from_slice(&[1i64, 5, 5, 9, 1, 1]).view([2, 3]);
        let logits2 = model.forward(&other, false);
        assert!(logits.get(0).get(0).allclose(&logits2.get(0).get(0), 0.0, 0.0, false));
    }
}
