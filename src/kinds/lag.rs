//! `lag`: FIR delays that model the hemodynamic lag. Each delay shifts the
//! features down by that many TRs within each story (zero-padded: no delay
//! crosses a story boundary); the output has one column block per delay,
//! delay-major: `[delay_1 features | delay_2 features | ...]`.

use serde::{Deserialize, Serialize};

use crate::artifact::MatrixArtifact;
use crate::numeric::signal;
use crate::stage::{param, Kind, ParamDoc, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagParams {
    #[serde(default = "default_delays")]
    pub delays: Vec<usize>,
}

fn default_delays() -> Vec<usize> {
    vec![1, 2, 3, 4]
}

pub struct Lag;

impl Kind for Lag {
    type Params = LagParams;
    const NAME: &'static str = "lag";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "FIR delays (default 1-4 TRs) within each story, delay-major column blocks";
    const INPUTS: &'static [&'static str] = &["features"];
    const OUTPUTS: &'static [&'static str] = &["features"];
    const PARAM_DOCS: &'static [ParamDoc] = &[param(
        "delays",
        "list of integers",
        "delays in TRs; the output has one column block per delay, in this order",
    )];

    fn validate(&self, params: &LagParams) -> Vec<ParamError> {
        if params.delays.is_empty() {
            return vec![ParamError::new("delays", "give at least one delay, e.g. [1, 2, 3, 4]")];
        }
        Vec::new()
    }
    fn run(&self, params: &LagParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let features = ctx.input_matrix("features")?;
        if features.segments.is_empty() {
            return Err(StageError::failed(
                "the features have no story segments, so delays cannot respect story boundaries",
            ));
        }
        if features.metadata.get("level").map(String::as_str) == Some("word") {
            return Err(
                StageError::failed("these features are word-level").with_hint("put a `downsample` stage before `lag`")
            );
        }
        let lagged = signal::lag(&features.matrix, &features.segment_lengths(), &params.delays)
            .map_err(|e| StageError::failed(e.to_string()))?;
        let mut artifact = MatrixArtifact::with_segments(lagged, features.segments.clone());
        artifact.metadata = features.metadata.clone();
        artifact.metadata.insert("delays".into(), serde_json::to_string(&params.delays).expect("delays"));
        ctx.write_matrix("features", &artifact)
    }
}
