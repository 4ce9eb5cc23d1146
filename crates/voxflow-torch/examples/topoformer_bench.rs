//! Training step time of a Topoformer (spatial querying + reweighting)
//! against standard attention at the same size, on the CPU, in one run:
//! forward, backward, AdamW and (for the Topoformer) the reweighting
//! constraint, on random token ids. Prints one Markdown row per model.
//!
//!   cargo run --release --example topoformer_bench -- N_LAYER N_EMBD TOKENS BATCH STEPS THREADS
//!
//! (benches/topoformer_bench.sh runs it with defaults.)

use std::time::Instant;

use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};
use voxflow::kinds::train::topoformer::TopoAttention;
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
    println!("| attention | n_layer | n_embd | tokens x batch | ms per step (median of {steps}) |");
    println!("| --- | --- | --- | --- | --- |");
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
        };
        let model = TopoformerModel::new(&config, 0, Device::Cpu).expect("model");
        let params = model.parameters().iter().map(|(n, t)| (n.clone(), t.shallow_clone(), decays(n))).collect();
        let mut optimizer = AdamW::new(AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, params);
        let mut times = Vec::with_capacity(steps);
        for step in 0..steps + 2 {
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
        times.sort_by(f64::total_cmp);
        println!("| {attention:?} | {n_layer} | {n_embd} | {tokens} x {batch} | {:.2} |", times[times.len() / 2]);
    }
}
