//! `load.responses`: voxel responses as users have them, one file per story,
//! into one story-indexed matrix (segments = stories, in name order):
//! LeBel's `.hf5` (HDF5 dataset `data`, TRs x voxels), NIfTI 4-D images with
//! a 3-D mask (`.nii`/`.nii.gz`), or NumPy `.npy` (TRs x voxels). Every story
//! must have the same number of voxels; non-finite values are an error that
//! names the story and file (or are set to 0 with `nan: zero`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{checked, parse_params, typed_params, ParamError, Stage, StageContext, StageError};
use crate::artifact::{MatrixArtifact, Segment};
use crate::formats;
use crate::numeric::matrix::first_non_finite;
use crate::numeric::Matrix;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadResponsesParams {
    /// `hf5`, `nifti` or `npy`.
    pub format: String,
    /// Directory with one file per story, named `<story>.<ext>`.
    pub dir: String,
    /// For `nifti`: the brain mask (3-D image).
    #[serde(default)]
    pub mask: Option<String>,
    /// Only these stories (default: every file in `dir`).
    #[serde(default)]
    pub stories: Vec<String>,
    /// `error` (default) or `zero`: what to do with NaN/inf values.
    #[serde(default = "default_nan")]
    pub nan: String,
}

fn default_nan() -> String {
    "error".into()
}

pub struct LoadResponses;

fn extensions(format: &str) -> &'static [&'static str] {
    match format {
        "hf5" => &[".hf5", ".h5"],
        "nifti" => &[".nii.gz", ".nii"],
        _ => &[".npy"],
    }
}

impl Stage for LoadResponses {
    fn kind(&self) -> &'static str {
        "load.responses"
    }
    fn version(&self) -> u32 {
        1
    }
    fn summary(&self) -> &'static str {
        "voxel responses per story from LeBel .hf5, NIfTI + mask, or .npy files"
    }
    fn outputs(&self, _params: &Value) -> Vec<String> {
        vec!["responses".into()]
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let (p, canonical) = parse_params::<LoadResponsesParams>(params)?;
        let mut errors = Vec::new();
        if !["hf5", "nifti", "npy"].contains(&p.format.as_str()) {
            errors.push(ParamError::new("format", format!("unknown format `{}`: use hf5, nifti or npy", p.format)));
        }
        if p.format == "nifti" && p.mask.is_none() {
            errors.push(ParamError::new("mask", "NIfTI responses need `mask`: a 3-D brain mask image"));
        }
        if p.nan != "error" && p.nan != "zero" {
            errors.push(ParamError::new("nan", "nan must be `error` or `zero`"));
        }
        checked(canonical, errors)
    }
    fn file_params(&self, params: &Value) -> Vec<(String, String)> {
        ["dir", "mask"]
            .iter()
            .filter_map(|k| params.get(*k).and_then(Value::as_str).map(|p| (k.to_string(), p.to_string())))
            .collect()
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let p: LoadResponsesParams = typed_params(ctx.params)?;
        let dir = ctx.resolve(&p.dir);
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|e| StageError::failed(format!("{}: {e}", dir.display())))?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                extensions(&p.format)
                    .iter()
                    .find_map(|ext| name.strip_suffix(ext).map(|story| (story.to_string(), entry.path())))
            })
            .collect();
        files.sort();
        for wanted in &p.stories {
            if !files.iter().any(|(story, _)| story == wanted) {
                return Err(StageError::failed(format!(
                    "story `{wanted}` has no {} file in {}",
                    p.format,
                    dir.display()
                )));
            }
        }
        if !p.stories.is_empty() {
            files.retain(|(story, _)| p.stories.contains(story));
        }
        if files.is_empty() {
            return Err(StageError::failed(format!(
                "{} has no {} files ({})",
                dir.display(),
                p.format,
                extensions(&p.format).join(", ")
            )));
        }
        let mask = match (&p.format[..], &p.mask) {
            ("nifti", Some(mask)) => {
                let path = ctx.resolve(mask);
                Some((formats::nifti::read_mask(&path).map_err(|e| StageError::failed(e.to_string()))?, path))
            }
            _ => None,
        };
        // Stories are appended to one buffer as they are read (not stacked at
        // the end), so the stage holds the responses once plus one story.
        let mut data: Vec<f32> = Vec::new();
        let mut n_voxels = None;
        let mut segments = Vec::new();
        for (i, (story, path)) in files.iter().enumerate() {
            let fail = |e: formats::FormatError| StageError::failed(format!("story `{story}`: {e}"));
            let mut matrix = match p.format.as_str() {
                "hf5" => formats::hdf5::read_hf5(path).map_err(fail)?,
                "nifti" => {
                    let (mask, mask_path) = mask.as_ref().expect("checked");
                    formats::nifti::read_masked_with(path, mask, mask_path).map_err(fail)?
                }
                _ => formats::npy::read_npy(path).map_err(|e| StageError::failed(format!("story `{story}`: {e}")))?,
            };
            if let Some(first) = n_voxels {
                if first != matrix.cols {
                    return Err(StageError::failed(format!(
                        "story `{story}` ({}) has {} voxels but `{}` has {}",
                        path.display(),
                        matrix.cols,
                        files[0].0,
                        first
                    )));
                }
            }
            if let Some(position) = first_non_finite(&matrix.data) {
                if p.nan == "zero" {
                    let count = matrix.data.iter().filter(|v| !v.is_finite()).count();
                    matrix.data.iter_mut().filter(|v| !v.is_finite()).for_each(|v| *v = 0.0);
                    ctx.warn(format!("story `{story}`: {count} non-finite values set to 0"));
                } else {
                    return Err(StageError::failed(format!(
                        "story `{story}` ({}): TR {}, voxel {} is {}",
                        path.display(),
                        position / matrix.cols.max(1),
                        position % matrix.cols.max(1),
                        matrix.data[position]
                    ))
                    .with_hint("mask out voxels with NaN (outside the brain), or set `nan: zero`"));
                }
            }
            segments.push(Segment { name: story.clone(), rows: matrix.rows });
            if n_voxels.is_none() {
                n_voxels = Some(matrix.cols);
                data.reserve(matrix.data.len() * files.len());
            }
            data.extend_from_slice(&matrix.data);
            drop(matrix);
            ctx.progress(i as u64 + 1, files.len() as u64);
            ctx.check_cancelled()?;
        }
        let rows = segments.iter().map(|s| s.rows).sum();
        let responses = Matrix::from_vec(rows, n_voxels.unwrap_or(0), data);
        ctx.write_matrix("responses", &MatrixArtifact::with_segments(responses, segments))
    }
}
