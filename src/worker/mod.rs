//! Worker processes. Stages whose kind calls libtorch (`features.lm`, `ridge`
//! on a GPU, `train.gpt`, `train.topoformer`) do not run in the scheduler's process: the `voxflow`
//! binary never maps libtorch (start-up in milliseconds, no 120 MiB of
//! libraries for `voxflow show`), and a libtorch `abort()`, a CUDA error or a
//! SIGKILL ends one worker, whose stage fails with the exit status and the
//! tail of its stderr, while the scheduler and the other stages carry on.
//!
//! The scheduler keeps everything that makes a result trustworthy: the key's
//! lock, the staging directory, the hashing and the commit. The worker gets
//! the stage's context as one JSON request on stdin (kind, params, input
//! artifacts, the staging directory to write into, threads, device), runs
//! the kind exactly as the scheduler would have, and answers with JSON lines
//! on stdout ([`protocol`]): progress while it runs, then the outputs it
//! wrote (or the error). Closing its stdin cancels it; it dies with the
//! thread that started it (`PR_SET_PDEATHSIG`), so a killed `voxflow run`
//! leaves no worker writing behind it.
//!
//! - [`client`]: the scheduler's side ([`run_in_worker`]).
//! - [`serve`]: the worker's side, the whole `main` of `voxflow-worker`
//!   (crates/voxflow-torch), given its [`TorchRuntime`].
//!
//! The libtorch code lives in crates/voxflow-torch and reaches the kinds
//! through [`TorchRuntime`], installed once by the worker; in the `voxflow`
//! binary no runtime is installed and a torch kind cannot run in-process.

mod client;
pub mod protocol;
mod serve;

use std::sync::OnceLock;

pub use client::{run_in_worker, worker_binary};
pub use serve::serve;

use crate::device::Device;
use crate::kinds::alignment::benchmark::{GenerateParams, SentencesParams};
use crate::kinds::alignment::localize::LocalizeParams;
use crate::kinds::competence::CompetenceParams;
use crate::kinds::eval::samples::SamplesParams;
use crate::kinds::features::lm::LmParams;
use crate::kinds::topo::responses::TopoResponsesParams;
use crate::kinds::topo::smoothness::TopoSmoothnessParams;
use crate::kinds::topoformer::TopoformerResponsesParams;
use crate::kinds::train::ddpm::DdpmParams;
use crate::kinds::train::prototypes::{ClassifierParams, Head};
use crate::kinds::train::topoformer::TrainTopoformerParams;
use crate::kinds::train::TrainGptParams;
use crate::numeric::ridge::{Fold, RidgeConfig, RidgeCvResult, RidgeError};
use crate::numeric::Matrix;
use crate::stage::{StageContext, StageError};

/// What the libtorch crate provides to the kinds that need it.
pub trait TorchRuntime: Sync {
    /// `features.lm`'s whole run.
    fn features_lm(&self, params: &LmParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `train.gpt`'s whole run.
    fn train_gpt(&self, params: &TrainGptParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `competence.minimal_pairs`'s whole run.
    fn competence_minimal_pairs(&self, params: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `competence.facts`'s whole run.
    fn competence_facts(&self, params: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `topo.responses`'s whole run.
    fn topo_responses(&self, params: &TopoResponsesParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `topo.smoothness`'s whole run.
    fn topo_smoothness(&self, params: &TopoSmoothnessParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `train.topoformer`'s whole run.
    fn train_topoformer(&self, params: &TrainTopoformerParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `topoformer.responses`'s whole run.
    fn topoformer_responses(
        &self,
        params: &TopoformerResponsesParams,
        ctx: &mut StageContext,
    ) -> Result<(), StageError>;
    /// `train.prototypes` (`head` prototype) and `train.classifier` (`head` linear).
    fn train_classifier(&self, params: &ClassifierParams, head: Head, ctx: &mut StageContext)
        -> Result<(), StageError>;
    /// `train.ddpm`'s whole run.
    fn train_ddpm(&self, params: &DdpmParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `eval.samples`'s whole run.
    fn eval_samples(&self, params: &SamplesParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `localize.units`'s whole run.
    fn localize_units(&self, params: &LocalizeParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `benchmark.generate`'s whole run.
    fn benchmark_generate(&self, params: &GenerateParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// `benchmark.sentences`'s whole run.
    fn benchmark_sentences(&self, params: &SentencesParams, ctx: &mut StageContext) -> Result<(), StageError>;
    /// Cross-validated ridge on a libtorch device (the CUDA path of `ridge`).
    fn ridge_cv(
        &self,
        x: &Matrix,
        y: &Matrix,
        folds: &[Fold],
        config: &RidgeConfig,
        device: Device,
    ) -> Result<RidgeCvResult, RidgeError>;
}

static RUNTIME: OnceLock<&'static dyn TorchRuntime> = OnceLock::new();

/// Installs the libtorch runtime (done by `voxflow-worker`, and by tests that
/// run a torch kind in their own process).
pub fn install(runtime: &'static dyn TorchRuntime) {
    let _ = RUNTIME.set(runtime);
}

/// The installed runtime, or an error naming the kind that needed it.
pub fn runtime(kind: &str) -> Result<&'static dyn TorchRuntime, StageError> {
    RUNTIME.get().copied().ok_or_else(|| {
        StageError::failed(format!("`{kind}` calls libtorch and runs in a worker process, not in this one"))
            .with_hint("run it through the scheduler (`voxflow run`), which starts voxflow-worker")
    })
}
