//! Transformer language models in libtorch (tch), loaded from a Hugging Face
//! style directory: `config.json`, `model.safetensors`, `tokenizer.json`.
//!
//! - `model_type: bert` (BERT-family encoders, e.g. all-MiniLM-L6-v2): the
//!   forward pass of `transformers.BertModel` in eval mode.
//! - `model_type: gpt2`: the causal models voxflow's training stages write
//!   (the checkpoint format: GPT-2's parameter names, so
//!   `transformers.GPT2Model.from_pretrained` opens them too); the forward
//!   pass of `transformers.GPT2Model`.
//!
//! Hidden state `0` is the embedding output, state `l` the output of block
//! `l`; as in transformers, GPT-2's last state has the final layer norm
//! applied.

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
    /// `gelu` (erf) or `gelu_new` (tanh approximation).
    pub activation: String,
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
            }),
            "gpt2" => Ok(ModelConfig {
                arch: Arch::Gpt2,
                vocab_size: raw.vocab_size,
                hidden: raw.n_embd.ok_or_else(|| missing("n_embd"))?,
                layers: raw.n_layer.ok_or_else(|| missing("n_layer"))?,
                heads: raw.n_head.ok_or_else(|| missing("n_head"))?,
                max_positions: raw.n_positions.unwrap_or(1024),
                eps: raw.layer_norm_epsilon.unwrap_or(1e-5),
                activation: raw.activation_function.clone().unwrap_or_else(|| "gelu_new".into()),
            }),
            other => Err(LmError::Config {
                path: path.into(),
                message: format!("model_type `{other}` is not supported: voxflow runs `bert` and `gpt2` models"),
            }),
        }
    }
}

impl LanguageModel {
    /// Loads the model in `dir` onto `device`, checking that the tokenizer
    /// fits the embedding and that every weight the forward pass needs is there.
    pub fn load(dir: &Path, device: tch::Device) -> Result<LanguageModel, LmError> {
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
        for (name, tensor) in Tensor::read_safetensors(&weights_path)? {
            let name = name
                .strip_prefix("bert.")
                .or_else(|| name.strip_prefix("transformer."))
                .map(str::to_string)
                .unwrap_or(name);
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
            Arch::Gpt2 => None,
        };
        let unk_id = ["[UNK]", "<unk>"].iter().find_map(|t| tokenizer.token_to_id(t));
        let model = LanguageModel { config, tokenizer, device, weights, cls_sep, unk_id, dir: dir.to_path_buf() };
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
        }
        if let Some(missing) = names.iter().find(|n| !self.weights.contains_key(*n)) {
            return Err(LmError::Mismatch(format!(
                "{} has no tensor `{missing}`: the weights do not match config.json ({:?}, {} layers)",
                path.display(),
                self.config.arch,
                self.config.layers
            )));
        }
        let rows = self
            .w(match self.config.arch {
                Arch::Bert => "embeddings.word_embeddings.weight",
                Arch::Gpt2 => "wte.weight",
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

    fn opt(&self, name: &str) -> Option<&Tensor> {
        self.weights.get(name)
    }

    /// Whether a token's state depends only on the tokens before it.
    pub fn causal(&self) -> bool {
        self.config.arch == Arch::Gpt2
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

    /// The hidden states `layers` (0 = embeddings) for token ids `ids`
    /// ([B, T], int64, on the model's device) with `attention_mask` ([B, T],
    /// 1 for real tokens, 0 for padding on the right). Runs only as many
    /// blocks as the deepest layer asked for. Each state is [B, T, hidden].
    pub fn hidden_states(&self, ids: &Tensor, attention_mask: &Tensor, layers: &[usize]) -> Vec<Tensor> {
        let _guard = tch::no_grad_guard();
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
                let causal = Tensor::ones([t, t], (Kind::Bool, self.device)).triu(1);
                let future =
                    Tensor::zeros([t, t], (Kind::Float, self.device)).masked_fill(&causal, f64::from(f32::MIN));
                mask = (mask + future.unsqueeze(0).unsqueeze(0)).clamp_min(f64::from(f32::MIN));
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
        }
        layers.iter().map(|&l| states[l].as_ref().expect("layer computed").shallow_clone()).collect()
    }
}
