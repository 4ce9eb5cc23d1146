//! `train.ddpm` in the worker (params and checks:
//! `voxflow::kinds::train::ddpm`).
//!
//! Work directory (`.voxflow/work/<key>/`, kept across attempts), as
//! train.gpt's:
//!
//! ```text
//! state-<step>/        config.json, model.safetensors (every variable,
//!                      the class table included), optimizer.safetensors
//!                      (AdamW's moments), state.json (step, metrics as
//!                      float bits); written to a temporary name and renamed
//! checkpoints/step<N>/ the outputs: config.json, model.safetensors
//! ```
//!
//! A step: images drawn with replacement from the train split, timesteps
//! uniform in [0, T), noise N(0, 1), each condition replaced by the null
//! embedding with probability cond_drop, all from libtorch's generator
//! seeded by (seed, step); MSE of the predicted noise; clipping; AdamW at
//! the warmup + cosine schedule's rate (min_lr = learning_rate: constant
//! after warmup).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use voxflow::device::Device;
use voxflow::kinds::images::ImageSet;
use voxflow::kinds::train::ddpm::{ConditioningMode, DdpmParams};
use voxflow::stage::{StageContext, StageError};

use crate::diffusion::schedule::{random_timesteps, NoiseSchedule};
use crate::diffusion::unet::{UNet, UNetConfig, FORMAT};
use crate::diffusion::{images_tensor, step_seed};
use crate::train::optim::{AdamW, AdamWConfig, Schedule};
use crate::train::{checkpoint, TrainError};

/// One row of the metrics: step, loss, lr, grad_norm (as f64 bits in the state).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct SavedRow {
    step: usize,
    loss: u64,
    lr: u64,
    grad_norm: u64,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: String,
    step: usize,
    metrics: Vec<SavedRow>,
}

const STATE_FORMAT: &str = "voxflow.train.ddpm.state/1";

fn failed(error: TrainError) -> StageError {
    StageError::failed(error.to_string())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StageError + '_ {
    move |e| StageError::failed(format!("{}: {e}", path.display()))
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

/// A permutation of 0..k without fixed points (k >= 2), from `seed`.
pub fn derangement(k: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..k).collect();
    loop {
        order.shuffle(&mut rng);
        if order.iter().enumerate().all(|(i, &j)| i != j) {
            return order;
        }
    }
}

/// The initial class table (classes x d) of `mode`: see the kind's docs.
/// Random rows come from libtorch's generator (seed it first).
pub fn initial_table(
    mode: ConditioningMode,
    classes: usize,
    d: usize,
    prototypes: Option<&Tensor>,
    seed: u64,
) -> Tensor {
    let random = || Tensor::randn([classes as i64, d as i64], (Kind::Float, tch::Device::Cpu));
    match (mode, prototypes) {
        (ConditioningMode::Regular, _) => random(),
        (ConditioningMode::ProtoFrozen | ConditioningMode::ProtoUnfrozen, Some(c)) => c.copy(),
        (ConditioningMode::RandomRescaled, Some(c)) => {
            let r = random();
            let norms = c.norm_scalaropt_dim(2.0, &[1i64][..], true);
            &r / r.norm_scalaropt_dim(2.0, &[1i64][..], true) * norms
        }
        (ConditioningMode::ProtoShuffled, Some(c)) => {
            let order: Vec<i64> = derangement(classes, seed).into_iter().map(|i| i as i64).collect();
            c.index_select(0, &Tensor::from_slice(&order))
        }
        (_, None) => unreachable!("validation requires the prototypes input for this mode"),
    }
}

/// Loads the state `dir` (of step `saved`) into `unet` and `optimizer`; returns the metrics so far.
fn load_state(
    dir: &Path,
    saved: usize,
    config: &UNetConfig,
    unet: &mut UNet,
    optimizer: &mut AdamW,
) -> Result<Vec<SavedRow>, TrainError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
    let saved_config: UNetConfig = serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))?;
    if &saved_config != config {
        return Err(TrainError::file(
            &path,
            "the saved state is of another configuration: remove the work directory (voxflow gc) and run again",
        ));
    }
    let weights = dir.join("model.safetensors");
    unet.vs.load(&weights).map_err(|e| TrainError::file(&weights, e))?;
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
    let state: StateFile = serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))?;
    if state.format != STATE_FORMAT || state.step != saved {
        return Err(TrainError::file(&path, "not a train.ddpm state of this step"));
    }
    optimizer.load(&dir.join("optimizer.safetensors"), saved as u64)?;
    Ok(state.metrics)
}

pub fn train_ddpm(p: &DdpmParams, ctx: &mut StageContext) -> Result<(), StageError> {
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    if let Device::Cuda(_) = device {
        ctx.nondeterministic("training on CUDA: cuDNN convolutions are not bitwise reproducible");
    }
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let torch_device = crate::device::to_tch(device);
    let work = ctx
        .work_dir
        .ok_or_else(|| StageError::failed("train.ddpm runs with a work directory (the scheduler gives it one)"))?
        .to_path_buf();
    let set = ImageSet::read(ctx.input("images")?, "images")?;
    if set.size % 4 != 0 {
        return Err(StageError::failed(format!(
            "the images are {0} x {0}: the U-Net needs a side divisible by 4",
            set.size
        ))
        .with_hint("set the images stage's `size` to a multiple of 4 (8 or 16)"));
    }
    let train_rows = set.split_indices(false);
    if train_rows.is_empty() {
        return Err(
            StageError::failed("the images' train split is empty").with_hint("lower the images stage's test_fraction")
        );
    }
    let (train_images, train_labels) = images_tensor(&set, &train_rows, torch_device);

    let prototypes = if ctx.has_input("prototypes") {
        let input = ctx.input("prototypes")?;
        let (_, path) = input.single_output()?;
        let matrix = voxflow::artifact::read_matrix(&path)?.matrix;
        if matrix.rows != set.classes() {
            return Err(StageError::failed(format!(
                "the prototypes (stage `{}`) have {} rows, the images {} classes",
                input.stage,
                matrix.rows,
                set.classes()
            ))
            .with_hint("train the prototypes on the same images stage (`inputs: {images: ...}`)"));
        }
        Some((matrix.cols, Tensor::from_slice(&matrix.data).view([matrix.rows as i64, matrix.cols as i64])))
    } else {
        None
    };
    let embed_dim = prototypes.as_ref().map_or(p.embed_dim, |(d, _)| *d);
    let config = UNetConfig {
        format: FORMAT.to_string(),
        image_size: set.size,
        channels: p.channels,
        embed_dim,
        classes: set.classes(),
        timesteps: p.timesteps,
        beta_start: p.beta_start,
        beta_end: p.beta_end,
        mode: p.mode.name().to_string(),
        learned_table: p.mode.learned(),
        class_names: set.class_names.clone(),
    };
    let schedule = NoiseSchedule::linear(p.timesteps, p.beta_start, p.beta_end);
    let lr_schedule = Schedule {
        learning_rate: p.learning_rate,
        min_lr: p.learning_rate,
        warmup_steps: p.warmup_steps,
        steps: p.steps,
    };
    let adamw = AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: p.weight_decay };

    tch::manual_seed(step_seed(p.seed, u64::MAX));
    let table = initial_table(p.mode, set.classes(), embed_dim, prototypes.as_ref().map(|(_, c)| c), p.seed);
    let mut unet = UNet::new(config.clone(), &table.to_device(torch_device), torch_device);
    let mut optimizer = AdamW::new(adamw, unet.trained_parameters());
    let mut metrics: Vec<SavedRow> = Vec::new();
    let mut step = 0usize;
    if let Some((saved, dir)) = states(&work).pop() {
        metrics = load_state(&dir, saved, &config, &mut unet, &mut optimizer).map_err(failed)?;
        step = saved;
        ctx.note(&format!("resuming from step {step} of {}", p.steps));
        tracing::info!(stage = ctx.name, "resuming from step {step} ({})", dir.display());
    }

    let checkpoints_dir = work.join("checkpoints");
    let save_checkpoint = |unet: &UNet, step: usize| -> Result<(), StageError> {
        let dir = checkpoints_dir.join(format!("step{step}"));
        if p.checkpoints.contains(&step) && !dir.exists() {
            checkpoint::write_dir_atomically(&dir, |tmp| unet.write_files(tmp)).map_err(failed)?;
        }
        Ok(())
    };
    let save_state = |unet: &UNet, optimizer: &AdamW, step: usize, metrics: &[SavedRow]| -> Result<(), StageError> {
        let dir = work.join(format!("state-{step}"));
        if dir.exists() {
            return Ok(());
        }
        checkpoint::write_dir_atomically(&dir, |tmp| {
            unet.write_files(tmp)?;
            optimizer.save(&tmp.join("optimizer.safetensors"))?;
            let state = StateFile { format: STATE_FORMAT.into(), step, metrics: metrics.to_vec() };
            let path = tmp.join("state.json");
            std::fs::write(&path, serde_json::to_vec(&state).expect("JSON")).map_err(|e| TrainError::file(&path, e))
        })
        .map_err(failed)?;
        for (old, path) in states(&work) {
            if old < step {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok(())
    };

    let n_train = train_rows.len() as i64;
    let batch = p.batch_size as i64;
    let classes = set.classes() as i64;
    let started = Instant::now();
    let first_step = step;
    ctx.progress_unit("steps");
    ctx.progress(step as u64, p.steps as u64);
    while step < p.steps {
        save_checkpoint(&unet, step)?;
        if ctx.is_cancelled() {
            save_state(&unet, &optimizer, step, &metrics)?;
            return Err(StageError::Cancelled);
        }
        tch::manual_seed(step_seed(p.seed, step as u64));
        let index = Tensor::randint(n_train, [batch], (Kind::Int64, torch_device));
        let x0 = train_images.index_select(0, &index);
        let labels = train_labels.index_select(0, &index);
        let t = random_timesteps(batch, p.timesteps, torch_device);
        let noise = x0.randn_like();
        let drop = Tensor::rand([batch], (Kind::Float, torch_device)).lt(p.cond_drop);
        let labels = labels.where_self(&drop.logical_not(), &labels.full_like(classes));
        let x_t = schedule.q_sample(&x0, &t, &noise);
        optimizer.zero_grad();
        let loss = unet.forward(&x_t, &t, &labels).mse_loss(&noise, tch::Reduction::Mean);
        loss.backward();
        let grad_norm = optimizer.clip_grad_norm(p.grad_clip);
        let lr = lr_schedule.lr(step);
        optimizer.step(lr);
        step += 1;
        let loss = loss.double_value(&[]);
        if !loss.is_finite() {
            return Err(StageError::failed(format!("the loss is {loss} at step {step}"))
                .with_hint("lower `learning_rate` or raise `warmup_steps`; `grad_clip` 1.0 helps"));
        }
        metrics.push(SavedRow { step, loss: loss.to_bits(), lr: lr.to_bits(), grad_norm: grad_norm.to_bits() });
        ctx.progress(step as u64, p.steps as u64);
        if step % p.save_every == 0 && step < p.steps {
            save_state(&unet, &optimizer, step, &metrics)?;
        }
    }
    save_checkpoint(&unet, step)?;
    let seconds = started.elapsed().as_secs_f64();
    let images_per_second = ((step - first_step) as f64 * p.batch_size as f64) / seconds.max(1e-9);
    let log = format!(
        "{} steps in {seconds:.2} s: {images_per_second:.0} images/s on {device} with {} thread(s)\n",
        step - first_step,
        ctx.threads
    );
    tracing::info!(stage = ctx.name, "{}", log.trim_end());

    for n in &p.checkpoints {
        let name = format!("step{n}");
        let from = checkpoints_dir.join(&name);
        let to = ctx.out_dir.join(&name);
        std::fs::rename(&from, &to).map_err(io(&from))?;
        ctx.add_dir(&name, &name);
    }
    let f = f64::from_bits;
    let schema = Schema::new(vec![
        Field::new("step", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("lr", DataType::Float64, false),
        Field::new("grad_norm", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(metrics.iter().map(|r| r.step as i64))),
        Arc::new(Float64Array::from_iter_values(metrics.iter().map(|r| f(r.loss)))),
        Arc::new(Float64Array::from_iter_values(metrics.iter().map(|r| f(r.lr)))),
        Arc::new(Float64Array::from_iter_values(metrics.iter().map(|r| f(r.grad_norm)))),
    ];
    ctx.write_table("metrics", &RecordBatch::try_new(Arc::new(schema), columns).expect("metrics schema"))?;
    let points = metrics.iter().map(|r| (r.step as f64, f(r.loss))).collect();
    ctx.add_chart(
        "loss",
        &voxflow::plot::lines(
            &format!("train.ddpm ({}): noise MSE by step", p.mode.name()),
            "step",
            "MSE",
            vec![voxflow::plot::Series { name: "training loss".into(), points }],
        ),
    )?;
    let logs = ctx.out_dir.join("logs");
    std::fs::create_dir_all(&logs).and_then(|_| std::fs::write(logs.join("train.log"), log)).map_err(io(&logs))?;
    ctx.add_log("logs/train.log");
    Ok(())
}
