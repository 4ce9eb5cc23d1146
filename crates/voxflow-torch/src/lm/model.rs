//! Transformer language models in libtorch (tch), loaded from a Hugging Face
//! style directory: `config.json`, `model.safetensors`, `tokenizer.json`.
//!
//! - `model_type: bert` (BERT-family encoders, e.g. all-MiniLM-L6-v2): the
//!   forward pass of `transformers.BertModel` in eval mode.
//! - `model_type: gpt2`: the causal models voxflow's training stages write
//!   (the checkpoint format: GPT-2's parameter names, so
//!   `transformers.GPT2Model.from_pretrained` opens them too); the forward
//!   pass of `transformers.GPT2Model`.
//! - `model_type: gpt_neox` (Pythia): the forward pass of
//!   `transformers.GPTNeoXModel`: LayerNorm, rotary embeddings on the first
//!   `partial_rotary_factor` (`rotary_pct`) of each head's dims, the fused
//!   `query_key_value` weight split per head as [q, k, v], parallel or
//!   sequential residual (`use_parallel_residual`, required), GELU MLP.
//! - `model_type: llama`: the forward pass of `transformers.LlamaModel`:
//!   RMSNorm (`rms_norm_eps`), rotary embeddings on the whole head
//!   (`rope_theta`), grouped-query attention (`num_key_value_heads`), gated
//!   SiLU MLP, biases where the weights have them.
//!
//! - `model_type: voxflow-topoformer` (train.topoformer's checkpoints,
//!   `architectures: [TopoformerForMaskedLM]` for `task: mlm`; a
//!   classifier loads too): the encoder of
//!   [`crate::train::topoformer::TopoformerModel`] itself, bidirectional,
//!   no special tokens around a window; state 0 the token plus position
//!   embeddings, state l the output of block l (after its second
//!   LayerNorm), the same tensors the training-time forward pass computes.
//!
//! Rotary embeddings: only the default (unscaled) kind; a config with a
//! `rope_scaling` / `rope_parameters.rope_type` other than `default` is
//! refused. The language-model heads (`lm_head`, `embed_out`) are not
//! loaded, so `tie_word_embeddings` does not matter for hidden states.
//!
//! Hidden state `0` is the embedding output, state `l` the output of block
//! `l`; as in transformers' `output_hidden_states=True`, the causal models'
//! (GPT-2, GPT-NeoX, Llama) last state has the final norm applied
//! (`ln_f`, `final_layer_norm`, `norm`): it is `last_hidden_state`, not the
//! raw output of the last block.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Kind, Tensor};
use tokenizers::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error("{0}")]
    Files(String),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{0}")]
    Mismatch(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Bert,
    Gpt2,
    GptNeox,
    Llama,
    Topoformer,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    model_type: String,
    vocab_size: usize,
    // BERT names
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    // GPT-2 names
    n_embd: Option<usize>,
    n_layer: Option<usize>,
    n_head: Option<usize>,
    n_positions: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    // GPT-NeoX and Llama names
    rms_norm_eps: Option<f64>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    use_parallel_residual: Option<bool>,
    rotary_pct: Option<f64>,
    rotary_emb_base: Option<f64>,
    partial_rotary_factor: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    tie_word_embeddings: Option<bool>,
}

/// The shape of a loaded model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub max_positions: usize,
    pub eps: f64,
    /// `gelu` (erf), `gelu_new` (tanh approximation), `relu` or `silu`.
    pub activation: String,
    /// Key/value heads (GPT-NeoX, BERT, GPT-2: `heads`; Llama: `num_key_value_heads`).
    pub kv_heads: usize,
    /// Dims per attention head.
    pub head_dim: usize,
    /// Leading dims of each head that get rotary embeddings (0: none).
    pub rotary_dims: usize,
    /// Rotary base (`rope_theta`, `rotary_emb_base`).
    pub rope_theta: f64,
    /// GPT-NeoX: attention and MLP both read the block input (true) or the
    /// MLP reads the attention's output (false).
    pub parallel_residual: bool,
    /// Whether the language-model head is the token embedding
    /// (`tie_word_embeddings`; transformers' defaults: GPT-2 true, GPT-NeoX
    /// and Llama false).
    pub tied_head: bool,
}

/// The rotary settings of a GPT-NeoX or Llama config, as transformers reads
/// them: `rope_parameters` (transformers 5), else the legacy `rope_scaling`,
/// `rope_theta` / `rotary_emb_base`, `rotary_pct` / `partial_rotary_factor`.
/// Returns (theta, partial rotary factor).
fn rope_settings(raw: &RawConfig, path: &Path, default_partial: f64) -> Result<(f64, f64), LmError> {
    let unsupported = |field: &str, value: &str| {
        LmError::Config {
        path: path.into(),
        message: format!(
            "`{field}` is `{value}`: voxflow implements only the default rotary embedding (rope_type `default`, no scaling); \
             use a model without rope scaling, or extract its features in transformers"
        ),
    }
    };
    let number = |v: &serde_json::Value, field: &str| -> Result<Option<f64>, LmError> {
        match v.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| LmError::Config {
                path: path.into(),
                message: format!("`{field}` is {x}, not a number"),
            }),
        }
    };
    // As transformers: a legacy `rope_scaling` takes the place of `rope_parameters`.
    let (params, name) = match (&raw.rope_scaling, &raw.rope_parameters) {
        (Some(v), _) if !v.is_null() => (Some(v), "rope_scaling"),
        (_, Some(v)) if !v.is_null() => (Some(v), "rope_parameters"),
        _ => (None, ""),
    };
    let mut theta = raw.rope_theta.or(raw.rotary_emb_base);
    let mut partial = raw.rotary_pct.or(raw.partial_rotary_factor);
    if let Some(params) = params {
        if !params.is_object() {
            return Err(LmError::Config { path: path.into(), message: format!("`{name}` is {params}, not an object") });
        }
        let kind = params.get("rope_type").or_else(|| params.get("type")).and_then(|t| t.as_str()).unwrap_or("default");
        if kind != "default" {
            return Err(unsupported(&format!("{name}.rope_type"), kind));
        }
        for factor in ["factor", "scaling_factor"] {
            if let Some(f) = number(params, factor)? {
                if f != 1.0 {
                    return Err(unsupported(&format!("{name}.{factor}"), &f.to_string()));
                }
            }
        }
        theta = number(params, "rope_theta")?.or(theta);
        partial = number(params, "partial_rotary_factor")?.or(partial);
    }
    let theta = theta.unwrap_or(10000.0);
    let partial = partial.unwrap_or(default_partial);
    if theta.is_nan() || theta <= 0.0 || partial.is_nan() || partial <= 0.0 || partial > 1.0 {
        return Err(LmError::Config {
            path: path.into(),
            message: format!("rotary base {theta} / fraction {partial} out of range: the base must be positive, the fraction in (0, 1]"),
        });
    }
    Ok((theta, partial))
}

/// A model on a device, with its tokenizer.
pub struct LanguageModel {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub device: tch::Device,
    weights: HashMap<String, Tensor>,
    /// `[CLS]` and `[SEP]` ids for BERT-family models.
    pub cls_sep: Option<(i64, i64)>,
    pub unk_id: Option<u32>,
    pub dir: PathBuf,
    /// `Arch::Topoformer`: the model itself (`weights` is empty).
    topoformer: Option<crate::train::topoformer::TopoformerModel>,
}

/// A story's words as tokens: `ids` concatenated, word `i` owns `spans[i]`.
#[derive(Clone, Debug, Default)]
pub struct TokenizedWords {
    pub ids: Vec<i64>,
    pub spans: Vec<std::ops::Range<usize>>,
    /// Words with at least one token the tokenizer could not map (unknown token).
    pub unknown_words: Vec<String>,
}

fn need(dir: &Path, file: &str) -> Result<PathBuf, LmError> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(LmError::Files(format!(
            "model directory {} has no {file}; a model directory needs config.json, model.safetensors and tokenizer.json (Hugging Face layout)",
            dir.display()
        )))
    }
}

impl ModelConfig {
    fn read(path: &Path) -> Result<ModelConfig, LmError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LmError::Config { path: path.into(), message: format!("cannot read: {e}") })?;
        let raw: RawConfig = serde_json::from_str(&text)
            .map_err(|e| LmError::Config { path: path.into(), message: format!("not a model config: {e}") })?;
        let missing = |name: &str| LmError::Config {
            path: path.into(),
            message: format!("`{name}` is missing for a {} model", raw.model_type),
        };
        match raw.model_type.as_str() {
            "bert" => Ok(ModelConfig {
                arch: Arch::Bert,
                vocab_size: raw.vocab_size,
                hidden: raw.hidden_size.ok_or_else(|| missing("hidden_size"))?,
                layers: raw.num_hidden_layers.ok_or_else(|| missing("num_hidden_layers"))?,
                heads: raw.num_attention_heads.ok_or_else(|| missing("num_attention_heads"))?,
                max_positions: raw.max_position_embeddings.unwrap_or(512),
                eps: raw.layer_norm_eps.unwrap_or(1e-12),
                activation: raw.hidden_act.clone().unwrap_or_else(|| "gelu".into()),
                kv_heads: 0,
                head_dim: 0,
                rotary_dims: 0,
                rope_theta: 0.0,
                parallel_residual: false,
                tied_head: raw.tie_word_embeddings.unwrap_or(true),
            }
            .with_plain_heads()),
            "gpt2" => Ok(ModelConfig {
                arch: Arch::Gpt2,
                vocab_size: raw.vocab_size,
                hidden: raw.n_embd.ok_or_else(|| missing("n_embd"))?,
                layers: raw.n_layer.ok_or_else(|| missing("n_layer"))?,
                heads: raw.n_head.ok_or_else(|| missing("n_head"))?,
                max_positions: raw.n_positions.unwrap_or(1024),
                eps: raw.layer_norm_epsilon.unwrap_or(1e-5),
                activation: raw.activation_function.clone().unwrap_or_else(|| "gelu_new".into()),
                kv_heads: 0,
                head_dim: 0,
                rotary_dims: 0,
                rope_theta: 0.0,
                parallel_residual: false,
                tied_head: raw.tie_word_embeddings.unwrap_or(true),
            }
            .with_plain_heads()),
            "gpt_neox" | "llama" => {
                let neox = raw.model_type == "gpt_neox";
                let hidden = raw.hidden_size.ok_or_else(|| missing("hidden_size"))?;
                let heads = raw.num_attention_heads.ok_or_else(|| missing("num_attention_heads"))?;
                let layers = raw.num_hidden_layers.ok_or_else(|| missing("num_hidden_layers"))?;
                let bad = |message: String| LmError::Config { path: path.into(), message };
                if heads == 0 || (neox && hidden % heads != 0) {
                    return Err(bad(format!("`num_attention_heads` {heads} does not divide `hidden_size` {hidden}")));
                }
                let head_dim = if neox { hidden / heads } else { raw.head_dim.unwrap_or(hidden / heads) };
                let kv_heads = if neox { heads } else { raw.num_key_value_heads.unwrap_or(heads) };
                if kv_heads == 0 || heads % kv_heads != 0 {
                    return Err(bad(format!(
                        "`num_key_value_heads` {kv_heads} does not divide `num_attention_heads` {heads}: grouped-query attention needs whole groups"
                    )));
                }
                let parallel_residual = if neox {
                    raw.use_parallel_residual.ok_or_else(|| LmError::Config {
                        path: path.into(),
                        message: "`use_parallel_residual` is missing for a gpt_neox model: it decides whether attention and MLP \
                                  read the same block input (true, as in Pythia) or one after the other (false); \
                                  add `\"use_parallel_residual\": true` or `false` to config.json as the model was trained"
                            .into(),
                    })?
                } else {
                    false
                };
                // transformers: GPT-NeoX rotates `partial_rotary_factor` (default 0.25) of
                // each head; Llama's default rotary ignores the factor and rotates the whole head.
                let (rope_theta, partial) = rope_settings(&raw, path, 0.25)?;
                let rotary_dims = if neox { (head_dim as f64 * partial) as usize } else { head_dim };
                let activation = raw.hidden_act.clone().unwrap_or_else(|| if neox { "gelu" } else { "silu" }.into());
                if !["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish"]
                    .contains(&activation.as_str())
                {
                    return Err(bad(format!(
                        "`hidden_act` `{activation}` is not supported: voxflow runs gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu and silu"
                    )));
                }
                Ok(ModelConfig {
                    arch: if neox { Arch::GptNeox } else { Arch::Llama },
                    vocab_size: raw.vocab_size,
                    hidden,
                    layers,
                    heads,
                    max_positions: raw.max_position_embeddings.unwrap_or(2048),
                    eps: if neox { raw.layer_norm_eps.unwrap_or(1e-5) } else { raw.rms_norm_eps.unwrap_or(1e-6) },
                    activation,
                    kv_heads,
                    head_dim,
                    rotary_dims,
                    rope_theta,
                    parallel_residual,
                    tied_head: raw.tie_word_embeddings.unwrap_or(false),
                })
            }
            crate::train::topoformer::MODEL_TYPE => {
                let t = crate::train::topoformer::TopoformerConfig::read(path)
                    .map_err(|e| LmError::Config { path: path.into(), message: e.to_string() })?;
                Ok(ModelConfig {
                    arch: Arch::Topoformer,
                    vocab_size: t.vocab_size,
                    hidden: t.n_embd,
                    layers: t.n_layer,
                    heads: t.n_head,
                    max_positions: t.context_length,
                    eps: t.layer_norm_epsilon,
                    activation: "relu".into(),
                    kv_heads: 0,
                    head_dim: 0,
                    rotary_dims: 0,
                    rope_theta: 0.0,
                    parallel_residual: false,
                    tied_head: true,
                }
                .with_plain_heads())
            }
            other => Err(LmError::Config {
                path: path.into(),
                message: format!(
                    "model_type `{other}` is not supported: voxflow runs `bert`, `gpt2`, `gpt_neox` and `llama` models"
                ),
            }),
        }
    }

    /// BERT and GPT-2: every head has its own keys and values, no rotary.
    fn with_plain_heads(mut self) -> ModelConfig {
        self.kv_heads = self.heads;
        self.head_dim = self.hidden / self.heads.max(1);
        self
    }
}

impl LanguageModel {
    /// Loads the model in `dir` onto `device`, checking that the tokenizer
    /// fits the embedding and that every weight the forward pass needs is there.
    pub fn load(dir: &Path, device: tch::Device) -> Result<LanguageModel, LmError> {
        Self::load_with(dir, device, false)
    }

    /// Loads a causal model (GPT-2, GPT-NeoX, Llama) with its
    /// language-model head, for [`LanguageModel::logits`]; a BERT model is
    /// refused (it has no next-token probabilities).
    pub fn load_causal(dir: &Path, device: tch::Device) -> Result<LanguageModel, LmError> {
        let model = Self::load_with(dir, device, true)?;
        if model.config.arch == Arch::Topoformer {
            return Err(LmError::Mismatch(format!(
                "{} is a Topoformer (`model_type: voxflow-topoformer`), a bidirectional encoder without next-token probabilities: \
                 log-probabilities need a causal model (gpt2, gpt_neox or llama)",
                dir.display()
            )));
        }
        if model.config.arch == Arch::Bert {
            return Err(LmError::Mismatch(format!(
                "{} is a BERT model (`model_type: bert`), a bidirectional encoder without next-token probabilities: \
                 log-probabilities need a causal model (gpt2, gpt_neox or llama)",
                dir.display()
            )));
        }
        model.head()?;
        Ok(model)
    }

    fn load_with(dir: &Path, device: tch::Device, keep_head: bool) -> Result<LanguageModel, LmError> {
        crate::device::init_torch();
        if !dir.is_dir() {
            return Err(LmError::Files(format!("model directory {} does not exist", dir.display())));
        }
        let config = ModelConfig::read(&need(dir, "config.json")?)?;
        let weights_path = need(dir, "model.safetensors")?;
        let tokenizer_path = need(dir, "tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| LmError::Files(format!("{}: not a tokenizers file: {e}", tokenizer_path.display())))?;
        // Hidden states per word: never pad or cut what the tokenizer returns.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| LmError::Files(format!("{}: {e}", tokenizer_path.display())))?;
        let mut weights = HashMap::new();
        if config.arch == Arch::Topoformer {
            let model = crate::train::topoformer::TopoformerModel::load(dir, device)
                .map_err(|e| LmError::Mismatch(e.to_string()))?;
            let unk_id = ["[UNK]", "<unk>"].iter().find_map(|t| tokenizer.token_to_id(t));
            if config.vocab_size < tokenizer.get_vocab_size(true) {
                return Err(LmError::Mismatch(format!(
                    "the embedding in {} has {} rows but the tokenizer has {} tokens: they do not belong together",
                    weights_path.display(),
                    config.vocab_size,
                    tokenizer.get_vocab_size(true)
                )));
            }
            return Ok(LanguageModel {
                config,
                tokenizer,
                device,
                weights,
                cls_sep: None,
                unk_id,
                dir: dir.to_path_buf(),
                topoformer: Some(model),
            });
        }
        let prefixes: &[&str] = match config.arch {
            Arch::Bert | Arch::Gpt2 => &["bert.", "transformer."],
            Arch::GptNeox => &["gpt_neox."],
            Arch::Llama => &["model."],
            Arch::Topoformer => &[],
        };
        for (name, tensor) in Tensor::read_safetensors(&weights_path)? {
            let name = prefixes.iter().find_map(|p| name.strip_prefix(p)).map(str::to_string).unwrap_or(name);
            if !keep_head
                && matches!(config.arch, Arch::GptNeox | Arch::Llama)
                && (name == "embed_out.weight" || name == "lm_head.weight")
            {
                continue; // the language-model head: hidden states do not use it
            }
            if tensor.kind() == Kind::Int64 || tensor.kind() == Kind::Bool {
                continue; // buffers (position ids, masks)
            }
            let mut tensor = tensor.to_kind(Kind::Float);
            // GPT-2's Conv1D stores [in, out]; keep every matrix as [out, in] for `linear`.
            if config.arch == Arch::Gpt2 && tensor.dim() == 2 && name.starts_with("h.") {
                tensor = tensor.transpose(0, 1).contiguous();
            }
            weights.insert(name, tensor.to_device(device));
        }
        let cls_sep = match config.arch {
            Arch::Bert => {
                let id = |t: &str| tokenizer.token_to_id(t).map(i64::from);
                match (id("[CLS]"), id("[SEP]")) {
                    (Some(c), Some(s)) => Some((c, s)),
                    _ => {
                        return Err(LmError::Mismatch(format!(
                            "{} has no [CLS]/[SEP] tokens, which a BERT model needs: the tokenizer does not belong to this model",
                            tokenizer_path.display()
                        )))
                    }
                }
            }
            Arch::Gpt2 | Arch::GptNeox | Arch::Llama | Arch::Topoformer => None,
        };
        let unk_id = ["[UNK]", "<unk>"].iter().find_map(|t| tokenizer.token_to_id(t));
        let model = LanguageModel {
            config,
            tokenizer,
            device,
            weights,
            cls_sep,
            unk_id,
            dir: dir.to_path_buf(),
            topoformer: None,
        };
        model.check_weights(&weights_path)?;
        Ok(model)
    }

    fn check_weights(&self, path: &Path) -> Result<(), LmError> {
        let mut names = Vec::new();
        match self.config.arch {
            Arch::Bert => {
                names.extend(
                    ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"].map(String::from),
                );
                for l in 0..self.config.layers {
                    names.push(format!("encoder.layer.{l}.output.LayerNorm.weight"));
                }
            }
            Arch::Gpt2 => {
                names.extend(["wte.weight", "wpe.weight", "ln_f.weight"].map(String::from));
                for l in 0..self.config.layers {
                    names.push(format!("h.{l}.mlp.c_proj.weight"));
                }
            }
            Arch::GptNeox => {
                names.extend(["embed_in.weight", "final_layer_norm.weight"].map(String::from));
                for l in 0..self.config.layers {
                    for w in [
                        "input_layernorm",
                        "post_attention_layernorm",
                        "attention.query_key_value",
                        "attention.dense",
                        "mlp.dense_h_to_4h",
                        "mlp.dense_4h_to_h",
                    ] {
                        names.push(format!("layers.{l}.{w}.weight"));
                    }
                }
            }
            Arch::Llama => {
                names.extend(["embed_tokens.weight", "norm.weight"].map(String::from));
                for l in 0..self.config.layers {
                    for w in [
                        "input_layernorm",
                        "post_attention_layernorm",
                        "self_attn.q_proj",
                        "self_attn.k_proj",
                        "self_attn.v_proj",
                        "self_attn.o_proj",
                        "mlp.gate_proj",
                        "mlp.up_proj",
                        "mlp.down_proj",
                    ] {
                        names.push(format!("layers.{l}.{w}.weight"));
                    }
                }
            }
            Arch::Topoformer => return Ok(()),
        }
        if let Some(missing) = names.iter().find(|n| !self.weights.contains_key(*n)) {
            return Err(LmError::Mismatch(format!(
                "{} has no tensor `{missing}`: the weights do not match config.json ({:?}, {} layers)",
                path.display(),
                self.config.arch,
                self.config.layers
            )));
        }
        // The attention projections' rows must fit the heads config.json declares.
        let c = &self.config;
        let expected: Vec<(String, usize)> = match c.arch {
            Arch::GptNeox => {
                vec![("layers.0.attention.query_key_value.weight".into(), 3 * c.hidden)]
            }
            Arch::Llama => vec![
                ("layers.0.self_attn.q_proj.weight".into(), c.heads * c.head_dim),
                ("layers.0.self_attn.k_proj.weight".into(), c.kv_heads * c.head_dim),
            ],
            Arch::Bert | Arch::Gpt2 | Arch::Topoformer => vec![],
        };
        for (name, rows) in expected {
            if let Some(w) = self.opt(&name) {
                let got = w.size()[0] as usize;
                if got != rows {
                    return Err(LmError::Mismatch(format!(
                        "{}: `{name}` has {got} rows but config.json's heads ({} query, {} key/value, {} dims each) need {rows}: the weights do not match config.json",
                        path.display(),
                        c.heads,
                        c.kv_heads,
                        c.head_dim
                    )));
                }
            }
        }
        let rows = self
            .w(match self.config.arch {
                Arch::Bert => "embeddings.word_embeddings.weight",
                Arch::Gpt2 => "wte.weight",
                Arch::GptNeox => "embed_in.weight",
                Arch::Llama => "embed_tokens.weight",
                Arch::Topoformer => unreachable!("returned above"),
            })
            .size()[0] as usize;
        if rows < self.tokenizer.get_vocab_size(true) {
            return Err(LmError::Mismatch(format!(
                "the embedding in {} has {rows} rows but the tokenizer has {} tokens: they do not belong together",
                path.display(),
                self.tokenizer.get_vocab_size(true)
            )));
        }
        Ok(())
    }

    fn w(&self, name: &str) -> &Tensor {
        &self.weights[name]
    }

    /// The language-model head ([vocab, hidden]): the token embedding when
    /// tied, else `lm_head.weight` / `embed_out.weight` (loaded by
    /// [`LanguageModel::load_causal`]).
    fn head(&self) -> Result<&Tensor, LmError> {
        let embedding = match self.config.arch {
            Arch::Bert => "embeddings.word_embeddings.weight",
            Arch::Gpt2 => "wte.weight",
            Arch::GptNeox => "embed_in.weight",
            Arch::Llama => "embed_tokens.weight",
            Arch::Topoformer => {
                return Err(LmError::Mismatch("a Topoformer has no next-token head".into()));
            }
        };
        if self.config.tied_head {
            return Ok(self.w(embedding));
        }
        self.opt("lm_head.weight").or_else(|| self.opt("embed_out.weight")).ok_or_else(|| {
            LmError::Mismatch(format!(
                "{}: config.json has `tie_word_embeddings: false` but model.safetensors has no `lm_head.weight` or `embed_out.weight`: \
                 the language-model head is missing",
                self.dir.display()
            ))
        })
    }

    /// Next-token logits ([B, T, vocab], float32) for `ids` with
    /// `attention_mask` as in [`LanguageModel::hidden_states`]: the last
    /// hidden state (final norm applied) times the head, as
    /// `*ForCausalLM(...).logits`. Needs [`LanguageModel::load_causal`].
    pub fn logits(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor, LmError> {
        let head = self.head()?;
        let _guard = tch::no_grad_guard();
        let last = self.hidden_states(ids, attention_mask, &[self.config.layers]).pop().expect("one layer asked");
        Ok(last.matmul(&head.transpose(0, 1)))
    }

    fn opt(&self, name: &str) -> Option<&Tensor> {
        self.weights.get(name)
    }

    /// Whether a token's state depends only on the tokens before it.
    pub fn causal(&self) -> bool {
        !matches!(self.config.arch, Arch::Bert | Arch::Topoformer)
    }

    /// Tokens added around a window: (before, after).
    pub fn specials(&self) -> (usize, usize) {
        if self.cls_sep.is_some() {
            (1, 1)
        } else {
            (0, 0)
        }
    }

    /// Tokenises a story word by word (a space before every word after the
    /// first, no special tokens), so that word `i`'s tokens are known exactly.
    pub fn tokenize_words(&self, words: &[&str]) -> Result<TokenizedWords, LmError> {
        let mut out = TokenizedWords::default();
        for (i, word) in words.iter().enumerate() {
            let text = if i == 0 { word.to_string() } else { format!(" {word}") };
            let encoding = self
                .tokenizer
                .encode(text, false)
                .map_err(|e| LmError::Mismatch(format!("tokenizer failed on {word:?}: {e}")))?;
            let start = out.ids.len();
            let ids = encoding.get_ids();
            if self.unk_id.is_some_and(|unk| ids.contains(&unk)) {
                out.unknown_words.push(word.to_string());
            }
            out.ids.extend(ids.iter().map(|&id| id as i64));
            out.spans.push(start..out.ids.len());
        }
        Ok(out)
    }

    fn layer_norm(&self, x: &Tensor, prefix: &str) -> Tensor {
        let (w, b) = (self.w(&format!("{prefix}.weight")), self.w(&format!("{prefix}.bias")));
        x.layer_norm([self.config.hidden as i64], Some(w), Some(b), self.config.eps, true)
    }

    fn linear(&self, x: &Tensor, prefix: &str) -> Tensor {
        x.linear(self.w(&format!("{prefix}.weight")), self.opt(&format!("{prefix}.bias")))
    }

    fn activation(&self, x: &Tensor) -> Tensor {
        match self.config.activation.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => x.gelu("tanh"),
            "relu" => x.relu(),
            "silu" | "swish" => x.silu(),
            _ => x.gelu("none"),
        }
    }

    /// Multi-head attention of `q`, `k`, `v` ([B, T, D]) with an additive
    /// mask broadcast to [B, H, T, T].
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Tensor {
        let (b, t, d) = q.size3().expect("3-d activations");
        let h = self.config.heads as i64;
        let split = |x: &Tensor| x.view([b, t, h, d / h]).transpose(1, 2);
        let (q, k, v) = (split(q), split(k), split(v));
        let scores = q.matmul(&k.transpose(-1, -2)) / ((d / h) as f64).sqrt() + mask;
        scores.softmax(-1, Kind::Float).matmul(&v).transpose(1, 2).contiguous().view([b, t, d])
    }

    /// Llama's RMSNorm: `weight * x / sqrt(mean(x^2) + eps)`.
    fn rms_norm(&self, x: &Tensor, prefix: &str) -> Tensor {
        let variance = x.pow_tensor_scalar(2).mean_dim(&[-1i64][..], true, Kind::Float);
        self.w(&format!("{prefix}.weight")) * (x * (variance + self.config.eps).rsqrt())
    }

    /// Rotary tables for positions `0..t`: (cos, sin), each [1, 1, T, R] with
    /// R the rotated dims, as transformers' default rotary embedding:
    /// inverse frequencies `1 / theta^(2i / rotary_dims)`, the angles repeated
    /// for both halves (`cat(freqs, freqs)`).
    fn rotary_tables(&self, t: i64) -> (Tensor, Tensor) {
        let dims = self.config.rotary_dims as i64;
        let exponent = Tensor::arange_start_step(0, dims, 2, (Kind::Float, self.device)) / dims as f64;
        let inv_freq = Tensor::pow_scalar(self.config.rope_theta, &exponent).reciprocal();
        let positions = Tensor::arange(t, (Kind::Float, self.device));
        let freqs = positions.unsqueeze(1) * inv_freq.unsqueeze(0);
        let angles = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(0).unsqueeze(0);
        (angles.cos(), angles.sin())
    }

    /// Rotates the leading dims of `x` ([B, H, T, head_dim]) that the tables
    /// cover, with transformers' `rotate_half` convention (the two halves of
    /// the rotated dims pair up, not neighbouring dims); the rest pass through.
    fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let head_dim = x.size()[3];
        let dims = cos.size()[3];
        if dims == 0 {
            return x.shallow_clone();
        }
        let rot = x.narrow(-1, 0, dims);
        let half = dims / 2;
        let rotated_half = Tensor::cat(&[rot.narrow(-1, half, dims - half).neg(), rot.narrow(-1, 0, half)], -1);
        let embedded = &rot * cos + rotated_half * sin;
        if dims < head_dim {
            Tensor::cat(&[embedded, x.narrow(-1, dims, head_dim - dims)], -1)
        } else {
            embedded
        }
    }

    /// Attention of per-head `q` ([B, H, T, d]) over `k`, `v` ([B, Hkv, T, d];
    /// each key/value head serves `H / Hkv` consecutive query heads, as
    /// transformers' `repeat_kv`), with an additive mask; returns [B, T, H * d].
    fn attend_heads(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Tensor {
        let (b, h, t, d) = q.size4().expect("4-d queries");
        let kv = k.size()[1];
        let repeat = |x: &Tensor| {
            if kv == h {
                x.shallow_clone()
            } else {
                x.unsqueeze(2).expand([b, kv, h / kv, t, d], false).reshape([b, h, t, d])
            }
        };
        let (k, v) = (repeat(k), repeat(v));
        let scores = q.matmul(&k.transpose(-1, -2)) * (d as f64).powf(-0.5) + mask;
        scores.softmax(-1, Kind::Float).matmul(&v).transpose(1, 2).contiguous().view([b, t, h * d])
    }

    /// The hidden states `layers` (0 = embeddings) for token ids `ids`
    /// ([B, T], int64, on the model's device) with `attention_mask` ([B, T],
    /// 1 for real tokens, 0 for padding on the right). Runs only as many
    /// blocks as the deepest layer asked for. Each state is [B, T, hidden].
    pub fn hidden_states(&self, ids: &Tensor, attention_mask: &Tensor, layers: &[usize]) -> Vec<Tensor> {
        let _guard = tch::no_grad_guard();
        if let Some(model) = &self.topoformer {
            let states = model.hidden_states(ids, &attention_mask.ne(0));
            return layers.iter().map(|&l| states[l].shallow_clone()).collect();
        }
        let deepest = layers.iter().copied().max().unwrap_or(0);
        let (_, t) = ids.size2().expect("ids are [batch, tokens]");
        let positions = Tensor::arange(t, (Kind::Int64, self.device));
        // Additive mask: padding keys get the most negative float, as transformers does.
        let pad = (attention_mask.to_kind(Kind::Float).ones_like() - attention_mask.to_kind(Kind::Float))
            * f64::from(f32::MIN);
        let mut mask = pad.unsqueeze(1).unsqueeze(1); // [B, 1, 1, T]
        let mut states: Vec<Option<Tensor>> = Vec::new();
        let keep = |l: usize, x: &Tensor, states: &mut Vec<Option<Tensor>>| {
            states.push(if layers.contains(&l) { Some(x.shallow_clone()) } else { None });
        };
        if self.causal() {
            let causal = Tensor::ones([t, t], (Kind::Bool, self.device)).triu(1);
            let future = Tensor::zeros([t, t], (Kind::Float, self.device)).masked_fill(&causal, f64::from(f32::MIN));
            mask = (mask + future.unsqueeze(0).unsqueeze(0)).clamp_min(f64::from(f32::MIN));
        }
        match self.config.arch {
            Arch::Bert => {
                let words = Tensor::embedding(self.w("embeddings.word_embeddings.weight"), ids, -1, false, false);
                let pos =
                    Tensor::embedding(self.w("embeddings.position_embeddings.weight"), &positions, -1, false, false);
                let mut x = words + pos.unsqueeze(0);
                if let Some(types) = self.opt("embeddings.token_type_embeddings.weight") {
                    x += types.get(0);
                }
                let mut x = self.layer_norm(&x, "embeddings.LayerNorm");
                keep(0, &x, &mut states);
                for l in 0..deepest {
                    let p = format!("encoder.layer.{l}");
                    let q = self.linear(&x, &format!("{p}.attention.self.query"));
                    let k = self.linear(&x, &format!("{p}.attention.self.key"));
                    let v = self.linear(&x, &format!("{p}.attention.self.value"));
                    let context = self.attention(&q, &k, &v, &mask);
                    let attended = self.layer_norm(
                        &(self.linear(&context, &format!("{p}.attention.output.dense")) + &x),
                        &format!("{p}.attention.output.LayerNorm"),
                    );
                    let inner = self.activation(&self.linear(&attended, &format!("{p}.intermediate.dense")));
                    x = self.layer_norm(
                        &(self.linear(&inner, &format!("{p}.output.dense")) + &attended),
                        &format!("{p}.output.LayerNorm"),
                    );
                    keep(l + 1, &x, &mut states);
                }
            }
            Arch::Gpt2 => {
                let tokens = Tensor::embedding(self.w("wte.weight"), ids, -1, false, false);
                let pos = Tensor::embedding(self.w("wpe.weight"), &positions, -1, false, false);
                let mut x = tokens + pos.unsqueeze(0);
                keep(0, &x, &mut states);
                let d = self.config.hidden as i64;
                // `x = x + ...`, never `x += ...`: `+=` on a tch Tensor adds in
                // place, and `keep` holds shallow copies of earlier layers' `x`.
                #[allow(clippy::assign_op_pattern)]
                for l in 0..deepest {
                    let p = format!("h.{l}");
                    let a = self.layer_norm(&x, &format!("{p}.ln_1"));
                    let qkv = self.linear(&a, &format!("{p}.attn.c_attn"));
                    let parts = qkv.split(d, -1);
                    let context = self.attention(&parts[0], &parts[1], &parts[2], &mask);
                    x = x + self.linear(&context, &format!("{p}.attn.c_proj"));
                    let m = self.layer_norm(&x, &format!("{p}.ln_2"));
                    let inner = self.activation(&self.linear(&m, &format!("{p}.mlp.c_fc")));
                    x = x + self.linear(&inner, &format!("{p}.mlp.c_proj"));
                    if l + 1 == self.config.layers {
                        let normed = self.layer_norm(&x, "ln_f");
                        keep(l + 1, &normed, &mut states);
                    } else {
                        keep(l + 1, &x, &mut states);
                    }
                }
            }
            Arch::Topoformer => unreachable!("returned above"),
            Arch::GptNeox | Arch::Llama => {
                let neox = self.config.arch == Arch::GptNeox;
                let (b, _) = ids.size2().expect("ids are [batch, tokens]");
                let (h, kv, hd) = (self.config.heads as i64, self.config.kv_heads as i64, self.config.head_dim as i64);
                let (cos, sin) = self.rotary_tables(t);
                let embedding = if neox { "embed_in.weight" } else { "embed_tokens.weight" };
                let mut x = Tensor::embedding(self.w(embedding), ids, -1, false, false);
                keep(0, &x, &mut states);
                let norm = |x: &Tensor, prefix: &str| {
                    if neox {
                        self.layer_norm(x, prefix)
                    } else {
                        self.rms_norm(x, prefix)
                    }
                };
                // As for GPT-2: `x = x + ...`, never in place.
                #[allow(clippy::assign_op_pattern)]
                for l in 0..deepest {
                    let p = format!("layers.{l}");
                    let a = norm(&x, &format!("{p}.input_layernorm"));
                    let (q, k, v) = if neox {
                        // Fused weight, per head [q | k | v] (transformers' view(..., heads, 3 * head_dim)).
                        let qkv = self.linear(&a, &format!("{p}.attention.query_key_value"));
                        let parts = qkv.view([b, t, h, 3 * hd]).transpose(1, 2).chunk(3, -1);
                        (parts[0].shallow_clone(), parts[1].shallow_clone(), parts[2].shallow_clone())
                    } else {
                        let split = |name: &str, heads: i64| {
                            self.linear(&a, &format!("{p}.self_attn.{name}")).view([b, t, heads, hd]).transpose(1, 2)
                        };
                        (split("q_proj", h), split("k_proj", kv), split("v_proj", kv))
                    };
                    let (q, k) = (Self::rotate(&q, &cos, &sin), Self::rotate(&k, &cos, &sin));
                    let context = self.attend_heads(&q, &k, &v, &mask);
                    if neox {
                        let attended = self.linear(&context, &format!("{p}.attention.dense"));
                        let mlp = |input: &Tensor| {
                            let m = self.layer_norm(input, &format!("{p}.post_attention_layernorm"));
                            let inner = self.activation(&self.linear(&m, &format!("{p}.mlp.dense_h_to_4h")));
                            self.linear(&inner, &format!("{p}.mlp.dense_4h_to_h"))
                        };
                        if self.config.parallel_residual {
                            x = mlp(&x) + attended + &x;
                        } else {
                            let y = attended + &x;
                            x = mlp(&y) + y;
                        }
                    } else {
                        x = x + self.linear(&context, &format!("{p}.self_attn.o_proj"));
                        let m = self.rms_norm(&x, &format!("{p}.post_attention_layernorm"));
                        let gate = self.activation(&self.linear(&m, &format!("{p}.mlp.gate_proj")));
                        let up = self.linear(&m, &format!("{p}.mlp.up_proj"));
                        x = x + self.linear(&(gate * up), &format!("{p}.mlp.down_proj"));
                    }
                    if l + 1 == self.config.layers {
                        let normed = norm(&x, if neox { "final_layer_norm" } else { "norm" });
                        keep(l + 1, &normed, &mut states);
                    } else {
                        keep(l + 1, &x, &mut states);
                    }
                }
            }
        }
        layers.iter().map(|&l| states[l].as_ref().expect("layer computed").shallow_clone()).collect()
    }
}
