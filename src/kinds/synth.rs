//! `synth.stories`: the built-in dataset, deterministic from a seed. Stories
//! of words with speech-like timing, a TR grid like LeBel 2023 (TR 2 s, 10 s
//! lead-in), a held-out test story presented `repeats` times, and voxel
//! responses from a known encoding model:
//!
//! ```text
//! word features (random embedding + word rate) -> Lanczos to TRs
//!   -> z-score -> delays 1..4 -> random weights -> signal (unit variance)
//!   -> + Gaussian noise with variance 1/SNR (per voxel; some voxels pure noise)
//! ```
//!
//! The ground truth (`truth`) records each voxel's SNR and the correlation a
//! perfect model reaches: `ceiling = sqrt(SNR / (1 + SNR))` on one trial and
//! `ceiling_mean = sqrt(R SNR / (1 + R SNR))` on the mean of R repeats. A
//! pipeline with the same features (`features.random_embedding` with
//! `dim = embedding_dim`, `seed = embedding_seed`, plus `features.word_rate`),
//! Lanczos downsampling and delays 1..4 recovers the weights.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::artifact::{MatrixArtifact, Segment};
use crate::formats::words::Word;
use crate::kinds::features::random_embedding;
use crate::kinds::tables::{self, StoryTrs, StoryWords, TrGrid};
use crate::numeric::signal::{self, DownsampleMethod, ZScore};
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SynthParams {
    /// Training stories.
    #[serde(default = "d_stories")]
    pub stories: usize,
    #[serde(default = "d_words")]
    pub words_per_story: usize,
    /// Words of the held-out test story.
    #[serde(default = "d_words")]
    pub test_words: usize,
    #[serde(default = "d_voxels")]
    pub voxels: usize,
    #[serde(default = "d_dim")]
    pub embedding_dim: usize,
    #[serde(default)]
    pub embedding_seed: u64,
    /// Per-voxel SNR is drawn log-uniformly from this range.
    #[serde(default = "d_snr")]
    pub snr: [f64; 2],
    /// Fraction of voxels with no signal at all.
    #[serde(default = "d_noise_fraction")]
    pub noise_fraction: f64,
    /// Presentations of the test story.
    #[serde(default = "d_repeats")]
    pub repeats: usize,
    #[serde(default = "d_tr")]
    pub tr: f64,
    #[serde(default = "d_lead_in")]
    pub lead_in: f64,
    /// Seconds of scanning after the last word.
    #[serde(default = "d_tail")]
    pub tail: f64,
    #[serde(default = "d_delays")]
    pub delays: Vec<usize>,
    #[serde(default = "d_vocabulary")]
    pub vocabulary: usize,
    /// Write silence markers (`sp`) between phrases, as LeBel's TextGrids have.
    #[serde(default = "d_true")]
    pub markers: bool,
    /// Head-motion artifacts in the responses, with an fMRIPrep-style confounds table.
    #[serde(default)]
    pub motion: bool,
    /// Name of the held-out story.
    #[serde(default = "d_test_story")]
    pub test_story: String,
    #[serde(default)]
    pub seed: u64,
}

fn d_stories() -> usize {
    8
}
fn d_words() -> usize {
    1200
}
fn d_voxels() -> usize {
    1000
}
fn d_dim() -> usize {
    16
}
fn d_snr() -> [f64; 2] {
    [0.1, 2.0]
}
fn d_noise_fraction() -> f64 {
    0.2
}
fn d_repeats() -> usize {
    5
}
fn d_tr() -> f64 {
    2.0
}
fn d_lead_in() -> f64 {
    10.0
}
fn d_tail() -> f64 {
    10.0
}
fn d_delays() -> Vec<usize> {
    vec![1, 2, 3, 4]
}
fn d_vocabulary() -> usize {
    2000
}
fn d_true() -> bool {
    true
}
fn d_test_story() -> String {
    TEST_STORY.to_string()
}

impl Default for SynthParams {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

pub const TEST_STORY: &str = "test";

/// Everything the generator makes.
pub struct SynthData {
    /// Words per story, markers included; the test story last.
    pub words: Vec<StoryWords>,
    pub grid: TrGrid,
    /// One segment per story; the test story is the mean of its repeats.
    pub responses: MatrixArtifact,
    /// The test story's repeats, one segment each (`test/rep1`, ...).
    pub repeats: MatrixArtifact,
    pub snr: Vec<f64>,
    pub weights: Matrix,
    /// Per story: framewise displacement and six motion parameters per TR.
    pub confounds: Option<Vec<(String, Matrix)>>,
}

const CONFOUND_NAMES: &[&str] = &["framewise_displacement", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"];

/// Generates the dataset.
pub fn generate(params: &SynthParams) -> Result<SynthData, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let vocabulary = make_vocabulary(params.vocabulary, &mut rng);
    // Zipf weights over the vocabulary.
    let weights: Vec<f64> = (1..=vocabulary.len()).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
    let zipf = rand::distr::weighted::WeightedIndex::new(&weights).map_err(|e| e.to_string())?;
    let duration = LogNormal::new((0.28f64).ln(), 0.35).map_err(|e| e.to_string())?;

    let mut names: Vec<String> = (1..=params.stories).map(|i| format!("story{i:02}")).collect();
    names.push(params.test_story.clone());
    let mut words = Vec::new();
    let mut grid = TrGrid { tr_seconds: params.tr, stories: Vec::new() };
    for (index, name) in names.iter().enumerate() {
        let count = if index == params.stories { params.test_words } else { params.words_per_story };
        let mut story = Vec::with_capacity(count);
        let mut t = 0.0f64;
        for _ in 0..count {
            let length = duration.sample(&mut rng).clamp(0.08, 1.0);
            story.push(Word { word: vocabulary[zipf.sample(&mut rng)].clone(), onset: t, offset: t + length });
            t += length;
            if rng.random::<f64>() < 0.1 {
                let pause = rng.random_range(0.3..1.5);
                if params.markers {
                    story.push(Word { word: "sp".into(), onset: t, offset: t + pause });
                }
                t += pause;
            } else {
                t += 0.02;
            }
        }
        let n_trs = ((t + params.lead_in + params.tail) / params.tr).ceil() as usize;
        grid.stories
            .push(StoryTrs { story: name.clone(), times: tables::tr_times(n_trs, params.tr, params.lead_in, 0.5) });
        words.push(StoryWords { story: name.clone(), words: story });
    }

    // True TR-level features: Lanczos of (embedding, word rate), z-scored on
    // the training stories, delayed.
    let dim = params.embedding_dim + 1;
    let mut parts = Vec::new();
    for (story, trs) in words.iter().zip(&grid.stories) {
        let real: Vec<&Word> = story
            .words
            .iter()
            .filter(|w| !crate::formats::textgrid::is_dropped(&w.word, crate::formats::textgrid::LEBEL_DROP_WORDS))
            .collect();
        let mut values = Vec::with_capacity(real.len() * dim);
        for word in &real {
            values.extend(random_embedding(&word.word.to_lowercase(), params.embedding_dim, params.embedding_seed));
            values.push(1.0);
        }
        let values = Matrix::from_vec(real.len(), dim, values);
        let times: Vec<f64> = real.iter().map(|w| 0.5 * (w.onset + w.offset)).collect();
        let out = signal::downsample(&values, &times, &trs.times, params.tr, &DownsampleMethod::LANCZOS3)
            .map_err(|e| e.to_string())?;
        parts.push(out);
    }
    let lengths: Vec<usize> = parts.iter().map(|m| m.rows).collect();
    let train_rows: usize = lengths[..params.stories].iter().sum();
    let refs: Vec<&Matrix> = parts.iter().collect();
    let mut features = Matrix::vstack(&refs);
    let zscore = ZScore::fit(&features.select_rows(&(0..train_rows).collect::<Vec<_>>()));
    zscore.apply(&mut features);
    let x = signal::lag(&features, &lengths, &params.delays).map_err(|e| e.to_string())?;

    // Weights and unit-variance signal per voxel.
    let p = x.cols;
    let v = params.voxels;
    let scale = 1.0 / (p as f64).sqrt();
    let true_weights = Matrix::from_vec(
        p,
        v,
        (0..p * v)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                (z * scale) as f32
            })
            .collect(),
    );
    let mut signal_matrix = crate::numeric::ridge::predict(&x, &true_weights);
    let signal_stats = ZScore::fit(&signal_matrix.select_rows(&(0..train_rows).collect::<Vec<_>>()));
    signal_stats.apply(&mut signal_matrix);

    let (low, high) = (params.snr[0].ln(), params.snr[1].ln());
    let snr: Vec<f64> = (0..v)
        .map(|_| {
            let draw = rng.random::<f64>();
            if rng.random::<f64>() < params.noise_fraction {
                0.0
            } else {
                (low + draw * (high - low)).exp()
            }
        })
        .collect();
    let noise_sd: Vec<f64> = snr.iter().map(|s| if *s > 0.0 { 1.0 / s.sqrt() } else { 1.0 }).collect();
    let gain: Vec<f32> = snr.iter().map(|s| if *s > 0.0 { 1.0 } else { 0.0 }).collect();

    // Motion: six random-walk parameters, framewise displacement with spikes,
    // and an artifact in every voxel proportional to the motion.
    let mut confounds = None;
    let mut artifact_rows: Option<Matrix> = None;
    if params.motion {
        let mut all = Vec::new();
        let mut artifact = Matrix::zeros(x.rows, v);
        // Loadings per mm of motion (rotations counted as mm at 50 mm radius).
        let beta = Normal::new(0.0, 3.0).map_err(|e| e.to_string())?;
        let loadings: Vec<f32> = (0..6 * v).map(|_| beta.sample(&mut rng) as f32).collect();
        let step = Normal::new(0.0, 0.03).map_err(|e| e.to_string())?;
        let mut row0 = 0;
        for (name, &n) in names.iter().zip(&lengths) {
            let mut table = Matrix::zeros(n, 7);
            // Position in mm (rotations as arc length at 50 mm).
            let mut position = [0.0f64; 6];
            for t in 0..n {
                let spike = rng.random::<f64>() < 0.03;
                let mut fd = 0.0;
                for (k, value) in position.iter_mut().enumerate() {
                    let mut change: f64 = step.sample(&mut rng);
                    if spike {
                        change += rng.random_range(-1.0..1.0);
                    }
                    let next = 0.9 * *value + change;
                    fd += (next - *value).abs();
                    *value = next;
                    let reported = if k >= 3 { *value / 50.0 } else { *value };
                    table.set(t, k + 1, reported as f32);
                }
                table.set(t, 0, if t == 0 { 0.0 } else { fd as f32 });
                for voxel in 0..v {
                    let mut a = 0.0f32;
                    for k in 0..6 {
                        a += loadings[k * v + voxel] * position[k] as f32;
                    }
                    artifact.set(row0 + t, voxel, a);
                }
            }
            row0 += n;
            all.push((name.clone(), table));
        }
        confounds = Some(all);
        artifact_rows = Some(artifact);
    }

    let noise = Normal::new(0.0, 1.0).map_err(|e| e.to_string())?;
    let observe = |row: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
        (0..v)
            .map(|voxel| {
                let mut value =
                    gain[voxel] * signal_matrix.get(row, voxel) + (noise.sample(rng) * noise_sd[voxel]) as f32;
                if let Some(artifact) = &artifact_rows {
                    value += artifact.get(row, voxel);
                }
                value
            })
            .collect()
    };
    let mut responses = Vec::with_capacity(x.rows * v);
    let mut segments = Vec::new();
    let mut repeats = Matrix::zeros(0, v);
    let mut repeat_segments = Vec::new();
    let mut row = 0;
    for (index, (name, &n)) in names.iter().zip(&lengths).enumerate() {
        if index < params.stories {
            for t in 0..n {
                responses.extend(observe(row + t, &mut rng));
            }
        } else {
            let mut trials = Vec::new();
            for r in 0..params.repeats.max(1) {
                let mut trial = Vec::with_capacity(n * v);
                for t in 0..n {
                    trial.extend(observe(row + t, &mut rng));
                }
                repeat_segments.push(Segment { name: format!("{name}/rep{}", r + 1), rows: n });
                trials.push(trial);
            }
            let count = trials.len() as f32;
            for i in 0..n * v {
                responses.push(trials.iter().map(|trial| trial[i]).sum::<f32>() / count);
            }
            let data: Vec<f32> = trials.into_iter().flatten().collect();
            repeats = Matrix::from_vec(data.len() / v, v, data);
        }
        segments.push(Segment { name: name.clone(), rows: n });
        row += n;
    }
    let responses = MatrixArtifact::with_segments(Matrix::from_vec(x.rows, v, responses), segments);
    let repeats = MatrixArtifact::with_segments(repeats, repeat_segments);
    Ok(SynthData { words, grid, responses, repeats, snr, weights: true_weights, confounds })
}

fn make_vocabulary(size: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
    const ONSETS: &[&str] =
        &["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "st", "tr"];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
    let mut words = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let syllables = rng.random_range(1..=3);
        let word: String = (0..syllables)
            .map(|_| {
                format!("{}{}", ONSETS[rng.random_range(0..ONSETS.len())], VOWELS[rng.random_range(0..VOWELS.len())])
            })
            .collect();
        if words.insert(word.clone()) {
            out.push(word);
        }
    }
    out
}

/// The per-voxel ground truth as a table.
pub fn truth_table(snr: &[f64], repeats: usize) -> RecordBatch {
    let r = repeats.max(1) as f64;
    let schema = Schema::new(vec![
        Field::new("voxel", DataType::Int32, false),
        Field::new("snr", DataType::Float64, false),
        Field::new("signal", DataType::Boolean, false),
        Field::new("ceiling", DataType::Float64, false),
        Field::new("ceiling_mean", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from((0..snr.len() as i32).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(snr.to_vec())),
        Arc::new(BooleanArray::from(snr.iter().map(|s| *s > 0.0).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(snr.iter().map(|s| (s / (1.0 + s)).sqrt()).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(snr.iter().map(|s| (r * s / (1.0 + r * s)).sqrt()).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("truth schema")
}

/// fMRIPrep-style confounds: `story, tr` and one column per confound.
pub fn confounds_table(confounds: &[(String, Matrix)]) -> RecordBatch {
    let mut story = Vec::new();
    let mut tr = Vec::new();
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); CONFOUND_NAMES.len()];
    for (name, table) in confounds {
        for t in 0..table.rows {
            story.push(name.clone());
            tr.push(t as i32);
            for (k, column) in columns.iter_mut().enumerate() {
                column.push(table.get(t, k) as f64);
            }
        }
    }
    let mut fields = vec![Field::new("story", DataType::Utf8, false), Field::new("tr", DataType::Int32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(story)), Arc::new(Int32Array::from(tr))];
    for (name, column) in CONFOUND_NAMES.iter().zip(columns) {
        fields.push(Field::new(*name, DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(column)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("confounds schema")
}

/// Writes the dataset in the layout of LeBel 2023 (ds003020) under `root`:
/// `derivative/TextGrids/<story>.TextGrid` (tiers `phone` and `word`, long
/// text form), `derivative/preprocessed_data/<subject>/<story>.hf5` (dataset
/// `data`, TRs x voxels; the test story as the mean of its repeats),
/// `derivative/respdict.json` (story -> TR count) and `truth.parquet`.
///
/// Everything is written into a staging directory beside `root` first. A
/// `root` that does not exist yet is then created by one rename; into an
/// existing one each file is renamed into place, so every file is either the
/// old one or the whole new one. If generating or writing fails, nothing
/// under `root` changes.
pub fn write_lebel_layout(root: &std::path::Path, params: &SynthParams, subject: &str) -> Result<(), String> {
    let name = root.file_name().ok_or_else(|| format!("{}: not a directory name", root.display()))?;
    let parent = match root.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let staging = parent.join(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = write_lebel_files(&staging, params, subject).and_then(|()| move_into(&staging, root));
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Moves the tree at `from` to `to`: one rename when `to` does not exist,
/// else entry by entry, the same way.
fn move_into(from: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    if !to.exists() {
        return std::fs::rename(from, to).map_err(|e| format!("{}: {e}", to.display()));
    }
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?.is_dir() {
            move_into(&entry.path(), &target)?;
        } else {
            std::fs::rename(entry.path(), &target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

fn write_lebel_files(root: &std::path::Path, params: &SynthParams, subject: &str) -> Result<(), String> {
    use crate::formats::textgrid::{Interval, TextEncoding, TextGrid, TextGridForm, Tier, TierKind};
    let data = generate(params)?;
    let grids = root.join("derivative/TextGrids");
    let responses = root.join("derivative/preprocessed_data").join(subject);
    for dir in [&grids, &responses] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut counts = std::collections::BTreeMap::new();
    for (story, range) in data.responses.segment_ranges() {
        let words = data.words.iter().find(|w| w.story == story).ok_or("story without words")?;
        let end = words.words.last().map(|w| w.offset).unwrap_or(0.0) + 0.5;
        let mut intervals = Vec::new();
        let mut t = 0.0;
        for word in &words.words {
            if word.onset > t + 1e-9 {
                intervals.push(Interval { xmin: t, xmax: word.onset, text: String::new() });
            }
            intervals.push(Interval { xmin: word.onset, xmax: word.offset, text: word.word.clone() });
            t = word.offset;
        }
        intervals.push(Interval { xmin: t, xmax: end, text: String::new() });
        let word_tier = Tier { name: "word".into(), kind: TierKind::Interval, xmin: 0.0, xmax: end, intervals };
        let phone_tier = Tier {
            name: "phone".into(),
            kind: TierKind::Interval,
            xmin: 0.0,
            xmax: end,
            intervals: vec![Interval { xmin: 0.0, xmax: end, text: String::new() }],
        };
        let grid = TextGrid { xmin: 0.0, xmax: end, tiers: vec![phone_tier, word_tier] };
        crate::formats::textgrid::write_textgrid(
            &grids.join(format!("{story}.TextGrid")),
            &grid,
            TextGridForm::Long,
            TextEncoding::Utf8,
        )
        .map_err(|e| e.to_string())?;
        let matrix = data.responses.matrix.select_rows(&range.clone().collect::<Vec<_>>());
        crate::formats::hdf5::write_hf5(&responses.join(format!("{story}.hf5")), &matrix).map_err(|e| e.to_string())?;
        counts.insert(story.clone(), range.len());
    }
    crate::formats::respdict::write_respdict(&root.join("derivative/respdict.json"), &counts)
        .map_err(|e| e.to_string())?;
    crate::artifact::write_table(&root.join("truth.parquet"), &truth_table(&data.snr, params.repeats))
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub struct Synth;

impl Kind for Synth {
    type Params = SynthParams;
    const NAME: &'static str = "synth.stories";
    // 2: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "the built-in dataset: stories, TR grid, voxel responses from a known encoding model, ground truth";

    fn outputs(&self, params: &SynthParams) -> Vec<String> {
        let mut outputs: Vec<String> =
            ["words", "trs", "responses", "repeats", "truth", "weights"].iter().map(|s| s.to_string()).collect();
        if params.motion {
            outputs.push("confounds".into());
        }
        outputs
    }
    fn validate(&self, p: &SynthParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.stories < 2 {
            errors.push(ParamError::new("stories", "need at least 2 training stories (folds are by story)"));
        }
        if p.words_per_story < 10 || p.test_words < 10 {
            errors.push(ParamError::new("words_per_story", "stories need at least 10 words"));
        }
        if p.voxels == 0 || p.embedding_dim == 0 || p.vocabulary == 0 {
            errors.push(ParamError::new("voxels", "voxels, embedding_dim and vocabulary must be at least 1"));
        }
        if !(p.snr[0] > 0.0 && p.snr[1] >= p.snr[0] && p.snr[1].is_finite()) {
            errors
                .push(ParamError::new("snr", format!("snr must be [low, high] with 0 < low <= high, got {:?}", p.snr)));
        }
        if !(0.0..=1.0).contains(&p.noise_fraction) {
            errors.push(ParamError::new("noise_fraction", "noise_fraction must be between 0 and 1"));
        }
        if p.repeats == 0 {
            errors.push(ParamError::new("repeats", "the test story needs at least 1 repeat"));
        }
        let finite = p.tr.is_finite() && p.lead_in.is_finite() && p.tail.is_finite();
        if !finite || p.tr <= 0.0 || p.lead_in < 0.0 || p.tail < 0.0 {
            errors.push(ParamError::new("tr", "tr must be positive, lead_in and tail non-negative (finite numbers)"));
        }
        if p.delays.is_empty() {
            errors.push(ParamError::new("delays", "give at least one delay"));
        }
        errors
    }
    fn run(&self, params: &SynthParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let data = generate(params).map_err(StageError::failed)?;
        ctx.write_table("words", &tables::words_to_batch(&data.words))?;
        ctx.write_table("trs", &tables::grid_to_batch(&data.grid))?;
        ctx.write_matrix("responses", &data.responses)?;
        ctx.write_matrix("repeats", &data.repeats)?;
        ctx.write_table("truth", &truth_table(&data.snr, params.repeats))?;
        ctx.write_matrix("weights", &MatrixArtifact::new(data.weights))?;
        if let Some(confounds) = &data.confounds {
            ctx.write_table("confounds", &confounds_table(confounds))?;
        }
        Ok(())
    }
}
