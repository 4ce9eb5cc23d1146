//! `train.gpt`'s run in the worker (the kind's params and checks are
//! `voxflow::kinds::train`).
//!
//! Work directory (`.voxflow/work/<key>/`, kept across attempts):
//!
//! ```text
//! state-<step>/      the whole training state after <step> steps (weights,
//!                    AdamW moments, sampler, metrics.json, and with
//!                    `spatial` spatial.json: unit cells and neighbourhoods,
//!                    fixed at the start); written to a
//!                    temporary name and renamed, so a directory with this
//!                    name is complete; older ones are removed after it
//! checkpoints/step<N>/  the outputs, written when training passes step N
//!                    (with `spatial`, spatial.json too: the layout, read
//!                    by topo.responses and topo.smoothness)
//! ```
//!
//! A new attempt loads the highest `state-<step>`, says "resuming from step
//! N" and continues; the batches, dropout masks and optimizer state are
//! those of an uninterrupted run, so the results are the same bytes on the
//! CPU. When the stage is done, the checkpoints are moved into the staging
//! directory and the scheduler commits them with the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use serde::{Deserialize, Serialize};
use voxflow::device::Device;
use voxflow::kinds::train::TrainGptParams;
use voxflow::stage::{StageContext, StageError};

use crate::train::spatial::{self, PositionsInit, SpatialConfig, SpatialLayout, SpatialLoss};
use crate::train::{checkpoint, data, GptConfig, TrainConfig, TrainError, Trainer};

const _: () = assert!(spatial::POOL == voxflow::kinds::train::SPATIAL_POOL);

/// The file with the spatial layout (unit cells and neighbourhoods), in a
/// state directory and in a checkpoint ([`SpatialLayout`] as JSON).
pub const SPATIAL_FILE: &str = "spatial.json";

fn spatial_config(p: &TrainGptParams) -> Option<SpatialConfig> {
    use voxflow::kinds::train::SpatialPositions;
    p.spatial.as_ref().map(|s| SpatialConfig {
        alpha: s.alpha,
        neighborhoods: s.neighborhoods,
        radius: s.radius,
        positions: match s.positions {
            SpatialPositions::Grid => PositionsInit::Grid,
            SpatialPositions::Preoptimized => PositionsInit::Preoptimized,
        },
    })
}

/// The layout of a fresh run: neighbourhoods from the seed; with
/// `preoptimized`, cells swapped on the initial model's spatial outputs for
/// the first `batch_size` windows of the training tokens.
fn fresh_layout(config: &SpatialConfig, trainer: &Trainer, train: &[u32]) -> Result<SpatialLayout, TrainError> {
    let model = &trainer.model;
    let side = config.validate(model.config.n_embd)?;
    let seed = trainer.config.seed;
    let mut layout = SpatialLayout::grid(side, config.radius, 2 * model.config.n_layer, seed);
    if config.positions == PositionsInit::Preoptimized {
        let windows = data::validation_windows(train, model.config.context_length, trainer.config.batch_size);
        let batch = data::Batch::from_windows(&windows, model.device);
        let outputs = tch::no_grad(|| model.forward_with_sublayers(&batch.inputs, false).1);
        let flat: Vec<tch::Tensor> = outputs.iter().map(|o| o.reshape([-1, model.config.n_embd as i64])).collect();
        let kept = layout.preoptimize(&flat, seed);
        tracing::info!("spatial: pre-optimised positions, {kept} swaps kept");
    }
    Ok(layout)
}

/// One row of the metrics table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub val_loss: Option<f64>,
    /// TopoLM's spatial loss (unweighted), when `spatial` is set.
    pub spatial_loss: Option<f64>,
}

/// A metrics row as the saved state holds it: floats as their bits, so a
/// resumed run's table is the same bytes (JSON's decimal floats need not
/// read back to the same f64).
#[derive(Serialize, Deserialize)]
struct SavedRow {
    step: usize,
    loss: u64,
    lr: u64,
    grad_norm: u64,
    val_loss: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spatial_loss: Option<u64>,
}

impl From<&MetricsRow> for SavedRow {
    fn from(row: &MetricsRow) -> SavedRow {
        SavedRow {
            step: row.step,
            loss: row.loss.to_bits(),
            lr: row.lr.to_bits(),
            grad_norm: row.grad_norm.to_bits(),
            val_loss: row.val_loss.map(f64::to_bits),
            spatial_loss: row.spatial_loss.map(f64::to_bits),
        }
    }
}

impl From<SavedRow> for MetricsRow {
    fn from(row: SavedRow) -> MetricsRow {
        MetricsRow {
            step: row.step,
            loss: f64::from_bits(row.loss),
            lr: f64::from_bits(row.lr),
            grad_norm: f64::from_bits(row.grad_norm),
            val_loss: row.val_loss.map(f64::from_bits),
            spatial_loss: row.spatial_loss.map(f64::from_bits),
        }
    }
}

fn failed(error: TrainError) -> StageError {
    StageError::failed(error.to_string())
}

/// The token ids of a `corpus.text` table (column `id`, uint32).
pub(crate) fn read_ids(path: &Path, what: &str) -> Result<Vec<u32>, StageError> {
    let batch = voxflow::artifact::read_batch(path)?;
    let column = batch.column_by_name("id").ok_or_else(|| {
        StageError::failed(format!("the {what} tokens ({}) have no column `id`", path.display()))
            .with_hint("give a corpus.text stage as the `corpus` input")
    })?;
    match column.data_type() {
        DataType::UInt32 => Ok(column.as_primitive::<UInt32Type>().values().to_vec()),
        other => Err(StageError::failed(format!("the {what} token ids ({}) are {other}, not uint32", path.display()))),
    }
}

/// The complete training states in `work`, highest step last.
fn states(work: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(work)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("state-")?.parse().ok()?;
            Some((step, entry.path()))
        })
        .collect();
    found.sort();
    found
}

pub fn train_gpt(p: &TrainGptParams, ctx: &mut StageContext) -> Result<(), StageError> {
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    if let Device::Cuda(_) = device {
        ctx.nondeterministic(
            "training on CUDA: some kernels (embedding backward, cuBLAS reductions) are not bitwise reproducible",
        );
    }
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let work = ctx
        .work_dir
        .ok_or_else(|| StageError::failed("train.gpt runs with a work directory (the scheduler gives it one)"))?
        .to_path_buf();

    let corpus = ctx.input("corpus")?;
    let corpus_stage = corpus.stage.clone();
    let wrong_input = |what: &str| {
        format!(
            "the `corpus` input (stage `{corpus_stage}`) has no output `{what}`: train.gpt reads a corpus.text stage"
        )
    };
    let train_path = corpus.output_path("train").map_err(|_| StageError::failed(wrong_input("train")))?;
    let valid_path = corpus.output_path("valid").map_err(|_| StageError::failed(wrong_input("valid")))?;
    let tokenizer_path = corpus.output_path("tokenizer").map_err(|_| StageError::failed(wrong_input("tokenizer")))?;
    let tokenizer_vocab = tokenizers::Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| {
            StageError::failed(format!("tokenizer {}: {e}", tokenizer_path.display()))
                .with_hint("the corpus stage must write a tokenizer.json that the tokenizers library loads")
        })?
        .get_vocab_size(true);
    let vocab_size = p.vocab_size.unwrap_or(tokenizer_vocab);
    if tokenizer_vocab > vocab_size {
        return Err(StageError::failed(format!(
            "param `vocab_size` ({vocab_size}) is smaller than the tokenizer's vocabulary ({tokenizer_vocab} tokens, from `{corpus_stage}`)"
        ))
        .with_hint(format!("leave `vocab_size` out, or set it to at least {tokenizer_vocab}")));
    }
    let train = read_ids(&train_path, "training")?;
    let valid = read_ids(&valid_path, "validation")?;
    for (tokens, what) in [(&train, "training"), (&valid, "validation")] {
        if what == "validation" && p.eval_every == 0 {
            continue;
        }
        if tokens.len() <= p.context_length {
            return Err(StageError::failed(format!(
                "the {what} corpus of `{corpus_stage}` has {} tokens, fewer than one context window plus one ({})",
                tokens.len(),
                p.context_length + 1
            ))
            .with_hint("lower `context_length`, or give the corpus more text (or a larger valid_fraction)"));
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(StageError::failed(format!(
                "the {what} corpus holds token id {id}, beyond the model's vocabulary ({vocab_size})"
            ))
            .with_hint("leave `vocab_size` out to size the embedding from the tokenizer"));
        }
    }

    let model = GptConfig {
        vocab_size,
        n_layer: p.n_layer,
        n_head: p.n_head,
        n_embd: p.n_embd,
        context_length: p.context_length,
        dropout: p.dropout,
        layer_norm_epsilon: 1e-5,
    };
    let config = TrainConfig {
        seed: p.seed,
        steps: p.steps,
        batch_size: p.batch_size(),
        learning_rate: p.learning_rate,
        warmup_steps: p.warmup_steps,
        min_lr: p.min_lr(),
        weight_decay: p.weight_decay,
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        grad_clip: p.grad_clip,
        eval_every: p.eval_every,
        eval_batches: p.eval_batches,
    };
    let torch_device = crate::device::to_tch(device);

    let spatial_config = spatial_config(p);
    let mut layout: Option<SpatialLayout> = None;
    // Resume from the last complete state, if an earlier attempt left one.
    let (mut trainer, mut metrics) = match states(&work).pop() {
        Some((step, dir)) => {
            let trainer = Trainer::load_state(&dir, torch_device).map_err(failed)?;
            if trainer.model.config != model || trainer.config != config {
                return Err(StageError::failed(format!(
                    "the saved state {} is of another configuration",
                    dir.display()
                ))
                .with_hint("remove the work directory (voxflow gc) and run again"));
            }
            let path = dir.join("metrics.json");
            let text =
                std::fs::read_to_string(&path).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
            let saved: Vec<SavedRow> =
                serde_json::from_str(&text).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
            let metrics = saved.into_iter().map(MetricsRow::from).collect();
            if spatial_config.is_some() {
                let path = dir.join(SPATIAL_FILE);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
                layout = Some(
                    serde_json::from_str(&text).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?,
                );
            }
            ctx.note(&format!("resuming from step {step} of {}", p.steps));
            tracing::info!(stage = ctx.name, "resuming from step {step} ({})", dir.display());
            (trainer, metrics)
        }
        None => (Trainer::new(&model, config, torch_device).map_err(failed)?, Vec::new()),
    };
    let spatial = match &spatial_config {
        None => None,
        Some(config) => {
            let layout = match layout {
                Some(layout) => layout,
                None => fresh_layout(config, &trainer, &train).map_err(failed)?,
            };
            Some(SpatialLoss::new(config.clone(), layout, trainer.config.seed, torch_device))
        }
    };
    let checkpoints_dir = work.join("checkpoints");
    let save_checkpoint = |trainer: &Trainer| -> Result<(), StageError> {
        let step = trainer.step();
        let dir = checkpoints_dir.join(format!("step{step}"));
        if p.checkpoints.contains(&step) && !dir.exists() {
            // With `spatial`, the layout (unit cells, neighbourhood pools)
            // goes with the weights: topo.responses and topo.smoothness read it.
            checkpoint::write_dir_atomically(&dir, |tmp| {
                trainer.model.write_hf_files(tmp, Some(&tokenizer_path))?;
                if let Some(spatial) = &spatial {
                    let path = tmp.join(SPATIAL_FILE);
                    std::fs::write(&path, serde_json::to_vec(&spatial.layout).expect("layout serialises"))
                        .map_err(|e| TrainError::file(&path, e))?;
                }
                Ok(())
            })
            .map_err(failed)?;
        }
        Ok(())
    };
    let save_state = |trainer: &Trainer, metrics: &[MetricsRow]| -> Result<(), StageError> {
        let step = trainer.step();
        let dir = work.join(format!("state-{step}"));
        if dir.exists() {
            return Ok(());
        }
        checkpoint::write_dir_atomically(&dir, |tmp| {
            trainer.save_state_into(tmp)?;
            let path = tmp.join("metrics.json");
            let saved: Vec<SavedRow> = metrics.iter().map(SavedRow::from).collect();
            std::fs::write(&path, serde_json::to_vec(&saved).expect("metrics serialise"))
                .map_err(|e| TrainError::file(&path, e))?;
            if let Some(spatial) = &spatial {
                let path = tmp.join(SPATIAL_FILE);
                std::fs::write(&path, serde_json::to_vec(&spatial.layout).expect("layout serialises"))
                    .map_err(|e| TrainError::file(&path, e))?;
            }
            Ok(())
        })
        .map_err(failed)?;
        for (old, path) in states(&work) {
            if old < step {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok(())
    };

    let tokens_per_step = (p.batch_size() * p.context_length) as f64;
    let mut log = String::new();
    let started = Instant::now();
    let first_step = trainer.step();
    ctx.progress_unit("steps");
    ctx.progress(trainer.step() as u64, p.steps as u64);
    while !trainer.finished() {
        save_checkpoint(&trainer)?;
        if ctx.is_cancelled() {
            save_state(&trainer, &metrics)?;
            return Err(StageError::Cancelled);
        }
        let step_started = Instant::now();
        let mut spatial_loss = None;
        let stats = match &spatial {
            None => trainer.train_on(&train).map_err(failed)?,
            Some(spatial) => {
                let batch = trainer.next_batch(&train).map_err(failed)?;
                let step = trainer.step();
                let alpha = spatial.config.alpha;
                trainer.train_step_with(&batch, |outputs| {
                    if alpha > 0.0 {
                        let loss = spatial.loss(outputs, step);
                        spatial_loss = Some(loss.double_value(&[]));
                        Some(loss * alpha)
                    } else {
                        // The control: the curve, without training on it.
                        spatial_loss = Some(tch::no_grad(|| spatial.loss(outputs, step)).double_value(&[]));
                        None
                    }
                })
            }
        };
        let step_seconds = step_started.elapsed().as_secs_f64();
        let val_loss = if trainer.eval_due() { Some(trainer.eval_loss(&valid).map_err(failed)?) } else { None };
        if !stats.loss.is_finite() {
            return Err(StageError::failed(format!("the loss is {} at step {}", stats.loss, stats.step))
                .with_hint("lower `learning_rate` or raise `warmup_steps`; `grad_clip` 1.0 helps"));
        }
        log.push_str(&format!(
            "step {} loss {:.6} lr {:.3e} grad_norm {:.4} tokens/s {:.0}{}{}\n",
            stats.step,
            stats.loss,
            stats.lr,
            stats.grad_norm,
            tokens_per_step / step_seconds.max(1e-9),
            val_loss.map(|v| format!(" val_loss {v:.6}")).unwrap_or_default(),
            spatial_loss.map(|v| format!(" spatial_loss {v:.6}")).unwrap_or_default()
        ));
        metrics.push(MetricsRow {
            step: stats.step,
            loss: stats.loss,
            lr: stats.lr,
            grad_norm: stats.grad_norm,
            val_loss,
            spatial_loss,
        });
        ctx.progress(trainer.step() as u64, p.steps as u64);
        if trainer.step() % p.save_every == 0 && !trainer.finished() {
            save_state(&trainer, &metrics)?;
        }
    }
    save_checkpoint(&trainer)?;
    let seconds = started.elapsed().as_secs_f64();
    let trained = trainer.step() - first_step;
    log.push_str(&format!(
        "{trained} steps in {seconds:.2} s: {:.0} tokens/s on {device} with {} thread(s)\n",
        trained as f64 * tokens_per_step / seconds.max(1e-9),
        ctx.threads
    ));

    for step in &p.checkpoints {
        let name = format!("step{step}");
        let from = checkpoints_dir.join(&name);
        let to = ctx.out_dir.join(&name);
        std::fs::rename(&from, &to)
            .map_err(|e| StageError::failed(format!("moving {} into the result: {e}", from.display())))?;
        ctx.add_dir(&name, &name);
    }
    ctx.write_table("metrics", &metrics_table(&metrics, spatial.is_some()))?;
    // The loss curves, for `voxflow report` (figures are kept, not hashed).
    let curve = |name: &str, points: Vec<(f64, f64)>| voxflow::plot::Series { name: name.to_string(), points };
    let mut series = vec![curve("training loss", metrics.iter().map(|r| (r.step as f64, r.loss)).collect())];
    let validation: Vec<(f64, f64)> = metrics.iter().filter_map(|r| Some((r.step as f64, r.val_loss?))).collect();
    if !validation.is_empty() {
        series.push(curve("validation loss", validation));
    }
    ctx.add_chart("loss", &voxflow::plot::lines("train.gpt: loss by step", "step", "cross-entropy", series))?;
    if spatial.is_some() {
        let points = metrics.iter().filter_map(|r| Some((r.step as f64, r.spatial_loss?))).collect();
        ctx.add_chart(
            "spatial_loss",
            &voxflow::plot::lines(
                "train.gpt: spatial loss by step (unweighted)",
                "step",
                "spatial loss",
                vec![curve("spatial loss", points)],
            ),
        )?;
    }
    let logs = ctx.out_dir.join("logs");
    std::fs::create_dir_all(&logs)
        .and_then(|_| std::fs::write(logs.join("train.log"), log))
        .map_err(|e| StageError::failed(format!("{}: {e}", logs.display())))?;
    ctx.add_log("logs/train.log");
    Ok(())
}

/// The metrics as a table: step, loss, lr, grad_norm, val_loss (null where
/// no validation ran), and with `spatial` spatial_loss (nullable).
pub fn metrics_table(rows: &[MetricsRow], spatial: bool) -> RecordBatch {
    let mut fields = vec![
        Field::new("step", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("lr", DataType::Float64, false),
        Field::new("grad_norm", DataType::Float64, false),
        Field::new("val_loss", DataType::Float64, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step as i64))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.loss))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lr))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.grad_norm))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.val_loss))),
    ];
    if spatial {
        fields.push(Field::new("spatial_loss", DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.spatial_loss))));
    }
    let schema = Schema::new(fields);
    RecordBatch::try_new(Arc::new(schema), columns).expect("metrics schema")
}
