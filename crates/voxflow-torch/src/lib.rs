//! voxflow's libtorch side: everything that calls tch, run by the
//! `voxflow-worker` binary (src/main.rs) that the scheduler starts for each
//! stage whose kind needs it (see `voxflow::worker`).
//!
//! - [`lm`]: transformer language models (BERT and GPT-2 layouts) and the
//!   batched hidden-state extraction behind `features.lm`.
//! - [`train`]: training GPT-2-layout models, behind `train.gpt`.
//! - [`ridge`]: cross-validated ridge in libtorch, the CUDA path of `ridge`.
//! - [`kinds`]: the runs of the kinds above, given their typed params.
//! - [`device`]: loading libtorch's CUDA backend; voxflow's `Device` in tch.
//!
//! [`Runtime`] is the [`voxflow::worker::TorchRuntime`] these make up.

pub mod device;
pub mod kinds;
pub mod lm;
pub mod ridge;
pub mod train;

use voxflow::device::Device;
use voxflow::kinds::alignment::benchmark::{GenerateParams, SentencesParams};
use voxflow::kinds::alignment::localize::LocalizeParams;
use voxflow::kinds::features::lm::LmParams;
use voxflow::kinds::topo::responses::TopoResponsesParams;
use voxflow::kinds::topo::smoothness::TopoSmoothnessParams;
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
    fn topo_responses(&self, params: &TopoResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::topo::topo_responses(params, ctx)
    }
    fn topo_smoothness(&self, params: &TopoSmoothnessParams, ctx: &mut StageContext) -> Result<(), StageError> {
        kinds::topo::topo_smoothness(params, ctx)
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
