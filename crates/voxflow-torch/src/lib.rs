//! voxflow's libtorch side: everything that calls tch, run by the
//! `voxflow-worker` binary (src/main.rs) that the scheduler starts for each
//! stage whose kind needs it (see `voxflow::worker`).
//!
//! - [`lm`]: transformer language models (BERT, GPT-2, GPT-NeoX, Llama), the
//!   batched hidden-state extraction behind `features.lm` and the
//!   log-probabilities behind the competence kinds.
//! - [`train`]: training GPT-2-layout models, behind `train.gpt`, and
//!   Topoformer classifiers, behind `train.topoformer`.
//! - [`diffusion`]: the DDPM schedule, DDIM, the U-Net and the CNN
//!   classifiers behind `train.prototypes`, `train.classifier`, `train.ddpm`
//!   and `eval.samples`.
//! - [`ridge`]: cross-validated ridge in libtorch, the CUDA path of `ridge`.
//! - [`kinds`]: the runs of the kinds above, given their typed params.
//! - [`device`]: loading libtorch's CUDA backend; voxflow's `Device` in tch.
//!
//! [`Runtime`] is the [`voxflow::worker::TorchRuntime`] these make up.

pub mod device;
pub mod diffusion;
pub mod kinds;
pub mod lm;
pub mod ridge;
pub mod train;

use voxflow::device::Device;
use voxflow::kinds::alignment::benchmark::{GenerateParams, SentencesParams};
use voxflow::kinds::alignment::localize::LocalizeParams;
use voxflow::kinds::competence::CompetenceParams;
use voxflow::kinds::eval::samples::SamplesParams;
use voxflow::kinds::features::lm::LmParams;
use voxflow::kinds::topo::responses::TopoResponsesParams;
use voxflow::kinds::topo::smoothness::TopoSmoothnessParams;
use voxflow::kinds::topoformer::TopoformerResponsesParams;
use voxflow::kinds::train::ddpm::DdpmParams;
use voxflow::kinds::train::prototypes::{ClassifierParams, Head};
use voxflow::kinds::train::topoformer::TrainTopoformerParams;
use voxflow::kinds::train::TrainGptParams;
use voxflow::numeric::ridge::{Fold, RidgeConfig, RidgeCvResult, RidgeError};
use voxflow::numeric::Matrix;
use voxflow::stage::{StageContext, StageError};

/// The libtorch runtime the worker installs.
pub struct Runtime;

impl voxflow::worker::TorchRuntime for Runtime {
    fn features_lm(&self, params: &LmParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::features_lm::features_lm(params, ctx)
    }
    fn train_gpt(&self, params: &TrainGptParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::train_gpt::train_gpt(params, ctx)
    }
    fn competence_minimal_pairs(&self, params: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::competence::competence_minimal_pairs(params, ctx)
    }
    fn competence_facts(&self, params: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::competence::competence_facts(params, ctx)
    }
    fn topo_responses(&self, params: &TopoResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::topo::topo_responses(params, ctx)
    }
    fn topo_smoothness(&self, params: &TopoSmoothnessParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::topo::topo_smoothness(params, ctx)
    }
    fn train_topoformer(&self, params: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::train_topoformer::train_topoformer(params, ctx)
    }
    fn topoformer_responses(
        &self,
        params: &TopoformerResponsesParams,
        ctx: &mut StageContext,
    ) -> Result<(), StageError> {
        kinds::train_topoformer::topoformer_responses(params, ctx)
    }
    fn train_classifier(
        &self,
        params: &ClassifierParams,
        head: Head,
        ctx: &mut StageContext,
    ) -> Result<(), StageError> {
        kinds::classifier::train_classifier(params, head, ctx)
    }
    fn train_ddpm(&self, params: &DdpmParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::ddpm::train_ddpm(params, ctx)
    }
    fn eval_samples(&self, params: &SamplesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::samples::eval_samples(params, ctx)
    }
    fn localize_units(&self, params: &LocalizeParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::alignment::localize_units(params, ctx)
    }
    fn benchmark_generate(&self, params: &GenerateParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::alignment::benchmark_generate(params, ctx)
    }
    fn benchmark_sentences(&self, params: &SentencesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::alignment::benchmark_sentences(params, ctx)
    }
    fn ridge_cv(
        &self,
        x: &Matrix,
        y: &Matrix,
        folds: &[Fold],
        config: &RidgeConfig,
        device: Device,
    ) -> Result<RidgeCvResult, RidgeError> {
        ridge::ridge_cv_torch(x, y, folds, config, device::to_tch(device))
    }
}

/// Installs [`Runtime`] in this process, for tests that run a torch kind
/// without a worker.
pub fn install() {
    voxflow::worker::install(&Runtime);
}
