//! The runs of `localize.units`, `benchmark.generate` and
//! `benchmark.sentences` in the worker (params, checks, the Welch t, the
//! benchmark table and the score are `voxflow::kinds::alignment`; this is
//! the part that runs the model).
//!
//! [`sentence_states`] is the one definition of a sentence's response: the
//! sentence tokenised alone without special tokens (BERT-family models get
//! `[CLS]` ... `[SEP]`, left out of the pooling), run alone (batched with
//! right padding and an attention mask, which changes nothing but float
//! rounding), and each chosen hidden state pooled over its tokens or taken
//! at its last token.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use tch::{Kind, Tensor};
use voxflow::kinds::alignment::benchmark::{self, GenerateParams, SentencesParams};
use voxflow::kinds::alignment::localize::{self, LocalizeParams};
use voxflow::kinds::alignment::SentencePool;
use voxflow::numeric::Matrix;
use voxflow::stage::{StageContext, StageError};

use crate::lm::model::LanguageModel;

fn load_model(dir: &std::path::Path, what: &str, ctx: &StageContext, kind: &str) -> Result<LanguageModel, StageError> {
    ctx.phase("loading model");
    LanguageModel::load(dir, crate::device::to_tch(ctx.device)).map_err(|e| {
        StageError::failed(format!("{kind}: the model of {what} ({}): {e}", dir.display())).with_hint(
            "give a directory with config.json, model.safetensors and tokenizer.json (a train.gpt checkpoint, or a Hugging Face BERT, GPT-2, GPT-NeoX or Llama model)",
        )
    })
}

/// The model of the param `model` or of the input `model`.
fn model_of(param: &Option<String>, ctx: &StageContext, kind: &str) -> Result<LanguageModel, StageError> {
    match param {
        Some(model) => load_model(&ctx.resolve(model), "param `model`", ctx, kind),
        None => {
            let input = ctx.input("model")?;
            let what = format!("`{}`", input.stage);
            let (_, dir) = input.single_output()?;
            load_model(&dir, &what, ctx, kind)
        }
    }
}

/// The hidden states 1..=n (every block output) unless `layers` lists them;
/// checked against the model.
fn chosen_layers(layers: &Option<Vec<usize>>, model: &LanguageModel, kind: &str) -> Result<Vec<usize>, StageError> {
    let n = model.config.layers;
    let layers = layers.clone().unwrap_or_else(|| (1..=n).collect());
    if let Some(&beyond) = layers.iter().find(|&&l| l > n) {
        return Err(StageError::failed(format!(
            "{kind}: param `layers` has hidden state {beyond}, but the model has {n} blocks (hidden states 0 to {n})"
        ))
        .with_hint("list hidden states from 0 (embeddings) to the number of blocks, or leave `layers` out"));
    }
    Ok(layers)
}

/// Each text's pooled hidden states: one sentences x hidden matrix per layer.
pub fn sentence_states(
    model: &LanguageModel,
    texts: &[String],
    layers: &[usize],
    pool: SentencePool,
    batch_size: usize,
    ctx: &StageContext,
    kind: &str,
) -> Result<Vec<Matrix>, StageError> {
    let (before, after) = model.specials();
    let mut encoded: Vec<Vec<i64>> = Vec::with_capacity(texts.len());
    for (row, text) in texts.iter().enumerate() {
        let encoding = model
            .tokenizer
            .encode(text.as_str(), false)
            .map_err(|e| StageError::failed(format!("{kind}: sentence {row} ({text:?}): cannot tokenise: {e}")))?;
        let mut ids: Vec<i64> = encoding.get_ids().iter().map(|&id| id as i64).collect();
        if ids.is_empty() {
            return Err(StageError::failed(format!("{kind}: sentence {row} ({text:?}) has no tokens"))
                .with_hint("drop empty sentences from the table"));
        }
        if ids.len() + before + after > model.config.max_positions {
            return Err(StageError::failed(format!(
                "{kind}: sentence {row} has {} tokens, more than the model's {} positions",
                ids.len(),
                model.config.max_positions - before - after
            ))
            .with_hint("shorten the sentence, or use a model with a longer context"));
        }
        if let Some((cls, sep)) = model.cls_sep {
            ids.insert(0, cls);
            ids.push(sep);
        }
        encoded.push(ids);
    }
    let hidden = model.config.hidden;
    let n = texts.len();
    let mut out: Vec<Matrix> = layers.iter().map(|_| Matrix::zeros(n, hidden)).collect();
    let _guard = tch::no_grad_guard();
    let order: Vec<usize> = (0..n).collect();
    ctx.progress_unit("sentences");
    for chunk in order.chunks(batch_size) {
        let longest = chunk.iter().map(|&i| encoded[i].len()).max().expect("a chunk has items");
        let (mut flat, mut mask) = (Vec::new(), Vec::new());
        for &i in chunk {
            let pad = longest - encoded[i].len();
            flat.extend_from_slice(&encoded[i]);
            flat.extend(std::iter::repeat_n(0i64, pad));
            mask.extend(std::iter::repeat_n(1i64, encoded[i].len()));
            mask.extend(std::iter::repeat_n(0i64, pad));
        }
        let shape = [chunk.len() as i64, longest as i64];
        let ids = Tensor::from_slice(&flat).view(shape).to_device(model.device);
        let mask = Tensor::from_slice(&mask).view(shape).to_device(model.device);
        let states = model.hidden_states(&ids, &mask, layers);
        for (k, state) in states.iter().enumerate() {
            let state = state.to_device(tch::Device::Cpu).to_kind(Kind::Double);
            for (b, &i) in chunk.iter().enumerate() {
                let tokens = (encoded[i].len() - before - after) as i64;
                let item = state.get(b as i64);
                let pooled = match pool {
                    SentencePool::Mean => {
                        item.narrow(0, before as i64, tokens).mean_dim(&[0i64][..], false, Kind::Double)
                    }
                    SentencePool::Last => item.get(before as i64 + tokens - 1),
                };
                let values =
                    Vec::<f64>::try_from(&pooled).map_err(|e: tch::TchError| StageError::failed(e.to_string()))?;
                for (slot, v) in out[k].row_mut(i).iter_mut().zip(values) {
                    *slot = v as f32;
                }
            }
        }
        ctx.progress((chunk[chunk.len() - 1] + 1) as u64, n as u64);
        ctx.check_cancelled()?;
    }
    Ok(out)
}

/// The stimulus table's `text` and `label` columns.
fn read_stimuli(ctx: &StageContext, kind: &str) -> Result<(Vec<u32>, Vec<String>, Vec<String>), StageError> {
    let stage = ctx.input("stimuli")?.stage.clone();
    let table = ctx.input_table("stimuli")?;
    let hint = "give a table with columns item, text and label, one row per item: stimuli.langloc or stimuli.contrast";
    let fail = |what: String| StageError::failed(format!("{kind}: the stimuli of `{stage}`: {what}")).with_hint(hint);
    let column = |name: &str, to: &DataType| {
        let column = table.column_by_name(name).ok_or_else(|| fail(format!("no column `{name}`")))?;
        let cast = arrow::compute::cast(column, to).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        if cast.null_count() > 0 {
            return Err(fail(format!("column `{name}` has missing values")));
        }
        Ok(cast)
    };
    let items = column("item", &DataType::UInt32)?.as_primitive::<arrow::datatypes::UInt32Type>().values().to_vec();
    let strings = |a: arrow::array::ArrayRef| -> Vec<String> {
        a.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect()
    };
    let texts = strings(column("text", &DataType::Utf8)?);
    let labels = strings(column("label", &DataType::Utf8)?);
    if items.is_empty() {
        return Err(fail("no rows".into()));
    }
    Ok((items, texts, labels))
}

pub fn localize_units(p: &LocalizeParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "localize.units";
    ctx.device = p.device.resolve(ctx.device);
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let model = model_of(&p.model, ctx, KIND)?;
    let layers = chosen_layers(&p.layers, &model, KIND)?;
    let (_, texts, labels) = read_stimuli(ctx, KIND)?;
    let kept: Vec<usize> = (0..texts.len()).filter(|&i| labels[i] == p.positive || labels[i] == p.negative).collect();
    let n_positive = kept.iter().filter(|&&i| labels[i] == p.positive).count();
    if n_positive < 2 || kept.len() - n_positive < 2 {
        return Err(StageError::failed(format!(
            "{KIND}: the stimuli have {n_positive} items labelled `{}` and {} labelled `{}`; Welch's t needs at least 2 of each",
            p.positive,
            kept.len() - n_positive,
            p.negative
        ))
        .with_hint("set `positive` and `negative` to labels of the stimulus table (stimuli.langloc: S and N)"));
    }
    let kept_texts: Vec<String> = kept.iter().map(|&i| texts[i].clone()).collect();
    ctx.phase("forward passes");
    let states = sentence_states(&model, &kept_texts, &layers, p.pool, p.batch_size, ctx, KIND)?;
    let hidden = model.config.hidden;
    let refs: Vec<&Matrix> = states.iter().collect();
    let responses = Matrix::hstack(&refs);
    let layer_of: Vec<usize> = layers.iter().flat_map(|&l| std::iter::repeat_n(l, hidden)).collect();
    let unit_of: Vec<usize> = layers.iter().flat_map(|_| 0..hidden).collect();
    let is_positive: Vec<bool> = kept.iter().map(|&i| labels[i] == p.positive).collect();
    if p.k > responses.cols {
        ctx.warn(format!(
            "k = {} is more than the {} units of the chosen layers; all are selected",
            p.k, responses.cols
        ));
    }
    let localized = localize::localize(&responses, &is_positive, layer_of, unit_of, p.k);
    localize::write_outputs(ctx, &localized, p.pool)
}

pub fn benchmark_generate(p: &GenerateParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "benchmark.generate";
    ctx.device = p.device.resolve(ctx.device);
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let dir = ctx.resolve(&p.model);
    let model = load_model(&dir, "param `model`", ctx, KIND)?;
    let layer = p.layer.unwrap_or(model.config.layers);
    let layers = chosen_layers(&Some(vec![layer]), &model, KIND)?;
    let (items, texts, labels) = read_stimuli(ctx, KIND)?;
    let kept: Vec<usize> = (0..texts.len()).filter(|&i| p.label.as_ref().is_none_or(|l| &labels[i] == l)).collect();
    if kept.len() < 2 * p.passage_size {
        return Err(StageError::failed(format!(
            "{KIND}: {} stimuli kept (label {:?}), fewer than two passages of {}",
            kept.len(),
            p.label,
            p.passage_size
        ))
        .with_hint("check `label` against the stimulus table's labels, or lower `passage_size`"));
    }
    let kept_items: Vec<u32> = kept.iter().map(|&i| items[i]).collect();
    let kept_texts: Vec<String> = kept.iter().map(|&i| texts[i].clone()).collect();
    ctx.phase("forward passes");
    let states = sentence_states(&model, &kept_texts, &layers, p.pool, p.batch_size, ctx, KIND)?;
    let table = benchmark::generate(&states[0], &kept_items, &kept_texts, p);
    ctx.write_table("benchmark", &table)
}

pub fn benchmark_sentences(p: &SentencesParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "benchmark.sentences";
    ctx.device = p.device.resolve(ctx.device);
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let bench_stage = ctx.input("benchmark")?.stage.clone();
    let bench = benchmark::read_benchmark(
        &ctx.input_table("benchmark")?,
        &format!("{KIND}: the benchmark of `{bench_stage}`"),
    )?;
    let model = model_of(&p.model, ctx, KIND)?;
    let hidden = model.config.hidden;
    // The columns: (layer, unit) pairs, from localize.units or every unit of `layers`.
    let (columns, pool): (Vec<(usize, usize)>, SentencePool) = if ctx.has_input("units") {
        let selected = localize::read_selected(ctx, "units", KIND)?;
        (selected.layer.iter().copied().zip(selected.unit.iter().copied()).collect(), selected.pool)
    } else {
        let layers = chosen_layers(&Some(p.layers.clone().unwrap_or_else(|| vec![model.config.layers])), &model, KIND)?;
        (layers.iter().flat_map(|&l| (0..hidden).map(move |u| (l, u))).collect(), p.pool)
    };
    let mut layers: Vec<usize> = columns.iter().map(|c| c.0).collect();
    layers.sort_unstable();
    layers.dedup();
    let layers = chosen_layers(&Some(layers), &model, KIND)?;
    if let Some(&(layer, unit)) = columns.iter().find(|c| c.1 >= hidden) {
        return Err(StageError::failed(format!(
            "{KIND}: the units input names unit {unit} of layer {layer}, but the model's hidden states have {hidden} units"
        ))
        .with_hint("localize the units on the same model the benchmark scores"));
    }
    ctx.phase("forward passes");
    let states = sentence_states(&model, &bench.texts, &layers, pool, p.batch_size, ctx, KIND)?;
    let mut features = Matrix::zeros(bench.sentences.len(), columns.len());
    for (c, &(layer, unit)) in columns.iter().enumerate() {
        let k = layers.iter().position(|&l| l == layer).expect("layer chosen");
        for i in 0..features.rows {
            features.set(i, c, states[k].get(i, unit));
        }
    }
    ctx.phase("ridge");
    let score = benchmark::score(&features, &bench, p)?;
    benchmark::write_score(ctx, &bench, &score, columns.len())
}
