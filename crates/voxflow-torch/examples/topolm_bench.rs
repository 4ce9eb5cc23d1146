//! Step time of TopoLM (the spatial loss, `train::spatial`) against the
//! plain model at the same size, on the CPU:
//!
//!   topolm_bench N_LAYER N_HEAD N_EMBD CONTEXT BATCH STEPS THREADS [ALPHA [RADIUS [NEIGHBORHOODS]]]
//!
//! N_EMBD must be a square. Runs STEPS timed steps (after 3 untimed ones)
//! without the spatial loss, with it at ALPHA (default 2.5), and again
//! without and with (interleaved, to even out machine noise), and prints
//! one JSON line: ms per step of each and their ratio.

use std::time::Instant;

use voxflow_torch::train::spatial::{Correlate, PositionsInit, SpatialConfig, SpatialLayout, SpatialLoss};
use voxflow_torch::train::{GptConfig, TrainConfig, Trainer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let int = |i: usize| -> usize { args[i].parse().expect("integer arguments") };
    if args.len() < 7 {
        panic!(
            "usage: topolm_bench N_LAYER N_HEAD N_EMBD CONTEXT BATCH STEPS THREADS [ALPHA [RADIUS [NEIGHBORHOODS]]]"
        );
    }
    let (n_layer, n_head, n_embd, context, batch, steps, threads) =
        (int(0), int(1), int(2), int(3), int(4), int(5), int(6));
    let alpha: f64 = args.get(7).map(|a| a.parse().expect("ALPHA")).unwrap_or(2.5);
    let radius = args.get(8).map(|a| a.parse().expect("RADIUS")).unwrap_or(5);
    let neighborhoods = args.get(9).map(|a| a.parse().expect("NEIGHBORHOODS")).unwrap_or(5);
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
        steps: 4 * (steps + warmup),
        batch_size: batch,
        warmup_steps: 0,
        eval_every: 0,
        ..TrainConfig::default()
    };
    let spatial_config = SpatialConfig { alpha, neighborhoods, radius, positions: PositionsInit::Grid };
    let side = spatial_config.validate(n_embd).expect("spatial config");
    let layout = SpatialLayout::grid(side, radius, 2 * n_layer, 0);
    let spatial = SpatialLoss::new(spatial_config, layout, 0, tch::Device::Cpu);
    let tokens: Vec<u32> = (0..200_000u64).map(|i| ((i * 2654435761) % 1024) as u32).collect();

    let time = |topo: bool| -> f64 {
        let mut trainer = Trainer::new(&model, config.clone(), tch::Device::Cpu).expect("trainer");
        let step = |trainer: &mut Trainer| {
            let batch = trainer.next_batch(&tokens).expect("batch");
            let at = trainer.step();
            if topo {
                trainer.train_step_with(&batch, |outputs| Some(spatial.loss(outputs, at) * alpha));
            } else {
                trainer.train_step(&batch);
            }
        };
        for _ in 0..warmup {
            step(&mut trainer);
        }
        let started = Instant::now();
        for _ in 0..steps {
            step(&mut trainer);
        }
        started.elapsed().as_secs_f64() * 1000.0 / steps as f64
    };
    let (mut plain, mut topo) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        plain.push(time(false));
        topo.push(time(true));
    }
    // The spatial loss alone (forward and backward) on random outputs of the
    // same shape: the route `loss` takes, then each route.
    let outputs: Vec<tch::Tensor> = (0..2 * n_layer)
        .map(|_| {
            tch::Tensor::randn([batch as i64, context as i64, n_embd as i64], (tch::Kind::Float, tch::Device::Cpu))
                .set_requires_grad(true)
        })
        .collect();
    let alone = |route: Correlate| {
        for i in 0..warmup {
            spatial.loss_by(&outputs, i, route).backward();
        }
        let started = Instant::now();
        for i in 0..steps {
            spatial.loss_by(&outputs, i, route).backward();
        }
        started.elapsed().as_secs_f64() * 1000.0 / steps as f64
    };
    let spatial_ms = alone(Correlate::Auto);
    let per_neighborhood_ms = alone(Correlate::PerNeighborhood);
    let union_ms = alone(Correlate::Union);
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let (p, t) = (best(&plain), best(&topo));
    println!(
        "{{\"n_layer\": {n_layer}, \"n_embd\": {n_embd}, \"context\": {context}, \"batch\": {batch}, \"threads\": {threads}, \"radius\": {radius}, \"neighborhoods\": {neighborhoods}, \"plain_ms_per_step\": {p:.3}, \"topolm_ms_per_step\": {t:.3}, \"ratio\": {:.4}, \"spatial_loss_alone_ms\": {spatial_ms:.3}, \"per_neighborhood_ms\": {per_neighborhood_ms:.3}, \"union_ms\": {union_ms:.3}, \"plain_runs\": {plain:?}, \"topolm_runs\": {topo:?}}}",
        t / p
    );
}
