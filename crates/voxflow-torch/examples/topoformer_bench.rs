//! Training step time of a Topoformer (spatial querying + reweighting)
//! against standard attention at the same size, on the CPU, in one run:
//! forward, backward, AdamW and (for the Topoformer) the reweighting
//! constraint, on random token ids, the three models one step each in turn.
//! Prints one Markdown row per model.
//!
//!   cargo run --release --example topoformer_bench -- N_LAYER N_EMBD TOKENS BATCH STEPS THREADS
//!
//! (benches/topoformer_bench.sh runs it with defaults.)

use std::time::Instant;

use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};
use voxflow::kinds::train::topoformer::{TopoAttention, TopoTask};
use voxflow_torch::train::optim::{AdamW, AdamWConfig};
use voxflow_torch::train::topoformer::{decays, TopoformerConfig, TopoformerModel, MODEL_TYPE};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("integer arguments")).collect();
    let [n_layer, n_embd, tokens, batch, steps, threads] = args[..] else {
        panic!("usage: topoformer_bench N_LAYER N_EMBD TOKENS BATCH STEPS THREADS");
    };
    tch::set_num_threads(threads as i32);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let vocab = 1000usize;
    let ids: Vec<i64> = (0..batch * tokens).map(|_| rng.random_range(0..vocab as i64)).collect();
    let ids = Tensor::from_slice(&ids).view([batch as i64, tokens as i64]);
    let valid = ids.ones_like().to_kind(Kind::Bool);
    let targets = Tensor::from_slice(&(0..batch as i64).map(|b| b % 2).collect::<Vec<_>>());
    // The three models train side by side, one step of each in turn, so
    // that load from other processes on a shared machine falls on all three.
    let mut runs = Vec::new();
    for (attention, sq, sr) in [
        (TopoAttention::Topographic, 0.1, 0.3),
        (TopoAttention::Control, 1.0, 1.0),
        (TopoAttention::Standard, 1.0, 1.0),
    ] {
        let config = TopoformerConfig {
            model_type: MODEL_TYPE.into(),
            vocab_size: vocab,
            n_layer,
            n_head: 1,
            n_embd,
            ffn_expansion: 4,
            context_length: tokens,
            dropout: 0.0,
            attention,
            sq,
            sr,
            labels: vec!["a".into(), "b".into()],
            layer_norm_epsilon: 1e-5,
            task: TopoTask::Classify,
            architectures: Vec::new(),
            mask_token_id: None,
        };
        let model = TopoformerModel::new(&config, 0, Device::Cpu).expect("model");
        let params = model.parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone(), decays(n))).collect();
        let optimizer = AdamW::new(AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, params);
        runs.push((attention, model, optimizer, Vec::with_capacity(steps)));
    }
    for step in 0..steps + 2 {
        for (_, model, optimizer, times) in runs.iter_mut() {
            let started = Instant::now();
            optimizer.zero_grad();
            let (logits, _) = model.forward(&ids, &valid, true);
            logits.cross_entropy_for_logits(&targets).backward();
            optimizer.step(1e-3);
            model.constrain();
            if step >= 2 {
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let medians: Vec<f64> = runs
        .iter_mut()
        .map(|(_, _, _, times)| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .collect();
    let standard = medians[2];
    println!("| attention | n_layer | n_embd | tokens x batch | ms per step (median of {steps}) | / standard |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for ((attention, ..), median) in runs.iter().zip(&medians) {
        println!(
            "| {attention:?} | {n_layer} | {n_embd} | {tokens} x {batch} | {median:.2} | {:.2}x |",
            median / standard
        );
    }
}
