//! The runs of `competence.minimal_pairs` and `competence.facts` in the
//! worker: load the causal model (the param `model` or the input `model`,
//! a train.gpt checkpoint or a Hugging Face directory) with its head, and
//! hand the scoring in `voxflow::kinds::competence` a
//! [`TorchScorer`](crate::lm::score::TorchScorer).

use voxflow::kinds::competence::{facts, minimal_pairs, CompetenceParams};
use voxflow::stage::{StageContext, StageError};

use crate::lm::model::LanguageModel;
use crate::lm::score::TorchScorer;

fn load(kind: &str, p: &CompetenceParams, ctx: &mut StageContext) -> Result<LanguageModel, StageError> {
    let device = p.device.resolve(ctx.device);
    ctx.device = device;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let (dir, named) = match &p.model {
        Some(model) => (ctx.resolve(model), format!("param `model` ({model})")),
        None => {
            let input = ctx.input("model")?;
            let named = match &input.output {
                Some(output) => format!("input `model` ({}.{output})", input.stage),
                None => format!("input `model` ({})", input.stage),
            };
            (input.single_output()?.1, named)
        }
    };
    ctx.phase("loading model");
    LanguageModel::load_causal(&dir, crate::device::to_tch(device)).map_err(|e| {
        StageError::failed(format!("{kind}: {named}: {e}")).with_hint(
            "give a causal model: a train.gpt checkpoint (`inputs: {model: train.step<N>}`) or a directory with config.json \
             (gpt2, gpt_neox or llama), model.safetensors and tokenizer.json",
        )
    })
}

fn scorer<'a>(
    kind: &str,
    p: &CompetenceParams,
    model: &'a LanguageModel,
    ctx: &StageContext,
) -> Result<TorchScorer<'a>, StageError> {
    let default = if ctx.device == voxflow::device::Device::Cpu { 1024 } else { 8192 };
    TorchScorer::new(model, p.prefix, p.batch_tokens.unwrap_or(default)).map_err(|e| {
        StageError::failed(format!("{kind}: {e}"))
            .with_hint("set `prefix: none`, or add a bos_token to tokenizer_config.json")
    })
}

pub fn competence_minimal_pairs(p: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "competence.minimal_pairs";
    let model = load(KIND, p, ctx)?;
    let scorer = scorer(KIND, p, &model, ctx)?;
    minimal_pairs::score(&scorer, ctx)
}

pub fn competence_facts(p: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError> {
    const KIND: &str = "competence.facts";
    let model = load(KIND, p, ctx)?;
    let scorer = scorer(KIND, p, &model, ctx)?;
    facts::score(&scorer, ctx)
}
