//! `load.responses`: voxel responses as users have them, one file per story,
//! into one story-indexed matrix (segments = stories, in name order):
//! LeBel's `.hf5` (HDF5 dataset `data`, TRs x voxels), NIfTI 4-D images with
//! a 3-D mask (`.nii`/`.nii.gz`), or NumPy `.npy` (TRs x voxels). Every story
//! must have the same number of voxels; non-finite values are an error that
//! names the story and file (or are set to 0 with `nan: zero`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::artifact::{MatrixArtifact, Segment};
use crate::formats;
use crate::numeric::matrix::first_non_finite;
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadResponsesParams {
    pub format: ResponseFormat,
    /// Directory with one file per story, named `<story>.<ext>`.
    pub dir: String,
    /// For `nifti`: the brain mask (3-D image).
    #[serde(default)]
    pub mask: Option<String>,
    /// Only these stories (default: every file in `dir`).
    #[serde(default)]
    pub stories: Vec<String>,
    #[serde(default)]
    pub nan: NanPolicy,
}

/// The file format of the responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    /// LeBel's HDF5 (dataset `data`, TRs x voxels).
    Hf5,
    /// 4-D NIfTI images with a 3-D `mask`.
    Nifti,
    /// NumPy arrays (TRs x voxels).
    Npy,
}

impl ResponseFormat {
    fn name(self) -> &'static str {
        match self {
            ResponseFormat::Hf5 => "hf5",
            ResponseFormat::Nifti => "nifti",
            ResponseFormat::Npy => "npy",
        }
    }

    fn extensions(self) -> &'static [&'static str] {
        match self {
            ResponseFormat::Hf5 => &[".hf5", ".h5"],
            ResponseFormat::Nifti => &[".nii.gz", ".nii"],
            ResponseFormat::Npy => &[".npy"],
        }
    }
}

/// What to do with NaN/inf values: fail (default) or set them to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    #[default]
    Error,
    Zero,
}

pub struct LoadResponses;

impl Kind for LoadResponses {
    type Params = LoadResponsesParams;
    const NAME: &'static str = "load.responses";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "voxel responses per story from LeBel .hf5, NIfTI + mask, or .npy files";
    const OUTPUTS: &'static [&'static str] = &["responses"];

    fn validate(&self, p: &LoadResponsesParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.format == ResponseFormat::Nifti && p.mask.is_none() {
            errors.push(ParamError::new("mask", "NIfTI responses need `mask`: a 3-D brain mask image"));
        }
        errors
    }
    fn file_params(&self, p: &LoadResponsesParams) -> Vec<(String, String)> {
        let mut files = vec![("dir".to_string(), p.dir.clone())];
        files.extend(p.mask.iter().map(|mask| ("mask".to_string(), mask.clone())));
        files
    }
    fn run(&self, p: &LoadResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let dir = ctx.resolve(&p.dir);
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|e| StageError::failed(format!("{}: {e}", dir.display())))?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                p.format
                    .extensions()
                    .iter()
                    .find_map(|ext| name.strip_suffix(ext).map(|story| (story.to_string(), entry.path())))
            })
            .collect();
        files.sort();
        for wanted in &p.stories {
            if !files.iter().any(|(story, _)| story == wanted) {
                return Err(StageError::failed(format!(
                    "story `{wanted}` has no {} file in {}",
                    p.format.name(),
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
                p.format.name(),
                p.format.extensions().join(", ")
            )));
        }
        let mask = match (p.format, &p.mask) {
            (ResponseFormat::Nifti, Some(mask)) => {
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
            let mut matrix = match p.format {
                ResponseFormat::Hf5 => formats::hdf5::read_hf5(path).map_err(fail)?,
                ResponseFormat::Nifti => {
                    let (mask, mask_path) = mask.as_ref().expect("checked");
                    formats::nifti::read_masked_with(path, mask, mask_path).map_err(fail)?
                }
                ResponseFormat::Npy => {
                    formats::npy::read_npy(path).map_err(|e| StageError::failed(format!("story `{story}`: {e}")))?
                }
            };
            if matrix.rows == 0 || matrix.cols == 0 {
                return Err(StageError::failed(format!(
                    "story `{story}` ({}) has {} TRs and {} voxels: no responses",
                    path.display(),
                    matrix.rows,
                    matrix.cols
                ))
                .with_hint(
                    "the file is empty (a failed export?); write it again, or leave the story out of `stories`",
                ));
            }
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
                if p.nan == NanPolicy::Zero {
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
            if i == 0 {
                ctx.progress_unit("files");
            }
            ctx.progress(i as u64 + 1, files.len() as u64);
            ctx.check_cancelled()?;
        }
        let rows = segments.iter().map(|s| s.rows).sum();
        let responses = Matrix::from_vec(rows, n_voxels.unwrap_or(0), data);
        ctx.write_matrix("responses", &MatrixArtifact::with_segments(responses, segments))
    }
}
