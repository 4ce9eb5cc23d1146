//! `train.topoformer`: a small bidirectional transformer encoder whose
//! self-attention has Topoformer's two motifs (ICLR 2024 Re-Align workshop;
//! reference code TahaBinhuraib/topoformer), trained as a text classifier.
//!
//! - Spatial querying: the n_embd units of the queries and keys sit on a
//!   sqrt(n_embd) x sqrt(n_embd) torus; each key unit is scored against a
//!   disc of query units: q' = q M / ||M||_F, M the 0/1 disc mask of area
//!   fraction `sq` (torus distances), ||M||_F its Frobenius norm.
//! - Spatial reweighting: the attention output projection W_o is
//!   |W_o * M_r|, M_r the disc mask of area fraction `sr`: locally connected
//!   and non-negative.
//!
//! `attention: standard` is plain attention (no mask on q, W_o unconstrained);
//! `attention: control` (the same as `sq: 1, sr: 1`) is the paper's control
//! (full masks: every query unit pooled, W_o still non-negative). Details, and where the paper and the
//! authors' code differ: `voxflow_torch::train::topoformer`.
//!
//! Task `classify`: mean pool over the tokens -> tanh -> linear, on the
//! `train` stimulus table (`text`, `label`: stimuli.sentiment, or a user's
//! table through stimuli.contrast's `table`), tested on the `test` table
//! (its labels must be among the training labels). A word-level vocabulary
//! is built from the training texts (lower-cased, words and punctuation
//! runs, `[UNK]` for the rest) and written as tokenizer.json.
//!
//! Task `mlm`: BERT-style masked language modelling on a `corpus` input, a
//! `corpus.text` stage as train.gpt takes it (its `train` and `valid` token
//! streams and its tokenizer; corpus.text reads corpus.grammar's `text`).
//! The vocabulary is the corpus tokenizer's with one special token added at
//! the end, `[MASK]` (id = the tokenizer's size); the tokenizer's own
//! special tokens (`<|endoftext|>`, the word tokenizer's `[UNK]`) are never
//! masked. Each step draws `batch_size` windows of `context_length` tokens
//! from the training stream and selects each non-special token with
//! probability 0.15; a selected token becomes `[MASK]` (80%), a random
//! non-special token (10%) or stays (10%); the loss is the cross-entropy
//! on the selected tokens only. Windows and masks come from (seed, step)
//! alone. Validation: the first `eval_batches` x `batch_size`
//! non-overlapping windows of the `valid` stream with fixed masks (the
//! untrained model's validation loss goes to the log as `step 0 val_loss`).
//! The encoder is the classifier's with a LayerNorm on the embeddings and
//! N(0, 0.02^2) embeddings; head: dense -> GELU -> LayerNorm -> decoder
//! tied to the token embedding, plus a bias (BERT's). Checkpoints
//! (`architectures: [TopoformerForMaskedLM]`, `task: mlm`,
//! `mask_token_id`) load in `features.lm`: hidden state 0 the embeddings
//! (after their LayerNorm), l the output of block l.
//!
//! Outputs: `step<N>` for each N in `checkpoints` (directories: config.json,
//! model.safetensors, tokenizer.json; read by `topoformer.responses`, and
//! for `mlm` by `features.lm`) and `metrics` (Parquet, one row per step:
//! step, loss, accuracy (of the step's batch; for `mlm` of the masked
//! tokens), lr, grad_norm, test_loss and test_accuracy where the test set
//! ran; for `mlm` these two are `val_loss` and `val_accuracy`). Optimiser, schedule, clipping and checkpoint writing are
//! train.gpt's (AdamW with warmup + cosine); resumable the same way (the
//! whole state every `save_every` steps under the work directory), batches
//! drawn from (seed, step) alone. Runs in the worker:
//! `voxflow_torch::kinds::train_topoformer`.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// Which attention the encoder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopoAttention {
    /// Spatial querying (`sq`) and spatial reweighting (`sr`).
    Topographic,
    /// The paper's control: the same motifs with sq = sr = 1 (full masks;
    /// `sq` and `sr` are not read), so a pipeline's matrix can name it.
    Control,
    /// Plain multi-head attention (`sq`, `sr` not read).
    Standard,
}

/// What the encoder is trained for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopoTask {
    /// Sentence classification: mean pool -> tanh -> linear.
    #[default]
    Classify,
    /// Masked language modelling (BERT's 15%, 80/10/10) on a corpus.
    Mlm,
}

impl TopoTask {
    pub fn is_classify(&self) -> bool {
        *self == TopoTask::Classify
    }
}

/// `mlm`: the fraction of non-special tokens selected for prediction.
pub const MLM_PROBABILITY: f64 = 0.15;
/// `mlm`: validation batches when `eval_batches` is left out.
pub const DEFAULT_EVAL_BATCHES: usize = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainTopoformerParams {
    #[serde(default = "default_task")]
    pub task: TopoTask,
    #[serde(default = "default_attention")]
    pub attention: TopoAttention,
    /// Spatial querying's area fraction (0, 1]; 1 pools every query unit.
    #[serde(default = "default_sq")]
    pub sq: f64,
    /// Spatial reweighting's area fraction (0, 1].
    #[serde(default = "default_sr")]
    pub sr: f64,
    #[serde(default = "default_n_layer")]
    pub n_layer: usize,
    /// Attention heads (1 in the paper); the masked queries are split
    /// into n_embd / n_head dimensions per head.
    #[serde(default = "default_n_head")]
    pub n_head: usize,
    /// Units per representation: a square number (the grid).
    #[serde(default = "default_n_embd")]
    pub n_embd: usize,
    /// The feed-forward width is this times n_embd.
    #[serde(default = "default_ffn_expansion")]
    pub ffn_expansion: usize,
    /// The longest item, in tokens.
    #[serde(default = "default_context_length")]
    pub context_length: usize,
    /// Dropout on the embeddings and after each block's two LayerNorms.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    #[serde(default)]
    pub seed: u64,
    pub steps: usize,
    /// Items per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default)]
    pub warmup_steps: usize,
    /// Where the cosine decay ends; default learning_rate / 10.
    #[serde(default)]
    pub min_lr: Option<f64>,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Test loss and accuracy every this many steps and after the last; 0: after the last only.
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// `mlm`: batches of fixed validation windows per validation (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_batches: Option<usize>,
    #[serde(default)]
    pub checkpoints: Vec<usize>,
    #[serde(default = "default_save_every")]
    pub save_every: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_task() -> TopoTask {
    TopoTask::Classify
}
fn default_attention() -> TopoAttention {
    TopoAttention::Topographic
}
fn default_sq() -> f64 {
    0.1
}
fn default_sr() -> f64 {
    0.3
}
fn default_n_layer() -> usize {
    1
}
fn default_n_head() -> usize {
    1
}
fn default_n_embd() -> usize {
    64
}
fn default_ffn_expansion() -> usize {
    4
}
fn default_context_length() -> usize {
    32
}
fn default_dropout() -> f64 {
    0.1
}
fn default_batch_size() -> usize {
    32
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_eval_every() -> usize {
    50
}
fn default_save_every() -> usize {
    50
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

impl TrainTopoformerParams {
    pub fn min_lr(&self) -> f64 {
        self.min_lr.unwrap_or(self.learning_rate / 10.0)
    }
    pub fn eval_batches(&self) -> usize {
        self.eval_batches.unwrap_or(DEFAULT_EVAL_BATCHES)
    }
    /// The area fractions the model uses: (1, 1) for the control and for
    /// standard attention (which has no masks), else (`sq`, `sr`).
    pub fn fractions(&self) -> (f64, f64) {
        match self.attention {
            TopoAttention::Topographic => (self.sq, self.sr),
            TopoAttention::Control | TopoAttention::Standard => (1.0, 1.0),
        }
    }
}

pub struct TrainTopoformer;

impl Kind for TrainTopoformer {
    type Params = TrainTopoformerParams;
    const NAME: &'static str = "train.topoformer";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "trains a Topoformer (spatial querying + reweighting) text classifier or masked language model (libtorch); checkpoints and a metrics table; resumable";
    const INPUTS: &'static [&'static str] = &[];

    fn required_inputs(&self, params: &TrainTopoformerParams) -> Vec<&'static str> {
        match params.task {
            TopoTask::Classify => vec!["train", "test"],
            TopoTask::Mlm => vec!["corpus"],
        }
    }
    fn input_problems(&self, params: &TrainTopoformerParams, roles: &[&str]) -> Vec<(String, String)> {
        let (other, task, fix) = match params.task {
            TopoTask::Classify => (
                &["corpus"][..],
                "classify",
                "task `classify` reads `train` and `test` stimulus tables; a corpus is for `task: mlm`",
            ),
            TopoTask::Mlm => (
                &["train", "test"][..],
                "mlm",
                "task `mlm` reads only `corpus` (a corpus.text stage); stimulus tables are for `task: classify`",
            ),
        };
        roles
            .iter()
            .filter(|role| other.contains(role))
            .map(|role| {
                (format!("train.topoformer with task `{task}` does not read an input `{role}`"), fix.to_string())
            })
            .collect()
    }

    fn outputs(&self, params: &TrainTopoformerParams) -> Vec<String> {
        let mut outputs: Vec<String> = params.checkpoints.iter().map(|step| format!("step{step}")).collect();
        outputs.push("metrics".into());
        outputs
    }
    fn wants_gpu(&self, params: &TrainTopoformerParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &TrainTopoformerParams, _assigned: Device) -> bool {
        true
    }
    fn resumable(&self, _params: &TrainTopoformerParams) -> bool {
        true
    }
    fn validate(&self, p: &TrainTopoformerParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        let mut fail = |path: &str, message: String, hint: &str| {
            errors.push(ParamError::new(path, message).hint(hint.to_string()));
        };
        for (name, value) in [
            ("n_layer", p.n_layer),
            ("n_head", p.n_head),
            ("n_embd", p.n_embd),
            ("ffn_expansion", p.ffn_expansion),
            ("batch_size", p.batch_size),
            ("context_length", p.context_length),
        ] {
            if value == 0 {
                fail(name, format!("`{name}` is 0"), "give a positive number");
            }
        }
        let side = (p.n_embd as f64).sqrt().round() as usize;
        if p.n_embd > 0 && side * side != p.n_embd {
            let floor = (p.n_embd as f64).sqrt().floor() as usize;
            fail(
                "n_embd",
                format!("n_embd ({}) is not a square number, so the units do not fill a grid", p.n_embd),
                &format!("use a square n_embd, e.g. {} or {}", floor * floor, (floor + 1) * (floor + 1)),
            );
        }
        if p.n_head > 0 && p.n_embd % p.n_head != 0 {
            fail(
                "n_head",
                format!("n_embd ({}) is not divisible by n_head ({})", p.n_embd, p.n_head),
                "each head gets n_embd / n_head dimensions: use a divisor of n_embd (1 is the paper's)",
            );
        }
        for (name, value) in [("sq", p.sq), ("sr", p.sr)] {
            if !(value > 0.0 && value <= 1.0) {
                fail(
                    name,
                    format!("{name} is {value}: an area fraction of the grid"),
                    "use a fraction in (0, 1] (the paper: sq 0.1, sr 0.3; 1 is the control)",
                );
            }
        }
        if !(0.0..1.0).contains(&p.dropout) {
            fail("dropout", format!("dropout is {}", p.dropout), "use a probability in [0, 1)");
        }
        if p.steps == 0 {
            fail("steps", "steps is 0".into(), "train for at least 1 step");
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            fail("learning_rate", format!("learning_rate is {}", p.learning_rate), "use a positive rate, e.g. 1e-3");
        }
        if !(0.0..=p.learning_rate).contains(&p.min_lr()) {
            fail("min_lr", format!("min_lr ({}) is outside [0, learning_rate]", p.min_lr()), "lower min_lr");
        }
        if p.warmup_steps > p.steps {
            fail(
                "warmup_steps",
                format!("warmup_steps ({}) is more than steps ({})", p.warmup_steps, p.steps),
                "lower warmup_steps",
            );
        }
        for (name, value) in [("beta1", p.beta1), ("beta2", p.beta2)] {
            if !(0.0..1.0).contains(&value) {
                fail(name, format!("{name} is {value}"), "use a value in [0, 1)");
            }
        }
        if !(p.eps > 0.0) {
            fail("eps", format!("eps is {}", p.eps), "use a small positive number, e.g. 1e-8");
        }
        if !(p.weight_decay >= 0.0) {
            fail("weight_decay", format!("weight_decay is {}", p.weight_decay), "use 0 or more");
        }
        if !(p.grad_clip >= 0.0) {
            fail("grad_clip", format!("grad_clip is {}", p.grad_clip), "use 0 (off) or a positive norm");
        }
        if p.save_every == 0 {
            fail("save_every", "save_every is 0".into(), "save the training state every N > 0 steps");
        }
        match p.task {
            TopoTask::Mlm => {
                if p.eval_batches == Some(0) {
                    fail("eval_batches", "eval_batches is 0".into(), "give at least 1 (the default is 4)");
                }
                if p.context_length < 2 {
                    fail("context_length", format!("context_length is {}", p.context_length), "use at least 2 tokens");
                }
            }
            TopoTask::Classify => {
                if p.eval_batches.is_some() {
                    fail(
                        "eval_batches",
                        "eval_batches is for task `mlm`".into(),
                        "task `classify` evaluates on the whole `test` table: leave eval_batches out",
                    );
                }
            }
        }
        if let Some(beyond) = p.checkpoints.iter().find(|&&step| step > p.steps) {
            fail(
                "checkpoints",
                format!("checkpoint step {beyond} is beyond `steps` ({})", p.steps),
                "list steps between 0 and `steps`, or raise `steps`",
            );
        }
        let mut sorted = p.checkpoints.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != p.checkpoints.len() {
            fail("checkpoints", "a checkpoint step is listed twice".into(), "list each step once");
        }
        if let Err((message, hint)) = p.device.validate() {
            fail("device", message, &hint);
        }
        errors
    }
    fn run(&self, params: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.train_topoformer(params, ctx)
    }
}
