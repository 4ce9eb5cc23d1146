//! The runs of `topo.responses` and `topo.smoothness` in the worker (the
//! kinds' params, checks and output schemas are `voxflow::kinds::topo`).
//!
//! Both load a `train.gpt` checkpoint as a [`GptModel`] and read its
//! spatial outputs with [`GptModel::forward_with_sublayers`], the tensors
//! train.gpt's spatial loss reads; the unit cells and neighbourhood pools
//! come from the checkpoint's spatial.json ([`SPATIAL_FILE`]).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::array::{UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use tch::{Kind, Tensor};
use voxflow::artifact::MatrixArtifact;
use voxflow::kinds::topo::responses::{Positions, Sublayer, TopoPool, TopoResponsesParams};
use voxflow::kinds::topo::smoothness::TopoSmoothnessParams;
use voxflow::numeric::Matrix;
use voxflow::stage::{StageContext, StageError};

use crate::kinds::train_gpt::SPATIAL_FILE;
use crate::train::spatial::{self, SpatialLayout};
use crate::train::{data, GptModel};

/// The radius of the neighbourhoods when neither the params nor the checkpoint give one.
const DEFAULT_RADIUS: usize = 5;

/// A loaded checkpoint: the model, its grid side and its layout, if it has one.
struct Checkpoint {
    dir: PathBuf,
    stage: String,
    model: GptModel,
    side: usize,
    layout: Option<SpatialLayout>,
}

/// One chosen spatial output: block `layer`'s `sublayer`, the
/// `index`-th tensor of `forward_with_sublayers`.
#[derive(Clone, Copy, Debug)]
struct Output {
    layer: usize,
    sublayer: Sublayer,
    index: usize,
}

fn load_checkpoint(ctx: &StageContext, kind: &str) -> Result<Checkpoint, StageError> {
    let input = ctx.input("model")?;
    // `train.step1500`: the stage and the output, as the pipeline names it.
    let stage = match &input.output {
        Some(output) => format!("{}.{output}", input.stage),
        None => input.stage.clone(),
    };
    let (_, dir) = input.single_output()?;
    let model = GptModel::load_hf(&dir, crate::device::to_tch(ctx.device)).map_err(|e| {
        StageError::failed(format!("{kind}: the model of `{stage}` ({}): {e}", dir.display())).with_hint(
            "give a train.gpt checkpoint (`inputs: {model: train.step<N>}`): a directory with config.json, model.safetensors and tokenizer.json",
        )
    })?;
    let n_embd = model.config.n_embd;
    let side = (n_embd as f64).sqrt().round() as usize;
    if side * side != n_embd {
        return Err(StageError::failed(format!(
            "{kind}: the model of `{stage}` has n_embd {n_embd}, not a square number, so its units do not fill a grid"
        ))
        .with_hint("train it with a square n_embd (e.g. 64, 100, 144) and train.gpt's `spatial`"));
    }
    let path = dir.join(SPATIAL_FILE);
    let layout = if path.exists() {
        let bad = |e: String| {
            StageError::failed(format!("{kind}: {}: {e}", path.display()))
                .with_hint("the checkpoint's spatial.json is train.gpt's layout; retrain, or use `positions: grid`")
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let layout: SpatialLayout = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let outputs = 2 * model.config.n_layer;
        if layout.side != side
            || layout.layers.len() != outputs
            || layout.layers.iter().any(|l| l.cell.len() != n_embd || l.cell.iter().any(|&c| c as usize >= n_embd))
        {
            return Err(bad(format!(
                "the layout (side {}, {} spatial outputs) does not fit the model ({side} x {side} grid, {outputs} spatial outputs)",
                layout.side,
                layout.layers.len()
            )));
        }
        Some(layout)
    } else {
        None
    };
    Ok(Checkpoint { dir, stage, model, side, layout })
}

/// The chosen spatial outputs, layers ascending, attn before mlp.
fn chosen(
    layers: &Option<Vec<usize>>,
    sublayers: &[Sublayer],
    ck: &Checkpoint,
    kind: &str,
) -> Result<Vec<Output>, StageError> {
    let n_layer = ck.model.config.n_layer;
    let mut layers = layers.clone().unwrap_or_else(|| (0..n_layer).collect());
    layers.sort_unstable();
    if let Some(&beyond) = layers.iter().find(|&&l| l >= n_layer) {
        return Err(StageError::failed(format!(
            "{kind}: param `layers` has block {beyond}, but the model of `{}` has {n_layer} block{} (0 to {})",
            ck.stage,
            if n_layer == 1 { "" } else { "s" },
            n_layer - 1
        ))
        .with_hint("list blocks from 0 to n_layer - 1, or leave `layers` out for all"));
    }
    let mut sublayers = sublayers.to_vec();
    sublayers.sort_unstable();
    Ok(layers
        .iter()
        .flat_map(|&layer| sublayers.iter().map(move |&s| Output { layer, sublayer: s, index: 2 * layer + s.index() }))
        .collect())
}

/// Unit u's cell (row * side + column) in spatial output `output`.
fn cells(ck: &Checkpoint, positions: Positions, output: Output, kind: &str) -> Result<Vec<u32>, StageError> {
    match positions {
        Positions::Grid => Ok((0..(ck.side * ck.side) as u32).collect()),
        Positions::Preoptimized => match &ck.layout {
            Some(layout) => Ok(layout.layers[output.index].cell.clone()),
            None => Err(StageError::failed(format!(
                "{kind}: `positions: preoptimized`, but the checkpoint of `{}` ({}) has no {SPATIAL_FILE}",
                ck.stage,
                ck.dir.display()
            ))
            .with_hint(
                "train.gpt writes it when trained with `spatial` (version 2 and later); or use `positions: grid` (unit u on cell u)",
            )),
        },
    }
}

fn failed_table(kind: &str, stage: &str, what: String, hint: &str) -> StageError {
    StageError::failed(format!("{kind}: the table of `{stage}`: {what}")).with_hint(hint.to_string())
}

/// The stimulus table: item, text, label (text and label as utf8).
pub(crate) struct Stimuli {
    pub items: Vec<u32>,
    pub texts: Vec<String>,
    pub labels: Vec<String>,
}

fn read_stimuli(ctx: &StageContext, kind: &str) -> Result<Stimuli, StageError> {
    read_stimulus_table(ctx, "stimuli", kind)
}

/// The stimulus table of input `role` (item, text, label).
pub(crate) fn read_stimulus_table(ctx: &StageContext, role: &str, kind: &str) -> Result<Stimuli, StageError> {
    let stage = ctx.input(role)?.stage.clone();
    let table = ctx.input_table(role)?;
    let hint = "give a table with columns item (uint32), text and label (utf8), one row per item: stimuli.langloc or stimuli.contrast";
    let column = |name: &str, to: &DataType| -> Result<ArrayRef, StageError> {
        let column = table
            .column_by_name(name)
            .ok_or_else(|| failed_table(kind, &stage, format!("no column `{name}`"), hint))?;
        let cast = arrow::compute::cast(column, to)
            .map_err(|e| failed_table(kind, &stage, format!("column `{name}` ({}): {e}", column.data_type()), hint))?;
        if cast.null_count() > 0 {
            return Err(failed_table(kind, &stage, format!("column `{name}` has missing values"), hint));
        }
        Ok(cast)
    };
    let items = column("item", &DataType::UInt32)?.as_primitive::<UInt32Type>().values().to_vec();
    let strings = |a: ArrayRef| -> Vec<String> {
        a.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect()
    };
    let texts = strings(column("text", &DataType::Utf8)?);
    let labels = strings(column("label", &DataType::Utf8)?);
    if items.is_empty() {
        return Err(failed_table(kind, &stage, "no rows".into(), hint));
    }
    Ok(Stimuli { items, texts, labels })
}

pub fn topo_responses(p: &TopoResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "topo.responses";
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let ck = load_checkpoint(ctx, KIND)?;
    let outputs = chosen(&p.layers, &p.sublayers, &ck, KIND)?;
    let cells: Vec<Vec<u32>> = outputs.iter().map(|&o| cells(&ck, p.positions, o, KIND)).collect::<Result<_, _>>()?;
    let stimuli = read_stimuli(ctx, KIND)?;

    let tokenizer_path = ck.dir.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        StageError::failed(format!("{KIND}: tokenizer {}: {e}", tokenizer_path.display()))
            .with_hint("a train.gpt checkpoint carries the corpus's tokenizer.json; retrain or copy it in")
    })?;
    let context_length = ck.model.config.context_length;
    let mut encoded: Vec<Vec<i64>> = Vec::with_capacity(stimuli.texts.len());
    for (row, text) in stimuli.texts.iter().enumerate() {
        // As corpus.text encodes the training documents: no special tokens.
        let encoding = tokenizer.encode(text.as_str(), false).map_err(|e| {
            StageError::failed(format!(
                "{KIND}: item {} (row {row}): cannot tokenise {text:?}: {e}",
                stimuli.items[row]
            ))
        })?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| id as i64).collect();
        if ids.is_empty() {
            return Err(StageError::failed(format!(
                "{KIND}: item {} (row {row}) has no tokens (text {text:?})",
                stimuli.items[row]
            ))
            .with_hint("drop empty items from the stimulus table"));
        }
        if ids.len() > context_length {
            return Err(StageError::failed(format!(
                "{KIND}: item {} (row {row}) has {} tokens, more than the model's context length ({context_length})",
                stimuli.items[row],
                ids.len()
            ))
            .with_hint("shorten the item, or train the model with a longer context_length"));
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= ck.model.config.vocab_size) {
            return Err(StageError::failed(format!(
                "{KIND}: item {} tokenises to id {id}, beyond the model's vocabulary ({})",
                stimuli.items[row], ck.model.config.vocab_size
            ))
            .with_hint("the checkpoint's tokenizer.json is not the one the model was trained with"));
        }
        encoded.push(ids);
    }

    let n_embd = ck.model.config.n_embd;
    let n_items = encoded.len();
    let mut matrix = Matrix::zeros(n_items, outputs.len() * n_embd);
    let order: Vec<usize> = (0..n_items).collect();
    let _guard = tch::no_grad_guard();
    for (done, chunk) in order.chunks(p.batch_size).enumerate() {
        // Right padding: the model is causal, so a token's states do not see it.
        let longest = chunk.iter().map(|&i| encoded[i].len()).max().expect("a chunk has items");
        let mut flat = Vec::with_capacity(chunk.len() * longest);
        for &i in chunk {
            flat.extend_from_slice(&encoded[i]);
            flat.extend(std::iter::repeat_n(0i64, longest - encoded[i].len()));
        }
        let ids = Tensor::from_slice(&flat).view([chunk.len() as i64, longest as i64]).to_device(ck.model.device);
        let (_, sublayers) = ck.model.forward_with_sublayers(&ids, false);
        for (k, output) in outputs.iter().enumerate() {
            let acts = sublayers[output.index].to_device(tch::Device::Cpu).to_kind(Kind::Double);
            for (b, &i) in chunk.iter().enumerate() {
                let len = encoded[i].len() as i64;
                let item = acts.get(b as i64);
                let response = match p.pool {
                    TopoPool::Mean => item.narrow(0, 0, len).mean_dim(&[0i64][..], false, Kind::Double),
                    TopoPool::Last => item.get(len - 1),
                };
                let values =
                    Vec::<f64>::try_from(&response).map_err(|e: tch::TchError| StageError::failed(e.to_string()))?;
                for (slot, v) in matrix.row_mut(i)[k * n_embd..(k + 1) * n_embd].iter_mut().zip(values) {
                    *slot = v as f32;
                }
            }
        }
        ctx.progress(((done + 1) * p.batch_size).min(n_items) as u64, n_items as u64);
        ctx.check_cancelled()?;
    }

    let mut artifact = MatrixArtifact::new(matrix);
    artifact.metadata.insert("model".into(), ck.stage.clone());
    artifact.metadata.insert("pool".into(), format!("{:?}", p.pool).to_lowercase());
    artifact.metadata.insert("positions".into(), format!("{:?}", p.positions).to_lowercase());
    artifact.metadata.insert("n_embd".into(), n_embd.to_string());
    ctx.write_matrix("responses", &artifact)?;

    let mut units = Vec::with_capacity(outputs.len() * n_embd);
    for (k, output) in outputs.iter().enumerate() {
        for u in 0..n_embd {
            units.push(UnitCell {
                layer: output.layer as i32,
                sublayer: output.sublayer.name(),
                unit: u as u32,
                cell: cells[k][u],
            });
        }
    }
    write_unit_tables(ctx, &units, ck.side as u32, stimuli)
}

/// One column of a responses matrix: its layer, sublayer and grid cell
/// (row-major on a side x side grid).
pub(crate) struct UnitCell {
    pub layer: i32,
    pub sublayer: &'static str,
    pub unit: u32,
    pub cell: u32,
}

/// The `units` table (column, layer, sublayer, unit, row, col; one row per
/// matrix column, in order) and the `items` table (item, text, label) that
/// topo.responses and topoformer.responses write beside their matrix.
pub(crate) fn write_unit_tables(
    ctx: &mut StageContext,
    units: &[UnitCell],
    side: u32,
    stimuli: Stimuli,
) -> Result<(), StageError> {
    let table = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("column", DataType::UInt32, false),
            Field::new("layer", DataType::Int32, false),
            Field::new("sublayer", DataType::Utf8, false),
            Field::new("unit", DataType::UInt32, false),
            Field::new("row", DataType::UInt32, false),
            Field::new("col", DataType::UInt32, false),
        ])),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..units.len() as u32)),
            Arc::new(Int32Array::from_iter_values(units.iter().map(|u| u.layer))),
            Arc::new(StringArray::from_iter_values(units.iter().map(|u| u.sublayer))),
            Arc::new(UInt32Array::from_iter_values(units.iter().map(|u| u.unit))),
            Arc::new(UInt32Array::from_iter_values(units.iter().map(|u| u.cell / side))),
            Arc::new(UInt32Array::from_iter_values(units.iter().map(|u| u.cell % side))),
        ],
    )
    .expect("units schema");
    ctx.write_table("units", &table)?;
    let items = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("item", DataType::UInt32, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("label", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(UInt32Array::from(stimuli.items)),
            Arc::new(StringArray::from(stimuli.texts)),
            Arc::new(StringArray::from(stimuli.labels)),
        ],
    )
    .expect("items schema");
    ctx.write_table("items", &items)
}

/// Token ids from the `tokens` input (column `id`, uint32).
fn read_tokens(ctx: &StageContext, kind: &str) -> Result<Vec<u32>, StageError> {
    let stage = ctx.input("tokens")?.stage.clone();
    let table = ctx.input_table("tokens")?;
    let hint = "give the held-out tokens of a corpus.text stage: `inputs: {tokens: <corpus.text stage>.valid}`";
    let column = table.column_by_name("id").ok_or_else(|| failed_table(kind, &stage, "no column `id`".into(), hint))?;
    match column.data_type() {
        DataType::UInt32 => Ok(column.as_primitive::<UInt32Type>().values().to_vec()),
        other => Err(failed_table(kind, &stage, format!("column `id` is {other}, not uint32"), hint)),
    }
}

/// Chebyshev distance of two cells of a `side`-wide grid.
fn chebyshev(a: u32, b: u32, side: u32) -> usize {
    let (ra, ca, rb, cb) = (a / side, a % side, b / side, b % side);
    ra.abs_diff(rb).max(ca.abs_diff(cb)) as usize
}

pub fn topo_smoothness(p: &TopoSmoothnessParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "topo.smoothness";
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let ck = load_checkpoint(ctx, KIND)?;
    let outputs = chosen(&p.layers, &p.sublayers, &ck, KIND)?;
    let cells: Vec<Vec<u32>> = outputs.iter().map(|&o| cells(&ck, p.positions, o, KIND)).collect::<Result<_, _>>()?;
    let tokens = read_tokens(ctx, KIND)?;
    let tokens_stage = ctx.input("tokens")?.stage.clone();
    let config = &ck.model.config;
    let context_length = p.context_length.unwrap_or(config.context_length);
    if context_length > config.context_length {
        return Err(StageError::failed(format!(
            "{KIND}: context_length {context_length} is longer than the model's ({})",
            config.context_length
        ))
        .with_hint("lower `context_length`, or leave it out for the model's"));
    }
    if let Some(&id) = tokens.iter().find(|&&id| id as usize >= config.vocab_size) {
        return Err(StageError::failed(format!(
            "{KIND}: the tokens of `{tokens_stage}` hold id {id}, beyond the model's vocabulary ({})",
            config.vocab_size
        ))
        .with_hint("give the held-out tokens of the corpus the model was trained on"));
    }
    let windows = data::validation_windows(&tokens, context_length, p.batches * p.batch_size);
    let n_batches = windows.len() / p.batch_size;
    if n_batches == 0 {
        return Err(StageError::failed(format!(
            "{KIND}: the {} held-out tokens of `{tokens_stage}` make {} windows of {context_length} + 1 tokens, fewer than one batch ({})",
            tokens.len(),
            windows.len(),
            p.batch_size
        ))
        .with_hint("lower `batch_size` or `context_length`, or hold out more text (corpus.text's valid_fraction)"));
    }
    if n_batches < p.batches {
        ctx.warn(format!(
            "the held-out tokens of `{tokens_stage}` make {n_batches} full batches of {}, not {}",
            p.batch_size, p.batches
        ));
    }

    // The neighbourhood pools: the checkpoint's, or drawn from the seed.
    let layout_radius = ck.layout.as_ref().map(|l| l.radius);
    let radius = p.radius.or(layout_radius).unwrap_or(DEFAULT_RADIUS);
    if 2 * radius > ck.side + 1 {
        return Err(StageError::failed(format!(
            "{KIND}: radius {radius} does not fit the model's {0} x {0} grid (a neighbourhood is 2 radius - 1 units wide)",
            ck.side
        ))
        .with_hint(format!("use a radius from 2 to {}", (ck.side + 1) / 2)));
    }
    let (pools, pool_source) = match &ck.layout {
        Some(layout) if layout.radius == radius => (layout.clone(), "checkpoint"),
        _ => (SpatialLayout::grid(ck.side, radius, 2 * config.n_layer, p.seed), "seeded"),
    };
    let n_embd = config.n_embd;
    let tch_device = ck.model.device;
    let k = (2 * radius - 1).pow(2) as i64;
    // Per chosen output: members [POOL, k] and D over their pairs [POOL, P].
    let mut members = Vec::new();
    let mut similarity = Vec::new();
    for (o, output) in outputs.iter().enumerate() {
        let pool = &pools.layers[output.index].neighborhoods;
        let flat: Vec<i64> = pool.iter().flatten().map(|&u| u as i64).collect();
        members.push(Tensor::from_slice(&flat).to_device(tch_device));
        let mut pairs = Vec::new();
        for n in pool {
            let coords: Vec<(f64, f64)> = n
                .iter()
                .map(|&u| {
                    let cell = cells[o][u as usize] as usize;
                    ((cell / ck.side) as f64, (cell % ck.side) as f64)
                })
                .collect();
            pairs.extend(spatial::pair_similarity(&coords));
        }
        similarity.push(Tensor::from_slice(&pairs).view([pool.len() as i64, -1]).to_device(tch_device));
    }
    let n_pool = pools.layers[0].neighborhoods.len() as i64;

    let opts = (Kind::Double, tch_device);
    let mut sums: Vec<Tensor> = outputs.iter().map(|_| Tensor::zeros([n_embd as i64], opts)).collect();
    let mut cross: Vec<Tensor> = outputs.iter().map(|_| Tensor::zeros([n_embd as i64, n_embd as i64], opts)).collect();
    let mut loss_sums = vec![0.0f64; outputs.len()];
    let mut val_loss = 0.0;
    let _guard = tch::no_grad_guard();
    for (b, chunk) in windows.chunks(p.batch_size).take(n_batches).enumerate() {
        let batch = data::Batch::from_windows(chunk, tch_device);
        let (logits, sublayers) = ck.model.forward_with_sublayers(&batch.inputs, false);
        val_loss += GptModel::loss(&logits, &batch.targets).to_kind(Kind::Double).double_value(&[]);
        for (o, output) in outputs.iter().enumerate() {
            let acts = sublayers[output.index].reshape([-1, n_embd as i64]).to_kind(Kind::Double);
            let rows = acts.size()[0];
            let grouped = acts.index_select(1, &members[o]).view([rows, n_pool, k]).permute([1, 0, 2]);
            let losses = spatial::neighborhood_losses(&grouped, &similarity[o]);
            loss_sums[o] += losses.mean(Kind::Double).double_value(&[]);
            sums[o] += acts.sum_dim_intlist(&[0i64][..], false, Kind::Double);
            cross[o] += acts.transpose(0, 1).mm(&acts);
        }
        ctx.progress((b + 1) as u64, n_batches as u64);
        ctx.check_cancelled()?;
    }
    let n_tokens = n_batches * p.batch_size * context_length;
    let val_loss = val_loss / n_batches as f64;

    // Correlation by Chebyshev distance, over all held-out tokens.
    let side = ck.side as u32;
    let mut corr_rows: Vec<(usize, usize, f64, u64)> = Vec::new(); // (output, distance, mean r, pairs)
    for (o, _) in outputs.iter().enumerate() {
        let n = n_tokens as f64;
        let mean = &sums[o] / n;
        let cov = &cross[o] / n - mean.unsqueeze(1).mm(&mean.unsqueeze(0));
        let sd = cov.diagonal(0, 0, 1).sqrt();
        let r = (&cov / sd.unsqueeze(1) / sd.unsqueeze(0)).to_device(tch::Device::Cpu);
        let r = Vec::<f64>::try_from(r.view([-1])).map_err(|e: tch::TchError| StageError::failed(e.to_string()))?;
        let mut total = vec![0.0f64; p.distances + 1];
        let mut count = vec![0u64; p.distances + 1];
        for i in 0..n_embd {
            for j in i + 1..n_embd {
                let d = chebyshev(cells[o][i], cells[o][j], side);
                if d <= p.distances {
                    total[d] += r[i * n_embd + j];
                    count[d] += 1;
                }
            }
        }
        for d in 1..=p.distances {
            if count[d] > 0 {
                corr_rows.push((o, d, total[d] / count[d] as f64, count[d]));
            }
        }
    }

    let layer_of = |o: usize| outputs[o].layer as i32;
    let sublayer_of = |o: usize| outputs[o].sublayer.name();
    let spatial_losses: Vec<f64> = loss_sums.iter().map(|s| s / n_batches as f64).collect();
    let smoothness = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("layer", DataType::Int32, false),
            Field::new("sublayer", DataType::Utf8, false),
            Field::new("spatial_loss", DataType::Float64, false),
            Field::new("neighborhoods", DataType::UInt32, false),
            Field::new("pool", DataType::Utf8, false),
            Field::new("batches", DataType::UInt32, false),
            Field::new("tokens", DataType::UInt64, false),
        ])),
        vec![
            Arc::new(Int32Array::from_iter_values((0..outputs.len()).map(layer_of))),
            Arc::new(StringArray::from_iter_values((0..outputs.len()).map(sublayer_of))),
            Arc::new(Float64Array::from(spatial_losses.clone())),
            Arc::new(UInt32Array::from(vec![n_pool as u32; outputs.len()])),
            Arc::new(StringArray::from(vec![pool_source; outputs.len()])),
            Arc::new(UInt32Array::from(vec![n_batches as u32; outputs.len()])),
            Arc::new(UInt64Array::from(vec![n_tokens as u64; outputs.len()])),
        ],
    )
    .expect("smoothness schema");
    ctx.write_table("smoothness", &smoothness)?;
    let correlation = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("layer", DataType::Int32, false),
            Field::new("sublayer", DataType::Utf8, false),
            Field::new("distance", DataType::UInt32, false),
            Field::new("mean_correlation", DataType::Float64, false),
            Field::new("n_pairs", DataType::UInt64, false),
        ])),
        vec![
            Arc::new(Int32Array::from_iter_values(corr_rows.iter().map(|r| layer_of(r.0)))),
            Arc::new(StringArray::from_iter_values(corr_rows.iter().map(|r| sublayer_of(r.0)))),
            Arc::new(UInt32Array::from_iter_values(corr_rows.iter().map(|r| r.1 as u32))),
            Arc::new(Float64Array::from_iter_values(corr_rows.iter().map(|r| r.2))),
            Arc::new(UInt64Array::from_iter_values(corr_rows.iter().map(|r| r.3))),
        ],
    )
    .expect("correlation schema");
    ctx.write_table("correlation", &correlation)?;

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let neighbours: Vec<f64> = corr_rows.iter().filter(|r| r.1 == 1).map(|r| r.2).collect();
    let summary = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("mean_spatial_loss", DataType::Float64, false),
            Field::new("mean_correlation_d1", DataType::Float64, false),
            Field::new("val_loss", DataType::Float64, false),
            Field::new("tokens", DataType::Int64, false),
        ])),
        vec![
            Arc::new(Float64Array::from(vec![mean(&spatial_losses)])),
            Arc::new(Float64Array::from(vec![mean(&neighbours)])),
            Arc::new(Float64Array::from(vec![val_loss])),
            Arc::new(Int64Array::from(vec![n_tokens as i64])),
        ],
    )
    .expect("summary schema");
    ctx.write_table("summary", &summary)?;

    // Correlation against distance, one curve per spatial output (for `voxflow report`).
    let series: Vec<voxflow::plot::Series> = outputs
        .iter()
        .enumerate()
        .map(|(o, output)| voxflow::plot::Series {
            name: format!("layer {} {}", output.layer, output.sublayer.name()),
            points: corr_rows.iter().filter(|r| r.0 == o).map(|r| (r.1 as f64, r.2)).collect(),
        })
        .collect();
    ctx.add_chart(
        "correlation",
        &voxflow::plot::lines(
            "topo.smoothness: unit correlation by grid distance (held-out text)",
            "Chebyshev distance",
            "mean Pearson r",
            series,
        ),
    )?;
    tracing::info!(
        stage = ctx.name,
        "{n_batches} batches, {n_tokens} tokens, {} spatial outputs, {pool_source} neighbourhood pools of radius {radius}",
        outputs.len()
    );
    Ok(())
}
