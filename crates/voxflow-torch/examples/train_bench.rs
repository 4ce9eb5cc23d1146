//! Training throughput of voxflow's GPT trainer alone (no engine, no worker
//! protocol), for benches/train_bench.sh, which runs the same model and
//! batches in PyTorch eager and through `train.gpt`.
//!
//!   train_bench N_LAYER N_HEAD N_EMBD CONTEXT BATCH STEPS THREADS
//!
//! Prints one JSON line: tokens/s and ms per step over STEPS steps after 3
//! untimed ones.

use std::time::Instant;

use voxflow_torch::train::{GptConfig, TrainConfig, Trainer};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("integer arguments")).collect();
    let [n_layer, n_head, n_embd, context, batch, steps, threads] = args[..] else {
        panic!("usage: train_bench N_LAYER N_HEAD N_EMBD CONTEXT BATCH STEPS THREADS");
    };
    tch::set_num_threads(threads as i32);
    let model = GptConfig {
        vocab_size: 1024,
        n_layer,
        n_head,
        n_embd,
        context_length: context,
        dropout: 0.0,
        layer_norm_epsilon: 1e-5,
    };
    let warmup = 3;
    let config = TrainConfig {
        steps: steps + warmup,
        batch_size: batch,
        warmup_steps: 0,
        eval_every: 0,
        ..TrainConfig::default()
    };
    let tokens: Vec<u32> = (0..200_000u64).map(|i| ((i * 2654435761) % 1024) as u32).collect();
    let mut trainer = Trainer::new(&model, config, tch::Device::Cpu).expect("trainer");
    for _ in 0..warmup {
        trainer.train_on(&tokens).expect("step");
    }
    let started = Instant::now();
    for _ in 0..steps {
        trainer.train_on(&tokens).expect("step");
    }
    let seconds = started.elapsed().as_secs_f64();
    let tokens_per_s = (steps * batch * context) as f64 / seconds;
    println!(
        "{{\"impl\": \"voxflow\", \"tokens_per_s\": {tokens_per_s:.1}, \"ms_per_step\": {:.3}, \"parameters\": {}}}",
        seconds * 1000.0 / steps as f64,
        model.parameter_count()
    );
}
