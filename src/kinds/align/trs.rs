//! `align.trs`: a TR grid per story from the responses' TR counts, a LeBel
//! respdict.json, explicit counts, or a BIDS bold.json + events.tsv. TR `i`
//! of a story sits at `i * tr - lead_in + offset * tr` seconds from the
//! stimulus onset (offset 0.5: the middle of the acquisition).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::formats;
use crate::kinds::tables::{self, StoryTrs, TrGrid};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignTrsParams {
    /// `responses` (TR counts of the `responses` input), `respdict`, `counts` or `bids`.
    #[serde(default)]
    pub source: TrSource,
    /// Repetition time in seconds (ignored for `bids`, which reads RepetitionTime).
    #[serde(default = "default_tr")]
    pub tr: f64,
    /// Seconds from the first volume to the stimulus onset (ignored for `bids`).
    #[serde(default = "default_lead_in")]
    pub lead_in: f64,
    /// Where in its acquisition a TR's time sits, as a fraction of TR.
    #[serde(default = "default_offset")]
    pub offset: f64,
    /// For `respdict`: LeBel's respdict.json (story -> TR count).
    #[serde(default)]
    pub respdict: Option<String>,
    /// For `counts`: story -> TR count.
    #[serde(default)]
    pub counts: BTreeMap<String, usize>,
    /// For `bids`: the run's *_bold.json, its events.tsv, the story name and TR count.
    #[serde(default)]
    pub bold_json: Option<String>,
    #[serde(default)]
    pub events: Option<String>,
    #[serde(default)]
    pub story: Option<String>,
    #[serde(default)]
    pub n_trs: Option<usize>,
    #[serde(default)]
    pub trial_type: Option<String>,
    /// Only these stories (default: all).
    #[serde(default)]
    pub stories: Vec<String>,
}

/// Where the TR grid comes from: the TR counts of a `responses` input, a
/// respdict.json, explicit `counts`, or a BIDS bold.json + events.tsv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrSource {
    #[default]
    Responses,
    Respdict,
    Counts,
    Bids,
}
fn default_tr() -> f64 {
    2.0
}
fn default_lead_in() -> f64 {
    10.0
}
fn default_offset() -> f64 {
    0.5
}

pub struct AlignTrs;

impl Kind for AlignTrs {
    type Params = AlignTrsParams;
    const NAME: &'static str = "align.trs";
    // 2: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "TR grid per story from response TR counts, respdict.json, explicit counts or BIDS bold.json + events.tsv";
    const OUTPUTS: &'static [&'static str] = &["trs"];

    fn required_inputs(&self, params: &AlignTrsParams) -> Vec<&'static str> {
        // source: responses counts the TRs of the `responses` input.
        match params.source {
            TrSource::Responses => vec!["responses"],
            TrSource::Respdict | TrSource::Counts | TrSource::Bids => Vec::new(),
        }
    }
    fn validate(&self, p: &AlignTrsParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if !(p.tr.is_finite() && p.tr > 0.0) {
            errors.push(ParamError::new("tr", "tr must be a positive number of seconds"));
        }
        match p.source {
            TrSource::Respdict if p.respdict.is_none() => {
                errors.push(ParamError::new("respdict", "source `respdict` needs `respdict: path/to/respdict.json`"))
            }
            TrSource::Counts if p.counts.is_empty() => {
                errors.push(ParamError::new("counts", "source `counts` needs `counts: {story: n_trs, ...}`"))
            }
            TrSource::Bids if p.bold_json.is_none() || p.events.is_none() || p.story.is_none() || p.n_trs.is_none() => {
                errors.push(ParamError::new("", "source `bids` needs `bold_json`, `events`, `story` and `n_trs`"))
            }
            _ => {}
        }
        errors
    }
    fn file_params(&self, p: &AlignTrsParams) -> Vec<(String, String)> {
        [("respdict", &p.respdict), ("bold_json", &p.bold_json), ("events", &p.events)]
            .into_iter()
            .filter_map(|(key, path)| path.as_ref().map(|path| (key.to_string(), path.clone())))
            .collect()
    }
    fn run(&self, p: &AlignTrsParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let grid_from = |counts: Vec<(String, usize)>| TrGrid {
            tr_seconds: p.tr,
            stories: counts
                .into_iter()
                .map(|(story, n)| StoryTrs { story, times: tables::tr_times(n, p.tr, p.lead_in, p.offset) })
                .collect(),
        };
        let mut grid = match p.source {
            TrSource::Responses => {
                let segments = ctx.input_segments("responses")?;
                if segments.is_empty() {
                    return Err(StageError::failed("the responses have no story segments"));
                }
                grid_from(segments.into_iter().map(|s| (s.name, s.rows)).collect())
            }
            TrSource::Respdict => {
                let path = ctx.resolve(p.respdict.as_deref().unwrap_or_default());
                let counts = formats::respdict::read_respdict(&path).map_err(|e| StageError::failed(e.to_string()))?;
                grid_from(counts.into_iter().collect())
            }
            TrSource::Counts => grid_from(p.counts.clone().into_iter().collect()),
            TrSource::Bids => {
                let bold = ctx.resolve(p.bold_json.as_deref().unwrap_or_default());
                let events = ctx.resolve(p.events.as_deref().unwrap_or_default());
                let timing = formats::bids::run_timing(&bold, &events, p.n_trs.unwrap_or(0), p.trial_type.as_deref())
                    .map_err(|e| StageError::failed(e.to_string()))?;
                let times = timing.tr_times.iter().map(|t| t + p.offset * timing.tr_seconds).collect();
                TrGrid {
                    tr_seconds: timing.tr_seconds,
                    stories: vec![StoryTrs { story: p.story.clone().unwrap_or_default(), times }],
                }
            }
        };
        if !p.stories.is_empty() {
            for wanted in &p.stories {
                if grid.story(wanted).is_none() {
                    return Err(StageError::failed(format!("story `{wanted}` (in `stories`) is not in the TR source")));
                }
            }
            grid.stories.retain(|s| p.stories.contains(&s.story));
        }
        ctx.write_table("trs", &tables::grid_to_batch(&grid))
    }
}
