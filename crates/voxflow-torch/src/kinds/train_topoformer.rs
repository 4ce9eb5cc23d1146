//! The runs of `train.topoformer` and `topoformer.responses` in the worker
//! (the kinds' params and checks are `voxflow::kinds::train::topoformer`
//! and `voxflow::kinds::topoformer`; the model is
//! [`crate::train::topoformer`]).
//!
//! Work directory of train.topoformer (kept across attempts), as train.gpt's:
//! `state-<step>/` (weights, AdamW moments, state.json: step and metrics so
//! far), written to a temporary name and renamed; `checkpoints/step<N>/`
//! (config.json, model.safetensors, tokenizer.json), moved into the result
//! at the end; `tokenizer.json`, the word-level vocabulary of the training
//! texts (`classify`) or the corpus tokenizer plus `[MASK]` (`mlm`).
//! Batches (and `mlm`'s windows and masks) come from (seed, step) alone and
//! dropout masks are seeded per step, so a resumed run is the same bytes on
//! the CPU. Both tasks share the loop, `run_training`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use voxflow::artifact::MatrixArtifact;
use voxflow::device::Device;
use voxflow::kinds::topoformer::{Representation, TopoformerResponsesParams};
use voxflow::kinds::train::topoformer::{TopoTask, TrainTopoformerParams};
use voxflow::numeric::Matrix;
use voxflow::stage::{StageContext, StageError};

use super::topo::{read_stimulus_table, write_unit_tables, UnitCell};
use crate::train::optim::{AdamW, AdamWConfig, Schedule};
use crate::train::topoformer::{self, TopoformerConfig, TopoformerModel, MODEL_TYPE};
use crate::train::{checkpoint, TrainError};

const KIND: &str = "train.topoformer";
/// Special tokens of the word-level vocabulary, ids 0, 1.
const PAD: &str = "[PAD]";
const UNK: &str = "[UNK]";

fn failed(error: TrainError) -> StageError {
    StageError::failed(error.to_string())
}

/// Lower-cased words and runs of punctuation, as the tokenizer's
/// `Whitespace` pre-tokenizer (`\w+|[^\w\s]+`) splits them.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut current_is_word = false;
    for ch in text.to_lowercase().chars() {
        if ch.is_whitespace() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let is_word = ch.is_alphanumeric() || ch == '_';
        if !current.is_empty() && is_word != current_is_word {
            out.push(std::mem::take(&mut current));
        }
        current_is_word = is_word;
        current.push(ch);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A word-level tokenizer.json (Hugging Face `tokenizers`: Lowercase,
/// Whitespace, WordLevel) over the words of `texts`: [PAD] 0, [UNK] 1,
/// then the words in sorted order.
fn tokenizer_json(texts: &[String]) -> serde_json::Value {
    let mut vocab: BTreeMap<String, u32> = BTreeMap::new();
    let mut all: Vec<String> = texts.iter().flat_map(|t| words(t)).collect();
    all.sort();
    all.dedup();
    vocab.insert(PAD.into(), 0);
    vocab.insert(UNK.into(), 1);
    for (k, word) in all.into_iter().enumerate() {
        vocab.insert(word, k as u32 + 2);
    }
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, PAD), special(1, UNK)],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    })
}

fn load_tokenizer(path: &Path, kind: &str) -> Result<tokenizers::Tokenizer, StageError> {
    tokenizers::Tokenizer::from_file(path).map_err(|e| {
        StageError::failed(format!("{kind}: tokenizer {}: {e}", path.display()))
            .with_hint("a train.topoformer checkpoint carries its tokenizer.json; retrain it")
    })
}

/// Each text's token ids (no special tokens), checked against `context_length`.
fn encode(
    tokenizer: &tokenizers::Tokenizer,
    texts: &[String],
    context_length: usize,
    what: &str,
    kind: &str,
) -> Result<Vec<Vec<i64>>, StageError> {
    texts
        .iter()
        .enumerate()
        .map(|(row, text)| {
            let encoding = tokenizer
                .encode(text.as_str(), false)
                .map_err(|e| StageError::failed(format!("{kind}: {what} row {row}: cannot tokenise {text:?}: {e}")))?;
            let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| id as i64).collect();
            if ids.is_empty() {
                return Err(StageError::failed(format!("{kind}: {what} row {row} has no tokens (text {text:?})"))
                    .with_hint("drop empty items from the table"));
            }
            if ids.len() > context_length {
                return Err(StageError::failed(format!(
                    "{kind}: {what} row {row} has {} tokens, more than context_length ({context_length})",
                    ids.len()
                ))
                .with_hint("raise `context_length` (train.topoformer), or shorten the item"));
            }
            Ok(ids)
        })
        .collect()
}

/// Items `rows` as a right-padded `[B, T]` id tensor and its validity mask.
fn batch(encoded: &[Vec<i64>], rows: &[usize], device: tch::Device) -> (Tensor, Tensor) {
    let longest = rows.iter().map(|&i| encoded[i].len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(rows.len() * longest);
    let mut valid = Vec::with_capacity(rows.len() * longest);
    for &i in rows {
        ids.extend_from_slice(&encoded[i]);
        ids.extend(std::iter::repeat_n(0i64, longest - encoded[i].len()));
        valid.extend(std::iter::repeat_n(true, encoded[i].len()));
        valid.extend(std::iter::repeat_n(false, longest - encoded[i].len()));
    }
    let shape = [rows.len() as i64, longest as i64];
    (Tensor::from_slice(&ids).view(shape).to_device(device), Tensor::from_slice(&valid).view(shape).to_device(device))
}

/// The items of step `step`: `batch_size` distinct rows drawn from
/// (seed, step) alone (all rows when there are fewer).
fn batch_rows(seed: u64, step: usize, n_rows: usize, batch_size: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step as u64 + 1);
    rand::seq::index::sample(&mut rng, n_rows, batch_size.min(n_rows)).into_vec()
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One row of the metrics table.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRow {
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
}

/// A metrics row with its floats as bits (a resumed table is the same bytes).
#[derive(Serialize, Deserialize)]
struct SavedRow(usize, u64, u64, u64, u64, Option<u64>, Option<u64>);

impl From<&MetricsRow> for SavedRow {
    fn from(r: &MetricsRow) -> SavedRow {
        SavedRow(
            r.step,
            r.loss.to_bits(),
            r.accuracy.to_bits(),
            r.lr.to_bits(),
            r.grad_norm.to_bits(),
            r.test_loss.map(f64::to_bits),
            r.test_accuracy.map(f64::to_bits),
        )
    }
}

impl From<SavedRow> for MetricsRow {
    fn from(r: SavedRow) -> MetricsRow {
        MetricsRow {
            step: r.0,
            loss: f64::from_bits(r.1),
            accuracy: f64::from_bits(r.2),
            lr: f64::from_bits(r.3),
            grad_norm: f64::from_bits(r.4),
            test_loss: r.5.map(f64::from_bits),
            test_accuracy: r.6.map(f64::from_bits),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    step: usize,
    metrics: Vec<SavedRow>,
}

/// The complete training states in `work`, highest step last.
fn states(work: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(work)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            Some((name.strip_prefix("state-")?.parse().ok()?, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Mean cross-entropy and accuracy of `logits` against `targets`.
fn loss_and_accuracy(logits: &Tensor, targets: &Tensor) -> (Tensor, f64) {
    let loss = logits.cross_entropy_for_logits(targets);
    let correct = logits.argmax(-1, false).eq_tensor(targets).to_kind(Kind::Double).mean(Kind::Double);
    (loss, correct.double_value(&[]))
}

/// The model's device, the work directory and the thread count: the
/// start of both tasks' runs.
fn prepare(p: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<PathBuf, StageError> {
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    if let Device::Cuda(_) = device {
        ctx.nondeterministic("training on CUDA: some kernels are not bitwise reproducible");
    }
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let work = ctx
        .work_dir
        .ok_or_else(|| StageError::failed("train.topoformer runs with a work directory (the scheduler gives it one)"))?
        .to_path_buf();
    std::fs::create_dir_all(&work).map_err(|e| StageError::failed(format!("{}: {e}", work.display())))?;
    Ok(work)
}

/// The checkpoint's config.json for either task (classify: its labels;
/// mlm: the `[MASK]` id and the architecture features.lm recognises).
fn model_config(
    p: &TrainTopoformerParams,
    vocab_size: usize,
    task: TopoTask,
    labels: Vec<String>,
    mask_token_id: Option<usize>,
) -> TopoformerConfig {
    let architectures = match task {
        TopoTask::Classify => Vec::new(),
        TopoTask::Mlm => vec![topoformer::MLM_ARCHITECTURE.into()],
    };
    TopoformerConfig {
        model_type: MODEL_TYPE.into(),
        vocab_size,
        n_layer: p.n_layer,
        n_head: p.n_head,
        n_embd: p.n_embd,
        ffn_expansion: p.ffn_expansion,
        context_length: p.context_length,
        dropout: p.dropout,
        attention: p.attention,
        sq: p.fractions().0,
        sr: p.fractions().1,
        labels,
        layer_norm_epsilon: 1e-5,
        task,
        architectures,
        mask_token_id,
    }
}

pub fn train_topoformer(p: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<(), StageError> {
    match p.task {
        TopoTask::Classify => train_classifier(p, ctx),
        TopoTask::Mlm => train_mlm(p, ctx),
    }
}

fn train_classifier(p: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<(), StageError> {
    let work = prepare(p, ctx)?;
    let train = read_stimulus_table(ctx, "train", KIND)?;
    let test = read_stimulus_table(ctx, "test", KIND)?;
    let mut labels: Vec<String> = train.labels.clone();
    labels.sort();
    labels.dedup();
    if labels.len() < 2 {
        return Err(StageError::failed(format!(
            "{KIND}: the `train` table has {} label(s) ({}); a classifier needs 2 or more",
            labels.len(),
            labels.join(", ")
        ))
        .with_hint("give a table with at least two values in `label`"));
    }
    let class_of = |label: &String, what: &str| -> Result<i64, StageError> {
        labels.binary_search(label).map(|k| k as i64).map_err(|_| {
            StageError::failed(format!(
                "{KIND}: the `{what}` table has label `{label}`, which the training table does not ({})",
                labels.join(", ")
            ))
            .with_hint("train and test tables must use the same labels")
        })
    };
    let train_y: Vec<i64> = train.labels.iter().map(|l| class_of(l, "train")).collect::<Result<_, _>>()?;
    let test_y: Vec<i64> = test.labels.iter().map(|l| class_of(l, "test")).collect::<Result<_, _>>()?;

    // The vocabulary of the training texts (deterministic: sorted words).
    let tokenizer_path = work.join("tokenizer.json");
    let json = serde_json::to_string_pretty(&tokenizer_json(&train.texts)).expect("JSON") + "\n";
    std::fs::write(&tokenizer_path, json)
        .map_err(|e| StageError::failed(format!("{}: {e}", tokenizer_path.display())))?;
    let tokenizer = load_tokenizer(&tokenizer_path, KIND)?;
    let vocab_size = tokenizer.get_vocab_size(true);
    let train_ids = encode(&tokenizer, &train.texts, p.context_length, "train", KIND)?;
    let test_ids = encode(&tokenizer, &test.texts, p.context_length, "test", KIND)?;

    let config = model_config(p, vocab_size, TopoTask::Classify, labels.clone(), None);
    let torch_device = crate::device::to_tch(ctx.device);
    let batch_loss = |model: &TopoformerModel, step: usize| -> (Tensor, f64) {
        let rows = batch_rows(p.seed, step, train_ids.len(), p.batch_size);
        let (ids, valid) = batch(&train_ids, &rows, torch_device);
        let targets = Tensor::from_slice(&rows.iter().map(|&i| train_y[i]).collect::<Vec<_>>()).to_device(torch_device);
        let (logits, _) = model.forward(&ids, &valid, true);
        loss_and_accuracy(&logits, &targets)
    };
    let evaluate = |model: &TopoformerModel| -> (f64, f64) {
        let _guard = tch::no_grad_guard();
        let rows: Vec<usize> = (0..test_ids.len()).collect();
        let (mut loss_sum, mut correct) = (0.0, 0.0);
        for chunk in rows.chunks(p.batch_size.max(1)) {
            let (ids, valid) = batch(&test_ids, chunk, torch_device);
            let targets =
                Tensor::from_slice(&chunk.iter().map(|&i| test_y[i]).collect::<Vec<_>>()).to_device(torch_device);
            let (logits, _) = model.forward(&ids, &valid, false);
            let (loss, accuracy) = loss_and_accuracy(&logits, &targets);
            loss_sum += loss.double_value(&[]) * chunk.len() as f64;
            correct += accuracy * chunk.len() as f64;
        }
        (loss_sum / rows.len() as f64, correct / rows.len() as f64)
    };
    run_training(p, ctx, &work, &config, &tokenizer_path, batch_loss, evaluate, Evaluated::Test)
}

/// The `[MASK]` token added to a corpus tokenizer (or found in it), the
/// tokenizer's special token ids, and the extended tokenizer written to `to`.
fn tokenizer_with_mask(from: &Path, to: &Path) -> Result<(usize, Vec<usize>, usize), StageError> {
    let mut tokenizer = tokenizers::Tokenizer::from_file(from).map_err(|e| {
        StageError::failed(format!("{KIND}: tokenizer {}: {e}", from.display()))
            .with_hint("the corpus stage must write a tokenizer.json that the tokenizers library loads")
    })?;
    let mut special: Vec<usize> = tokenizer
        .get_added_tokens_decoder()
        .iter()
        .filter(|(_, token)| token.special && token.content != topoformer::MASK_TOKEN)
        .map(|(&id, _)| id as usize)
        .collect();
    special.sort_unstable();
    let mask_id = match tokenizer.token_to_id(topoformer::MASK_TOKEN) {
        Some(id) => id as usize,
        None => {
            tokenizer.add_special_tokens(&[tokenizers::AddedToken::from(topoformer::MASK_TOKEN, true)]);
            tokenizer.token_to_id(topoformer::MASK_TOKEN).expect("just added") as usize
        }
    };
    tokenizer.save(to, true).map_err(|e| StageError::failed(format!("{KIND}: writing {}: {e}", to.display())))?;
    Ok((mask_id, special, tokenizer.get_vocab_size(true)))
}

fn train_mlm(p: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<(), StageError> {
    let work = prepare(p, ctx)?;
    let corpus = ctx.input("corpus")?;
    let corpus_stage = corpus.stage.clone();
    let wrong_input = |what: &str| {
        StageError::failed(format!(
            "the `corpus` input (stage `{corpus_stage}`) has no output `{what}`: train.topoformer (task mlm) reads a corpus.text stage"
        ))
        .with_hint("give `inputs: {corpus: <corpus.text stage>}`")
    };
    let train_path = corpus.output_path("train").map_err(|_| wrong_input("train"))?;
    let valid_path = corpus.output_path("valid").map_err(|_| wrong_input("valid"))?;
    let source_tokenizer = corpus.output_path("tokenizer").map_err(|_| wrong_input("tokenizer"))?;
    let tokenizer_path = work.join("tokenizer.json");
    let (mask_id, special, vocab_size) = tokenizer_with_mask(&source_tokenizer, &tokenizer_path)?;
    let vocab = topoformer::MaskVocab::new(vocab_size, &special, mask_id);
    let train = super::train_gpt::read_ids(&train_path, "training")?;
    let valid = super::train_gpt::read_ids(&valid_path, "validation")?;
    let t = p.context_length;
    for (tokens, what) in [(&train, "training"), (&valid, "validation")] {
        crate::train::data::check_tokens(tokens, t, vocab_size, what).map_err(|e| {
            StageError::failed(format!("{KIND}: {e}")).with_hint("give a larger corpus or a shorter context_length")
        })?;
        if tokens.iter().any(|&id| id as usize == mask_id) {
            return Err(StageError::failed(format!(
                "{KIND}: the {what} tokens hold {} (id {mask_id}), the mask token",
                topoformer::MASK_TOKEN
            ))
            .with_hint("the corpus must not contain the mask token"));
        }
    }
    let config = model_config(p, vocab_size, TopoTask::Mlm, Vec::new(), Some(mask_id));
    let torch_device = crate::device::to_tch(ctx.device);
    let d = p.n_embd as i64;
    // The masked batch's loss and the accuracy on its selected tokens.
    let masked_loss = |model: &TopoformerModel, flat: &[i64], masked: &topoformer::Masked, train: bool| {
        let rows = (flat.len() / t) as i64;
        let ids = Tensor::from_slice(&masked.inputs).view([rows, t as i64]).to_device(torch_device);
        let valid = Tensor::ones([rows, t as i64], (Kind::Bool, torch_device));
        let encoded = model.encode(&ids, &valid, train);
        let positions = Tensor::from_slice(&masked.positions).to_device(torch_device);
        let hidden = encoded.last().reshape([-1, d]).index_select(0, &positions);
        let targets = Tensor::from_slice(&masked.targets).to_device(torch_device);
        loss_and_accuracy(&model.mlm_logits(&hidden), &targets)
    };
    let batch_loss = |model: &TopoformerModel, step: usize| -> (Tensor, f64) {
        let flat = mlm_windows(&train, t, p.seed, step, p.batch_size);
        let masked = topoformer::mask_tokens(&flat, &vocab, p.seed, step as u64);
        masked_loss(model, &flat, &masked, true)
    };
    // Fixed validation windows and masks (stream u64::MAX - k for chunk k).
    let windows: Vec<i64> = valid
        .chunks_exact(t)
        .take(p.eval_batches() * p.batch_size)
        .flat_map(|w| w.iter().map(|&id| id as i64))
        .collect();
    let valid_batches: Vec<(Vec<i64>, topoformer::Masked)> = windows
        .chunks(t * p.batch_size)
        .enumerate()
        .map(|(k, flat)| (flat.to_vec(), topoformer::mask_tokens(flat, &vocab, p.seed, u64::MAX - k as u64)))
        .collect();
    let evaluate = |model: &TopoformerModel| -> (f64, f64) {
        let _guard = tch::no_grad_guard();
        let (mut loss_sum, mut correct, mut n) = (0.0, 0.0, 0.0);
        for (flat, masked) in &valid_batches {
            let (loss, accuracy) = masked_loss(model, flat, masked, false);
            let count = masked.targets.len() as f64;
            loss_sum += loss.double_value(&[]) * count;
            correct += accuracy * count;
            n += count;
        }
        (loss_sum / n, correct / n)
    };
    ctx.note(&format!(
        "vocabulary {vocab_size} tokens ({} {mask_id}), {} training tokens, {} validation windows",
        topoformer::MASK_TOKEN,
        train.len(),
        windows.len() / t
    ));
    run_training(p, ctx, &work, &config, &tokenizer_path, batch_loss, evaluate, Evaluated::Validation)
}

/// The training windows of step `step`: `batch_size` windows of
/// `context_length` tokens from `tokens`, their starts drawn from
/// (seed, step) alone; flattened.
fn mlm_windows(tokens: &[u32], context_length: usize, seed: u64, step: usize, batch_size: usize) -> Vec<i64> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step as u64 + 1);
    let last_start = tokens.len() - context_length;
    (0..batch_size)
        .flat_map(|_| {
            let start = rng.random_range(0..=last_start);
            tokens[start..start + context_length].iter().map(|&id| id as i64)
        })
        .collect()
}

/// What the evaluation columns of the metrics table hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Evaluated {
    /// `classify`: the `test` table (test_loss, test_accuracy).
    Test,
    /// `mlm`: the validation windows (val_loss, val_accuracy).
    Validation,
}

impl Evaluated {
    fn columns(self) -> [&'static str; 2] {
        match self {
            Evaluated::Test => ["test_loss", "test_accuracy"],
            Evaluated::Validation => ["val_loss", "val_accuracy"],
        }
    }
    fn name(self) -> &'static str {
        match self {
            Evaluated::Test => "test",
            Evaluated::Validation => "validation",
        }
    }
}

/// The training loop both tasks share: resume, AdamW steps with the
/// schedule, the reweighting constraint, evaluation, states, checkpoints,
/// the metrics table and figures. `batch_loss(model, step)` is the step's
/// loss (dropout on) and accuracy; `evaluate(model)` the held-out loss and
/// accuracy.
#[allow(clippy::too_many_arguments)]
fn run_training(
    p: &TrainTopoformerParams,
    ctx: &mut StageContext,
    work: &Path,
    config: &TopoformerConfig,
    tokenizer_path: &Path,
    batch_loss: impl Fn(&TopoformerModel, usize) -> (Tensor, f64),
    evaluate: impl Fn(&TopoformerModel) -> (f64, f64),
    evaluated: Evaluated,
) -> Result<(), StageError> {
    let device = ctx.device;
    let torch_device = crate::device::to_tch(device);
    let schedule =
        Schedule { learning_rate: p.learning_rate, min_lr: p.min_lr(), warmup_steps: p.warmup_steps, steps: p.steps };
    let adamw = AdamWConfig { beta1: p.beta1, beta2: p.beta2, eps: p.eps, weight_decay: p.weight_decay };
    let optimizer_of = |model: &TopoformerModel| {
        let params = model
            .parameters()
            .iter()
            .map(|(name, t)| (name.clone(), t.shallow_clone(), topoformer::decays(name)))
            .collect();
        AdamW::new(adamw, params)
    };

    let (model, mut optimizer, mut step, mut metrics) = match states(work).pop() {
        Some((saved_step, dir)) => {
            let model = TopoformerModel::load(&dir, torch_device).map_err(failed)?;
            if model.config != *config {
                return Err(StageError::failed(format!(
                    "the saved state {} is of another configuration",
                    dir.display()
                ))
                .with_hint("remove the work directory (voxflow gc) and run again"));
            }
            let mut optimizer = optimizer_of(&model);
            optimizer.load(&dir.join("optimizer.safetensors"), saved_step as u64).map_err(failed)?;
            let path = dir.join("state.json");
            let text =
                std::fs::read_to_string(&path).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
            let state: StateFile =
                serde_json::from_str(&text).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
            ctx.note(&format!("resuming from step {saved_step} of {}", p.steps));
            (model, optimizer, state.step, state.metrics.into_iter().map(MetricsRow::from).collect::<Vec<_>>())
        }
        None => {
            let model = TopoformerModel::new(config, p.seed, torch_device).map_err(failed)?;
            let optimizer = optimizer_of(&model);
            (model, optimizer, 0, Vec::new())
        }
    };

    let checkpoints_dir = work.join("checkpoints");
    let save_checkpoint = |model: &TopoformerModel, step: usize| -> Result<(), StageError> {
        let dir = checkpoints_dir.join(format!("step{step}"));
        if p.checkpoints.contains(&step) && !dir.exists() {
            checkpoint::write_dir_atomically(&dir, |tmp| model.write_files(tmp, Some(tokenizer_path)))
                .map_err(failed)?;
        }
        Ok(())
    };
    let save_state = |model: &TopoformerModel, optimizer: &AdamW, step: usize, metrics: &[MetricsRow]| {
        let dir = work.join(format!("state-{step}"));
        if dir.exists() {
            return Ok(());
        }
        checkpoint::write_dir_atomically(&dir, |tmp| {
            model.write_files(tmp, None)?;
            optimizer.save(&tmp.join("optimizer.safetensors"))?;
            let state = StateFile { step, metrics: metrics.iter().map(SavedRow::from).collect() };
            let path = tmp.join("state.json");
            std::fs::write(&path, serde_json::to_vec(&state).expect("JSON")).map_err(|e| TrainError::file(&path, e))
        })
        .map_err(failed)?;
        for (old, path) in states(work) {
            if old < step {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok::<(), StageError>(())
    };

    let mut log = String::new();
    if evaluated == Evaluated::Validation && step == 0 {
        // The untrained model's validation loss, for the log (the metrics
        // table starts at step 1, as classify's).
        let (l, a) = evaluate(&model);
        log.push_str(&format!("step 0 val_loss {l:.6} val_accuracy {a:.4}\n"));
    }
    let started = Instant::now();
    let first_step = step;
    ctx.progress_unit("steps");
    ctx.progress(step as u64, p.steps as u64);
    while step < p.steps {
        save_checkpoint(&model, step)?;
        if ctx.is_cancelled() {
            save_state(&model, &optimizer, step, &metrics)?;
            return Err(StageError::Cancelled);
        }
        let lr = schedule.lr(step);
        if p.dropout > 0.0 {
            tch::manual_seed((splitmix(p.seed ^ splitmix(step as u64)) >> 1) as i64);
        }
        optimizer.zero_grad();
        let (loss, accuracy) = batch_loss(&model, step);
        loss.backward();
        let grad_norm = optimizer.clip_grad_norm(p.grad_clip);
        optimizer.step(lr);
        model.constrain();
        step += 1;
        let loss = loss.double_value(&[]);
        if !loss.is_finite() {
            return Err(StageError::failed(format!("{KIND}: the loss is {loss} at step {step}"))
                .with_hint("lower `learning_rate` or raise `warmup_steps`"));
        }
        let due = step == p.steps || (p.eval_every > 0 && step % p.eval_every == 0);
        let (test_loss, test_accuracy) = if due {
            let (l, a) = evaluate(&model);
            (Some(l), Some(a))
        } else {
            (None, None)
        };
        let [loss_column, accuracy_column] = evaluated.columns();
        log.push_str(&format!(
            "step {step} loss {loss:.6} accuracy {accuracy:.4} lr {lr:.3e} grad_norm {grad_norm:.4}{}\n",
            match (test_loss, test_accuracy) {
                (Some(l), Some(a)) if evaluated == Evaluated::Validation =>
                    format!(" {loss_column} {l:.6} {accuracy_column} {a:.4}"),
                (_, Some(a)) => format!(" {accuracy_column} {a:.4}"),
                _ => String::new(),
            }
        ));
        metrics.push(MetricsRow { step, loss, accuracy, lr, grad_norm, test_loss, test_accuracy });
        ctx.progress(step as u64, p.steps as u64);
        if step % p.save_every == 0 && step < p.steps {
            save_state(&model, &optimizer, step, &metrics)?;
        }
    }
    save_checkpoint(&model, step)?;
    let seconds = started.elapsed().as_secs_f64();
    log.push_str(&format!(
        "{} steps in {seconds:.2} s on {device} with {} thread(s)\n",
        step - first_step,
        ctx.threads
    ));

    for s in &p.checkpoints {
        let name = format!("step{s}");
        let from = checkpoints_dir.join(&name);
        let to = ctx.out_dir.join(&name);
        std::fs::rename(&from, &to)
            .map_err(|e| StageError::failed(format!("moving {} into the result: {e}", from.display())))?;
        ctx.add_dir(&name, &name);
    }
    ctx.write_table("metrics", &metrics_table(&metrics, evaluated.columns()))?;
    let curve = |name: &str, points: Vec<(f64, f64)>| voxflow::plot::Series { name: name.to_string(), points };
    let test_loss: Vec<(f64, f64)> = metrics.iter().filter_map(|r| Some((r.step as f64, r.test_loss?))).collect();
    let test_accuracy: Vec<(f64, f64)> =
        metrics.iter().filter_map(|r| Some((r.step as f64, r.test_accuracy?))).collect();
    let held_out = evaluated.name();
    let (loss_title, accuracy_title, batch_name) = match evaluated {
        Evaluated::Test => ("cross-entropy", "accuracy", "training batch"),
        Evaluated::Validation => ("cross-entropy (masked tokens)", "accuracy (masked tokens)", "training batch"),
    };
    ctx.add_chart(
        "loss",
        &voxflow::plot::lines(
            "train.topoformer: loss by step",
            "step",
            loss_title,
            vec![
                curve("training loss", metrics.iter().map(|r| (r.step as f64, r.loss)).collect()),
                curve(&format!("{held_out} loss"), test_loss),
            ],
        ),
    )?;
    ctx.add_chart(
        "accuracy",
        &voxflow::plot::lines(
            "train.topoformer: accuracy by step",
            "step",
            accuracy_title,
            vec![
                curve(batch_name, metrics.iter().map(|r| (r.step as f64, r.accuracy)).collect()),
                curve(if evaluated == Evaluated::Test { "test" } else { "validation" }, test_accuracy),
            ],
        ),
    )?;
    let logs = ctx.out_dir.join("logs");
    std::fs::create_dir_all(&logs)
        .and_then(|_| std::fs::write(logs.join("train.log"), log))
        .map_err(|e| StageError::failed(format!("{}: {e}", logs.display())))?;
    ctx.add_log("logs/train.log");
    Ok(())
}

/// step, loss, accuracy, lr, grad_norm, and the two evaluation columns
/// `evaluation` (test_loss, test_accuracy for classify; val_loss,
/// val_accuracy for mlm), null where the evaluation did not run.
pub fn metrics_table(rows: &[MetricsRow], evaluation: [&str; 2]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("step", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("accuracy", DataType::Float64, false),
        Field::new("lr", DataType::Float64, false),
        Field::new("grad_norm", DataType::Float64, false),
        Field::new(evaluation[0], DataType::Float64, true),
        Field::new(evaluation[1], DataType::Float64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step as i64))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.loss))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.accuracy))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lr))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.grad_norm))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.test_loss))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.test_accuracy))),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("metrics schema")
}

pub fn topoformer_responses(p: &TopoformerResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "topoformer.responses";
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let input = ctx.input("model")?;
    let stage = match &input.output {
        Some(output) => format!("{}.{output}", input.stage),
        None => input.stage.clone(),
    };
    let (_, dir) = input.single_output()?;
    let model = TopoformerModel::load(&dir, crate::device::to_tch(device)).map_err(|e| {
        StageError::failed(format!("{KIND}: the model of `{stage}` ({}): {e}", dir.display()))
            .with_hint("give a train.topoformer checkpoint: `inputs: {model: <train stage>.step<N>}`")
    })?;
    let n_layer = model.config.n_layer;
    let mut layers = p.layers.clone().unwrap_or_else(|| (0..n_layer).collect());
    layers.sort_unstable();
    if let Some(&beyond) = layers.iter().find(|&&l| l >= n_layer) {
        return Err(StageError::failed(format!(
            "{KIND}: param `layers` has block {beyond}, but the model of `{stage}` has {n_layer} block(s)"
        ))
        .with_hint("list blocks from 0 to n_layer - 1, or leave `layers` out"));
    }
    let mut representations = p.representations.clone();
    representations.sort_unstable();
    let stimuli = read_stimulus_table(ctx, "stimuli", KIND)?;
    let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), KIND)?;
    let encoded = encode(&tokenizer, &stimuli.texts, model.config.context_length, "stimuli", KIND)?;

    let d = model.config.n_embd;
    let outputs: Vec<(usize, Representation)> =
        layers.iter().flat_map(|&l| representations.iter().map(move |&r| (l, r))).collect();
    let mut matrix = Matrix::zeros(encoded.len(), outputs.len() * d);
    let _guard = tch::no_grad_guard();
    let rows: Vec<usize> = (0..encoded.len()).collect();
    for (done, chunk) in rows.chunks(p.batch_size).enumerate() {
        let (ids, valid) = batch(&encoded, chunk, model.device);
        let blocks = model.encode(&ids, &valid, false).blocks;
        let weights = valid.to_kind(Kind::Double).unsqueeze(-1);
        let counts = weights.sum_dim_intlist(&[1i64][..], false, Kind::Double);
        for (k, &(layer, representation)) in outputs.iter().enumerate() {
            let block = &blocks[layer];
            let tensor = match representation {
                Representation::Query => &block.query,
                Representation::Key => &block.key,
                Representation::Value => &block.value,
                Representation::Output => &block.output,
            };
            // The mean over each item's own tokens.
            let mean =
                (tensor.to_kind(Kind::Double) * &weights).sum_dim_intlist(&[1i64][..], false, Kind::Double) / &counts;
            let values: Vec<f64> = Vec::try_from(mean.to_device(tch::Device::Cpu).contiguous().view([-1]))
                .map_err(|e: tch::TchError| StageError::failed(e.to_string()))?;
            for (b, &i) in chunk.iter().enumerate() {
                for (slot, v) in matrix.row_mut(i)[k * d..(k + 1) * d].iter_mut().zip(&values[b * d..(b + 1) * d]) {
                    *slot = *v as f32;
                }
            }
        }
        ctx.progress(((done + 1) * p.batch_size).min(encoded.len()) as u64, encoded.len() as u64);
        ctx.check_cancelled()?;
    }
    let mut artifact = MatrixArtifact::new(matrix);
    artifact.metadata.insert("model".into(), stage);
    artifact.metadata.insert("n_embd".into(), d.to_string());
    ctx.write_matrix("responses", &artifact)?;

    let mut units = Vec::with_capacity(outputs.len() * d);
    for &(l, representation) in &outputs {
        for u in 0..d as u32 {
            units.push(UnitCell { layer: l as i32, sublayer: representation.name(), unit: u, cell: u });
        }
    }
    write_unit_tables(ctx, &units, model.config.side() as u32, stimuli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_the_whitespace_pre_tokenizer_and_the_tokenizer_loads() {
        assert_eq!(words("The dogs, AREN'T good."), ["the", "dogs", ",", "aren", "'", "t", "good", "."]);
        let texts = vec!["the dog is good .".to_string(), "The cats are not bad .".to_string()];
        let dir = std::env::temp_dir().join(format!("voxflow-topoformer-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, serde_json::to_string(&tokenizer_json(&texts)).unwrap()).unwrap();
        let tokenizer = load_tokenizer(&path, "test").unwrap();
        let ids = encode(&tokenizer, &["the cats are good . zebra".to_string()], 10, "t", "test").unwrap();
        let vocab = tokenizer.get_vocab(true);
        let id = |w: &str| vocab[w] as i64;
        assert_eq!(ids[0], [id("the"), id("cats"), id("are"), id("good"), id("."), 1]);
        std::fs::remove_dir_all(dir).unwrap();
        // Batches depend on (seed, step) only.
        assert_eq!(batch_rows(4, 7, 100, 10), batch_rows(4, 7, 100, 10));
        assert_ne!(batch_rows(4, 7, 100, 10), batch_rows(4, 8, 100, 10));
    }
}
