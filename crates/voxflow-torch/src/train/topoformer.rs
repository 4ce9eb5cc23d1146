//! Topoformer (ICLR 2024 Re-Align workshop): a bidirectional transformer
//! encoder whose self-attention is topographic, behind `train.topoformer`.
//!
//! Read from the authors' code (TahaBinhuraib/topoformer,
//! topoformer/models/{attention,custom_layers,constraints,
//! transformer_classifier}.py); where the paper and the code differ, this
//! follows the code:
//!
//! - Grid: unit u of a representation sits at (u / side, u % side) / side
//!   on a torus of side 1 (`Constraints`: `np.indices`, distances wrapped
//!   where an offset exceeds 0.5); distances here from whole-cell offsets
//!   ([`voxflow::numeric::spatial::grid_distance`]).
//! - Masks ([`disc_mask`]): the 0/1 matrix `distance <= sqrt(f / pi)`
//!   (`Constraints.circular`, the disc of area f on the unit square). At
//!   f = 1 the mask is full, the code's `full` type (its `circular` disc of
//!   area 1 would leave out the torus's corners, 9% of the units).
//! - Spatial querying (`LocalityMask`): q' = q M / ||M||_F, the Frobenius
//!   norm of the whole mask (the paper writes it row-wise; the code divides
//!   by `torch.norm(mask)`, and so does this). Only the queries are masked;
//!   the keys and values are plain linear maps (the reference's default
//!   `local_querying=False`). With several heads (`n_head` > 1, an option
//!   the paper does not use) the masked queries are split into heads after
//!   the mask, and scores are scaled by sqrt(n_embd / n_head).
//! - Spatial reweighting (`LocallyConnected`): the output projection's
//!   weight is set to |W * M_r| before every forward pass in the code;
//!   here after every optimizer step and at initialisation
//!   ([`TopoformerModel::constrain`]), which gives the same weights at
//!   every forward pass: a projection onto the non-negative, local weights
//!   (absolute value, not clamping or softplus). The initial weight is
//!   the code's: |U(-1/sqrt(d), 1/sqrt(d))| * 10, then masked.
//! - Block (`TransformerBlockDefault`): post-LN, x = drop(LN1(attn(x) + x)),
//!   x = drop(LN2(W2 relu(W1 x) + x)), feed-forward width
//!   `ffn_expansion * n_embd`; no dropout on the attention probabilities
//!   (the reference config's 0.0).
//! - Classifier (`TransformerClassifier`, `AVERAGE` pooling): mean over the
//!   tokens -> tanh -> linear. The reference pads and averages the padding
//!   too, and passes no padding mask to attention; here padding keys are
//!   masked out and the mean is over real tokens only, so an item's output
//!   does not depend on what it was batched with.
//! - `attention: standard`: no query mask, W_o a plain linear map;
//!   `attention: control`: the motifs with full masks (sq = sr = 1).
//! - Masked language model (`task: mlm`, [`TopoTask::Mlm`]): the same
//!   encoder (embeddings, post-LN blocks) and BERT's head
//!   (`BertLMPredictionHead`): dense -> GELU (erf) -> LayerNorm -> decoder
//!   tied to the token embedding, plus a bias; logits only at the selected
//!   positions (the reference's `sparse_prediction`). The BERT variant of
//!   the reference (epflneuroailab/topolm, cramming/architectures/
//!   topoformer.py with config/arch/bert-c5_topo.yaml) puts the same
//!   topographic attention head (`AttentionHead` + `LocallyConnected`
//!   output) into crammed BERT: pre-LN blocks, an embedding LayerNorm,
//!   scaled-sinusoidal positions, GELU-GLU feed-forward, no biases, a final
//!   norm, and `skip_head_transform` (decoder only, no bias). This keeps
//!   the classifier's encoder instead, so that one Topoformer definition
//!   serves both tasks and features.lm reads the same blocks, and uses
//!   BERT's original head; the attention motifs are the reference's. Two
//!   things the MLM takes from BERT and the reference: embeddings
//!   initialised N(0, 0.02^2) (`init.std`; with the tied decoder the
//!   initial logits are near 0, the initial loss near ln(vocabulary)) and
//!   a LayerNorm on the token plus position embeddings (`embedding.
//!   normalization: True`) before the dropout. Without that LayerNorm the
//!   small embeddings are swamped by the attention biases and the
//!   reweighted W_o (|U| x 10) in the first post-LN residual, and the model
//!   stalled at the unigram loss in a trial. `classify` keeps N(0, 1)
//!   embeddings and no embedding LayerNorm, as the classifier reference.
//!
//! Initialisation follows PyTorch's defaults (the reference relies on
//! them): linear weights and biases U(-1/sqrt(in), 1/sqrt(in)), embeddings
//! N(0, 1), LayerNorm 1 and 0; drawn from a ChaCha8 stream of the seed on
//! the host, so the same on every device.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use voxflow::kinds::train::topoformer::{TopoAttention, TopoTask};
use voxflow::numeric::spatial::grid_distance;

use super::TrainError;

/// The model type written to a checkpoint's config.json.
pub const MODEL_TYPE: &str = "voxflow-topoformer";
/// `architectures` in a masked language model's config.json (features.lm
/// recognises it, and `model_type`).
pub const MLM_ARCHITECTURE: &str = "TopoformerForMaskedLM";
/// The token a masked language model's inputs carry at masked positions.
pub const MASK_TOKEN: &str = "[MASK]";

/// The shape of a Topoformer classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoformerConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub ffn_expansion: usize,
    pub context_length: usize,
    pub dropout: f64,
    pub attention: TopoAttention,
    pub sq: f64,
    pub sr: f64,
    /// The class names, in output order (`classify`; empty for `mlm`).
    pub labels: Vec<String>,
    pub layer_norm_epsilon: f64,
    /// `classify` (not written) or `mlm`.
    #[serde(default, skip_serializing_if = "TopoTask::is_classify")]
    pub task: TopoTask,
    /// `[TopoformerForMaskedLM]` for `mlm`; not written for `classify`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// `mlm`: the id of `[MASK]` (the last token of the vocabulary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_token_id: Option<usize>,
}

impl TopoformerConfig {
    /// Reads a checkpoint's config.json (model_type `voxflow-topoformer`).
    pub fn read(path: &Path) -> Result<TopoformerConfig, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
        let config: TopoformerConfig =
            serde_json::from_str(&text).map_err(|e| TrainError::file(path, format!("not a Topoformer config: {e}")))?;
        if config.model_type != MODEL_TYPE {
            return Err(TrainError::file(path, format!("model_type is `{}`, not `{MODEL_TYPE}`", config.model_type)));
        }
        Ok(config)
    }

    /// The grid side, sqrt(n_embd).
    pub fn side(&self) -> usize {
        (self.n_embd as f64).sqrt().round() as usize
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        let side = self.side();
        if side * side != self.n_embd || self.n_embd == 0 {
            return Err(TrainError::Config(format!("n_embd ({}) is not a positive square number", self.n_embd)));
        }
        if self.n_head == 0 || self.n_embd % self.n_head != 0 {
            return Err(TrainError::Config(format!(
                "n_embd ({}) is not divisible by n_head ({})",
                self.n_embd, self.n_head
            )));
        }
        for (name, value) in [("sq", self.sq), ("sr", self.sr)] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(TrainError::Config(format!("{name} is {value}: use an area fraction in (0, 1]")));
            }
        }
        match self.task {
            TopoTask::Classify if self.labels.len() < 2 => {
                return Err(TrainError::Config(format!(
                    "{} class label(s): a classifier needs 2 or more",
                    self.labels.len()
                )));
            }
            TopoTask::Mlm if self.mask_token_id.is_none_or(|id| id >= self.vocab_size) => {
                return Err(TrainError::Config(format!(
                    "a masked language model needs `mask_token_id` below vocab_size ({}), not {:?}",
                    self.vocab_size, self.mask_token_id
                )));
            }
            _ => {}
        }
        if self.vocab_size == 0 || self.n_layer == 0 || self.context_length == 0 || self.ffn_expansion == 0 {
            return Err(TrainError::Config(
                "vocab_size, n_layer, context_length and ffn_expansion must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The parameters in their fixed order: (name, shape). Linear weights
    /// are `[out, in]` as `torch.nn.Linear` stores them.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (v, d, t) = (self.vocab_size as i64, self.n_embd as i64, self.context_length as i64);
        let f = (self.ffn_expansion * self.n_embd) as i64;
        let c = self.labels.len() as i64;
        let mut shapes =
            vec![("embed.word.weight".to_string(), vec![v, d]), ("embed.position.weight".into(), vec![t, d])];
        if self.task == TopoTask::Mlm {
            shapes.push(("embed.norm.weight".into(), vec![d]));
            shapes.push(("embed.norm.bias".into(), vec![d]));
        }
        for l in 0..self.n_layer {
            for (name, shape) in [
                ("attn.query.weight", vec![d, d]),
                ("attn.query.bias", vec![d]),
                ("attn.key.weight", vec![d, d]),
                ("attn.key.bias", vec![d]),
                ("attn.value.weight", vec![d, d]),
                ("attn.value.bias", vec![d]),
                ("attn.output.weight", vec![d, d]),
                ("attn.output.bias", vec![d]),
                ("norm1.weight", vec![d]),
                ("norm1.bias", vec![d]),
                ("ff1.weight", vec![f, d]),
                ("ff1.bias", vec![f]),
                ("ff2.weight", vec![d, f]),
                ("ff2.bias", vec![d]),
                ("norm2.weight", vec![d]),
                ("norm2.bias", vec![d]),
            ] {
                shapes.push((format!("blocks.{l}.{name}"), shape));
            }
        }
        match self.task {
            TopoTask::Classify => {
                shapes.push(("classifier.weight".into(), vec![c, d]));
                shapes.push(("classifier.bias".into(), vec![c]));
            }
            TopoTask::Mlm => {
                // The decoder's weight is embed.word.weight (tied).
                shapes.push(("mlm.dense.weight".into(), vec![d, d]));
                shapes.push(("mlm.dense.bias".into(), vec![d]));
                shapes.push(("mlm.norm.weight".into(), vec![d]));
                shapes.push(("mlm.norm.bias".into(), vec![d]));
                shapes.push(("mlm.bias".into(), vec![v]));
            }
        }
        shapes
    }
}

/// Whether a parameter gets weight decay: the matrices, not biases,
/// LayerNorm or embeddings.
pub fn decays(name: &str) -> bool {
    name.ends_with(".weight") && !name.contains("norm") && !name.starts_with("embed.")
}

/// The `side x side` torus's disc mask of area fraction `fraction`, row-major
/// `[d, d]` (entry (i, j) = 1 when unit j is within the disc around unit i;
/// symmetric): distance <= sqrt(fraction / pi) on the side-1 torus, every
/// entry at fraction 1.
pub fn disc_mask(side: usize, fraction: f64) -> Vec<f32> {
    let d = side * side;
    if fraction >= 1.0 {
        return vec![1.0; d * d];
    }
    let radius = (fraction / std::f64::consts::PI).sqrt();
    let mut mask = vec![0.0f32; d * d];
    for i in 0..d {
        for j in 0..d {
            if grid_distance(side, i, j, true) <= radius {
                mask[i * d + j] = 1.0;
            }
        }
    }
    mask
}

/// One block's representations, each `[B, T, n_embd]`.
pub struct BlockOutputs {
    /// W_q x + b, before the spatial-querying mask.
    pub query: Tensor,
    pub key: Tensor,
    pub value: Tensor,
    /// The output projection's result (before the residual add).
    pub output: Tensor,
    /// The block's output (after its second LayerNorm and dropout): the
    /// next block's input, features.lm's hidden state.
    pub hidden: Tensor,
}

/// The encoder's states for a batch.
pub struct Encoded {
    /// Token plus position embeddings (`mlm`: then their LayerNorm), after
    /// dropout, `[B, T, n_embd]`.
    pub embeddings: Tensor,
    pub blocks: Vec<BlockOutputs>,
}

impl Encoded {
    /// The last block's output (the embeddings when there is no block).
    pub fn last(&self) -> &Tensor {
        self.blocks.last().map(|b| &b.hidden).unwrap_or(&self.embeddings)
    }
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn apply(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

struct Block {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm1: Norm,
    ff1: Linear,
    ff2: Linear,
    norm2: Norm,
}

/// BERT's masked-language-model head; the decoder is the token embedding.
struct MlmHead {
    dense: Linear,
    norm: Norm,
    bias: Tensor,
}

/// What sits on the encoder: a classifier or a masked-language-model head.
enum Head {
    Classifier(Linear),
    Mlm(MlmHead),
}

/// A Topoformer (classifier or masked language model) with trainable
/// float32 parameters.
pub struct TopoformerModel {
    pub config: TopoformerConfig,
    pub device: Device,
    params: Vec<(String, Tensor)>,
    word: Tensor,
    position: Tensor,
    /// `mlm`: the LayerNorm on the embeddings.
    embed_norm: Option<Norm>,
    blocks: Vec<Block>,
    head: Head,
    /// M_q / ||M_q||_F (topographic attention only).
    query_mask: Option<Tensor>,
    /// M_r (topographic attention only).
    output_mask: Option<Tensor>,
}

impl TopoformerModel {
    /// A fresh model from `seed` (see the module's note on initialisation),
    /// with the reweighting constraint applied.
    pub fn new(config: &TopoformerConfig, seed: u64, device: Device) -> Result<TopoformerModel, TrainError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = Vec::new();
        for (name, shape) in config.parameter_shapes() {
            let numel = shape.iter().product::<i64>() as usize;
            let values: Vec<f32> = if name == "mlm.bias" {
                vec![0.0; numel]
            } else if name.contains("norm") {
                vec![if name.ends_with(".weight") { 1.0 } else { 0.0 }; numel]
            } else if name.starts_with("embed.") {
                let std = if config.task == TopoTask::Mlm { 0.02 } else { 1.0 };
                (0..numel)
                    .map(|_| std * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
                    .collect()
            } else {
                let fan_in = if name.ends_with(".weight") { shape[1] } else { fan_in_of_bias(config, &name) };
                let bound = 1.0 / (fan_in as f64).sqrt();
                let reweighted = config.attention != TopoAttention::Standard && name.ends_with("attn.output.weight");
                (0..numel)
                    .map(|_| {
                        let v = rng.random_range(-bound..bound) as f32;
                        if reweighted {
                            v.abs() * 10.0
                        } else {
                            v
                        }
                    })
                    .collect()
            };
            tensors.push((name, Tensor::from_slice(&values).view(shape.as_slice())));
        }
        let model = TopoformerModel::from_tensors(config, tensors, device)?;
        model.constrain();
        Ok(model)
    }

    /// A model from named tensors; every parameter must be there with its shape.
    pub fn from_tensors(
        config: &TopoformerConfig,
        tensors: Vec<(String, Tensor)>,
        device: Device,
    ) -> Result<TopoformerModel, TrainError> {
        config.validate()?;
        crate::device::init_torch();
        let mut by_name: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut params = Vec::new();
        for (name, shape) in config.parameter_shapes() {
            let tensor = by_name
                .remove(&name)
                .ok_or_else(|| TrainError::Config(format!("the weights have no tensor `{name}`")))?;
            if tensor.size() != shape {
                return Err(TrainError::Config(format!(
                    "tensor `{name}` has shape {:?} but the config needs {shape:?}",
                    tensor.size()
                )));
            }
            let tensor = tensor.to_kind(Kind::Float).to_device(device).contiguous().detach().set_requires_grad(true);
            params.push((name, tensor));
        }
        let get = |name: &str| -> Tensor {
            params.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()).expect("parameter listed")
        };
        let linear = |p: &str| Linear { weight: get(&format!("{p}.weight")), bias: get(&format!("{p}.bias")) };
        let norm = |p: &str| Norm { weight: get(&format!("{p}.weight")), bias: get(&format!("{p}.bias")) };
        let blocks = (0..config.n_layer)
            .map(|l| Block {
                query: linear(&format!("blocks.{l}.attn.query")),
                key: linear(&format!("blocks.{l}.attn.key")),
                value: linear(&format!("blocks.{l}.attn.value")),
                output: linear(&format!("blocks.{l}.attn.output")),
                norm1: norm(&format!("blocks.{l}.norm1")),
                ff1: linear(&format!("blocks.{l}.ff1")),
                ff2: linear(&format!("blocks.{l}.ff2")),
                norm2: norm(&format!("blocks.{l}.norm2")),
            })
            .collect();
        let d = config.n_embd as i64;
        let (query_mask, output_mask) = match config.attention {
            TopoAttention::Standard => (None, None),
            TopoAttention::Topographic | TopoAttention::Control => {
                let side = config.side();
                let mq = Tensor::from_slice(&disc_mask(side, config.sq)).view([d, d]).to_device(device);
                let mq = &mq / mq.norm();
                let mr = Tensor::from_slice(&disc_mask(side, config.sr)).view([d, d]).to_device(device);
                (Some(mq), Some(mr))
            }
        };
        let (word, position) = (get("embed.word.weight"), get("embed.position.weight"));
        let head = match config.task {
            TopoTask::Classify => Head::Classifier(linear("classifier")),
            TopoTask::Mlm => {
                Head::Mlm(MlmHead { dense: linear("mlm.dense"), norm: norm("mlm.norm"), bias: get("mlm.bias") })
            }
        };
        let embed_norm = (config.task == TopoTask::Mlm).then(|| norm("embed.norm"));
        Ok(TopoformerModel {
            config: config.clone(),
            device,
            params,
            word,
            position,
            embed_norm,
            blocks,
            head,
            query_mask,
            output_mask,
        })
    }

    /// The parameters, (name, tensor), sharing storage with the model.
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Spatial reweighting's constraint: each block's W_o <- |W_o * M_r|
    /// (a no-op for standard attention). Called at initialisation and after
    /// every optimizer step.
    pub fn constrain(&self) {
        if let Some(mask) = &self.output_mask {
            let _guard = tch::no_grad_guard();
            for block in &self.blocks {
                let mut weight = block.output.weight.shallow_clone();
                let constrained = (&weight * mask).abs();
                weight.copy_(&constrained);
            }
        }
    }

    /// The class logits `[B, n_classes]` for token ids `ids` (`[B, T]`
    /// int64) with `valid` (`[B, T]` bool, false at padding), and each
    /// block's representations; `train` switches dropout on. A classifier's
    /// only (panics on a masked language model).
    pub fn forward(&self, ids: &Tensor, valid: &Tensor, train: bool) -> (Tensor, Vec<BlockOutputs>) {
        let Head::Classifier(classifier) = &self.head else {
            panic!("forward: the model is a masked language model, not a classifier")
        };
        let encoded = self.encode(ids, valid, train);
        let weights = valid.to_kind(Kind::Float).unsqueeze(-1);
        let pooled = (encoded.last() * &weights).sum_dim_intlist(&[1i64][..], false, Kind::Float)
            / weights.sum_dim_intlist(&[1i64][..], false, Kind::Float);
        (classifier.apply(&pooled.tanh()), encoded.blocks)
    }

    /// The masked-language-model logits `[N, vocab]` of hidden states
    /// `hidden` (`[N, n_embd]`, or any shape ending in n_embd): dense ->
    /// GELU -> LayerNorm -> the token embedding transposed, plus the bias.
    /// A masked language model's only (panics on a classifier).
    pub fn mlm_logits(&self, hidden: &Tensor) -> Tensor {
        let Head::Mlm(head) = &self.head else { panic!("mlm_logits: the model is a classifier") };
        let d = self.config.n_embd as i64;
        let x = head.dense.apply(hidden).gelu("none").layer_norm(
            [d],
            Some(&head.norm.weight),
            Some(&head.norm.bias),
            self.config.layer_norm_epsilon,
            true,
        );
        x.matmul(&self.word.transpose(0, 1)) + &head.bias
    }

    /// Hidden states without dropout or gradients, as features.lm reads
    /// them: `n_layer + 1` tensors `[B, T, n_embd]`, the embeddings first,
    /// then each block's output.
    pub fn hidden_states(&self, ids: &Tensor, valid: &Tensor) -> Vec<Tensor> {
        let _guard = tch::no_grad_guard();
        let encoded = self.encode(ids, valid, false);
        std::iter::once(encoded.embeddings).chain(encoded.blocks.into_iter().map(|b| b.hidden)).collect()
    }

    /// The encoder for token ids `ids` (`[B, T]` int64) with `valid`
    /// (`[B, T]` bool, false at padding: those keys are masked out); `train`
    /// switches dropout on.
    pub fn encode(&self, ids: &Tensor, valid: &Tensor, train: bool) -> Encoded {
        let p = if train { self.config.dropout } else { 0.0 };
        let (b, t) = ids.size2().expect("ids are [batch, tokens]");
        assert!(t as usize <= self.config.context_length, "{t} tokens, more than context_length");
        let positions = Tensor::arange(t, (Kind::Int64, self.device));
        let d = self.config.n_embd as i64;
        let mut x = Tensor::embedding(&self.word, ids, -1, false, false)
            + Tensor::embedding(&self.position, &positions, -1, false, false).unsqueeze(0);
        if let Some(norm) = &self.embed_norm {
            x = x.layer_norm([d], Some(&norm.weight), Some(&norm.bias), self.config.layer_norm_epsilon, true);
        }
        let mut x = x.dropout(p, train);
        let embeddings = x.shallow_clone();
        let h = self.config.n_head as i64;
        // Padding keys get -inf before the softmax.
        let key_bias = Tensor::zeros([b, 1, 1, t], (Kind::Float, self.device))
            .masked_fill(&valid.logical_not().view([b, 1, 1, t]), f64::NEG_INFINITY);
        let eps = self.config.layer_norm_epsilon;
        let mut outputs = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let query = block.query.apply(&x);
            let key = block.key.apply(&x);
            let value = block.value.apply(&x);
            let masked = match &self.query_mask {
                Some(mask) => query.matmul(mask),
                None => query.shallow_clone(),
            };
            let heads = |y: &Tensor| y.view([b, t, h, d / h]).transpose(1, 2);
            let scores = heads(&masked).matmul(&heads(&key).transpose(-2, -1)) / ((d / h) as f64).sqrt() + &key_bias;
            let probs = scores.softmax(-1, Kind::Float);
            let context = probs.matmul(&heads(&value)).transpose(1, 2).contiguous().view([b, t, d]);
            let output = block.output.apply(&context);
            x = (&output + &x)
                .layer_norm([d], Some(&block.norm1.weight), Some(&block.norm1.bias), eps, true)
                .dropout(p, train);
            let ff = block.ff2.apply(&block.ff1.apply(&x).relu());
            x = (ff + &x)
                .layer_norm([d], Some(&block.norm2.weight), Some(&block.norm2.bias), eps, true)
                .dropout(p, train);
            outputs.push(BlockOutputs { query, key, value, output, hidden: x.shallow_clone() });
        }
        Encoded { embeddings, blocks: outputs }
    }

    /// The weights, named, float32, contiguous, on the CPU.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        self.params.iter().map(|(name, t)| (name.clone(), t.detach().to_device(Device::Cpu).contiguous())).collect()
    }

    /// Writes config.json, model.safetensors and (when given) a copy of
    /// `tokenizer` as tokenizer.json into the existing directory `dir`.
    pub fn write_files(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), TrainError> {
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.config).expect("JSON") + "\n";
        std::fs::write(&path, text).map_err(|e| TrainError::file(&path, e))?;
        Tensor::write_safetensors(&self.checkpoint_tensors(), dir.join("model.safetensors"))?;
        if let Some(source) = tokenizer {
            std::fs::copy(source, dir.join("tokenizer.json")).map_err(|e| TrainError::file(source, e))?;
        }
        Ok(())
    }

    /// Loads a directory written by [`TopoformerModel::write_files`].
    pub fn load(dir: &Path, device: Device) -> Result<TopoformerModel, TrainError> {
        let config = TopoformerConfig::read(&dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        let tensors = Tensor::read_safetensors(&weights).map_err(|e| TrainError::file(&weights, e))?;
        TopoformerModel::from_tensors(&config, tensors, device).map_err(|e| TrainError::file(&weights, e))
    }
}

/// The vocabulary as the masking sees it.
#[derive(Clone, Debug)]
pub struct MaskVocab {
    /// The id of `[MASK]`.
    pub mask_id: i64,
    /// By id: a special token (never selected, never a random replacement).
    pub special: Vec<bool>,
    /// The ids a selected token may be replaced by (the non-special ones).
    pub candidates: Vec<i64>,
}

impl MaskVocab {
    /// `vocab_size` ids of which `special_ids` (and `mask_id`) are special.
    pub fn new(vocab_size: usize, special_ids: &[usize], mask_id: usize) -> MaskVocab {
        let mut special = vec![false; vocab_size];
        for &id in special_ids.iter().chain(std::iter::once(&mask_id)) {
            if id < vocab_size {
                special[id] = true;
            }
        }
        let candidates = (0..vocab_size as i64).filter(|&id| !special[id as usize]).collect();
        MaskVocab { mask_id: mask_id as i64, special, candidates }
    }
}

/// A batch after masking: `inputs` (the ids the model reads), and the
/// selected `positions` (indices into the flattened batch) with their
/// original ids, the `targets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masked {
    pub inputs: Vec<i64>,
    pub positions: Vec<i64>,
    pub targets: Vec<i64>,
}

/// Mixed into the seed of the masking's generator, so that its stream is
/// not the batch sampler's (which uses the seed itself).
const MASK_SALT: u64 = 0x6d6c_6d5f_6d61_736b;

/// BERT's masking of token ids `ids` (a flattened batch): each non-special
/// token is selected with probability [`MLM_PROBABILITY`] (15%); a selected
/// token becomes `[MASK]` with probability 0.8, a uniformly drawn
/// non-special token with 0.1, and stays with 0.1 (as transformers'
/// `DataCollatorForLanguageModeling`, which draws the random token from the
/// whole vocabulary; here special tokens are left out). Every token draws
/// its selection number whether special or not, from a ChaCha8 generator of
/// (`seed`, `stream`) alone: training step s uses stream s, so a resumed
/// run masks as an uninterrupted one. When nothing is selected (tiny
/// batches), one non-special token is, drawn uniformly, so that the loss is
/// defined.
///
/// [`MLM_PROBABILITY`]: voxflow::kinds::train::topoformer::MLM_PROBABILITY
pub fn mask_tokens(ids: &[i64], vocab: &MaskVocab, seed: u64, stream: u64) -> Masked {
    use voxflow::kinds::train::topoformer::MLM_PROBABILITY;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ MASK_SALT);
    rng.set_stream(stream);
    let mut inputs = ids.to_vec();
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    let is_special = |id: i64| vocab.special.get(id as usize).copied().unwrap_or(false);
    let corrupt = |rng: &mut ChaCha8Rng, i: usize, inputs: &mut [i64]| {
        let how: f64 = rng.random();
        if how < 0.8 {
            inputs[i] = vocab.mask_id;
        } else if how < 0.9 && !vocab.candidates.is_empty() {
            inputs[i] = vocab.candidates[rng.random_range(0..vocab.candidates.len())];
        }
    };
    for (i, &id) in ids.iter().enumerate() {
        let selected: f64 = rng.random();
        if is_special(id) || selected >= MLM_PROBABILITY {
            continue;
        }
        corrupt(&mut rng, i, &mut inputs);
        positions.push(i as i64);
        targets.push(id);
    }
    if positions.is_empty() {
        let eligible: Vec<usize> = (0..ids.len()).filter(|&i| !is_special(ids[i])).collect();
        if !eligible.is_empty() {
            let i = eligible[rng.random_range(0..eligible.len())];
            corrupt(&mut rng, i, &mut inputs);
            positions.push(i as i64);
            targets.push(ids[i]);
        }
    }
    Masked { inputs, positions, targets }
}

/// A bias's fan-in (its layer's input width), as nn.Linear's init uses.
fn fan_in_of_bias(config: &TopoformerConfig, name: &str) -> i64 {
    if name.contains("ff2") {
        (config.ffn_expansion * config.n_embd) as i64
    } else {
        config.n_embd as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(attention: TopoAttention, sq: f64, sr: f64) -> TopoformerConfig {
        TopoformerConfig {
            model_type: MODEL_TYPE.into(),
            vocab_size: 13,
            n_layer: 1,
            n_head: 1,
            n_embd: 16,
            ffn_expansion: 2,
            context_length: 6,
            dropout: 0.0,
            attention,
            sq,
            sr,
            labels: vec!["a".into(), "b".into()],
            layer_norm_epsilon: 1e-5,
            task: TopoTask::Classify,
            architectures: vec![],
            mask_token_id: None,
        }
    }

    #[test]
    fn disc_masks_have_their_area_are_symmetric_and_wrap() {
        for side in [8usize, 12, 20] {
            let d = side * side;
            for fraction in [0.05, 0.1, 0.3, 0.5, 0.7] {
                let mask = disc_mask(side, fraction);
                let rows: Vec<f64> = (0..d).map(|i| mask[i * d..(i + 1) * d].iter().map(|&v| v as f64).sum()).collect();
                // On a torus every row is the same disc, shifted.
                assert!(rows.iter().all(|&r| r == rows[0]), "side {side} f {fraction}");
                // Within one grid cell of the disc's radius: between the
                // areas of the discs one cell smaller and one cell larger.
                let radius_cells = (fraction / std::f64::consts::PI).sqrt() * side as f64;
                let (low, high) = (
                    std::f64::consts::PI * (radius_cells - 1.0).max(0.0).powi(2),
                    std::f64::consts::PI * (radius_cells + 1.0).powi(2),
                );
                assert!(
                    rows[0] >= low && rows[0] <= high,
                    "side {side} f {fraction}: {} not in [{low}, {high}]",
                    rows[0]
                );
                for i in 0..d {
                    for j in 0..d {
                        assert_eq!(mask[i * d + j], mask[j * d + i]);
                    }
                }
            }
            // Torus wrap: unit 0's disc holds its neighbours across both edges.
            let mask = disc_mask(side, 0.1);
            let last_col = side - 1;
            let last_row = (side - 1) * side;
            assert_eq!(mask[last_col], 1.0);
            assert_eq!(mask[last_row], 1.0);
            assert_eq!(mask[last_row + last_col], 1.0);
            assert_eq!(mask[side / 2 * side + side / 2], 0.0);
            assert!(disc_mask(side, 1.0).iter().all(|&v| v == 1.0));
        }
    }

    #[test]
    fn a_full_query_mask_broadcasts_the_mean_query() {
        let config = tiny(TopoAttention::Topographic, 1.0, 1.0);
        let model = TopoformerModel::new(&config, 3, Device::Cpu).unwrap();
        let mask = model.query_mask.as_ref().unwrap();
        let q = Tensor::randn([3, 5, 16], (Kind::Float, Device::Cpu));
        let masked = q.matmul(mask);
        // ||ones(d, d)||_F = d: q' = sum(q) / d = the mean, in every unit.
        let mean = q.mean_dim(&[-1i64][..], true, Kind::Float).expand([3, 5, 16], false);
        assert!(masked.allclose(&mean, 1e-5, 1e-6, false));
    }

    #[test]
    fn reweighting_stays_non_negative_and_local_while_training() {
        let config = tiny(TopoAttention::Topographic, 0.2, 0.3);
        let model = TopoformerModel::new(&config, 5, Device::Cpu).unwrap();
        let mask = Tensor::from_slice(&disc_mask(4, 0.3)).view([16, 16]);
        let params: Vec<(String, Tensor, bool)> =
            model.parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone(), decays(n))).collect();
        let adamw = super::super::optim::AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
        let mut optimizer = super::super::AdamW::new(adamw, params);
        let ids = Tensor::from_slice(&[1i64, 4, 2, 9, 0, 3, 7, 7]).view([2, 4]);
        let valid = Tensor::from_slice(&[true, true, true, true, true, true, false, false]).view([2, 4]);
        let labels = Tensor::from_slice(&[0i64, 1]);
        for _ in 0..5 {
            optimizer.zero_grad();
            let (logits, _) = model.forward(&ids, &valid, true);
            logits.cross_entropy_for_logits(&labels).backward();
            optimizer.step(1e-2);
            model.constrain();
            let w = &model.blocks[0].output.weight;
            assert!(w.min().double_value(&[]) >= 0.0);
            let outside = (w * (mask.ones_like() - &mask)).abs().max().double_value(&[]);
            assert_eq!(outside, 0.0);
            assert!((w * &mask).sum(Kind::Float).double_value(&[]) > 0.0);
        }
        // Standard attention leaves W_o alone (signs of both kinds).
        let standard = TopoformerModel::new(&tiny(TopoAttention::Standard, 1.0, 1.0), 5, Device::Cpu).unwrap();
        assert!(standard.blocks[0].output.weight.min().double_value(&[]) < 0.0);
    }

    #[test]
    fn padding_does_not_change_an_items_logits() {
        let model = TopoformerModel::new(&tiny(TopoAttention::Topographic, 0.3, 0.3), 9, Device::Cpu).unwrap();
        let alone = Tensor::from_slice(&[5i64, 2, 8]).view([1, 3]);
        let (a, _) = model.forward(&alone, &alone.ones_like().to_kind(Kind::Bool), false);
        let padded = Tensor::from_slice(&[5i64, 2, 8, 0, 0]).view([1, 5]);
        let valid = Tensor::from_slice(&[true, true, true, false, false]).view([1, 5]);
        let (b, _) = model.forward(&padded, &valid, false);
        assert!(a.allclose(&b, 1e-5, 1e-6, false), "{a} vs {b}");
    }
}
