//! `load.matrix`: a matrix from .npy, from voxflow's .arrow/.parquet
//! matrices, or from a table of numeric columns (pandas' `to_parquet` /
//! `to_feather`; an optional `story` column gives the segments).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::extension;
use crate::artifact::{self, MatrixArtifact};
use crate::numeric::matrix::first_non_finite;
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadMatrixParams {
    /// .npy; a voxflow matrix as .arrow/.parquet; or a table of numeric
    /// columns as .arrow/.parquet (one matrix column per table column, an
    /// optional `story` column of strings giving the segments).
    pub path: String,
}

pub struct LoadMatrix;

impl Kind for LoadMatrix {
    type Params = LoadMatrixParams;
    const NAME: &'static str = "load.matrix";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "read a .npy file, a voxflow matrix, or a table of numeric columns (.arrow/.parquet) into the store";
    const OUTPUTS: &'static [&'static str] = &["matrix"];

    fn validate(&self, parsed: &LoadMatrixParams) -> Vec<ParamError> {
        let extension = extension(&parsed.path);
        if !["npy", "arrow", "feather", "parquet"].contains(&extension.as_str()) {
            return vec![ParamError::new("path", format!("cannot load `.{extension}` files as matrices"))
                .hint("use .npy, .arrow or .parquet")];
        }
        Vec::new()
    }

    fn file_params(&self, params: &LoadMatrixParams) -> Vec<(String, String)> {
        vec![("path".to_string(), params.path.clone())]
    }

    fn run(&self, params: &LoadMatrixParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let path = ctx.resolve(&params.path);
        let matrix = if extension(&params.path) == "npy" {
            let matrix: Matrix = crate::formats::npy::read_npy(&path).map_err(|e| StageError::failed(e.to_string()))?;
            MatrixArtifact::new(matrix)
        } else if artifact::is_matrix_file(&path)? {
            artifact::read_matrix(&path)?
        } else {
            matrix_from_table(&path)?
        };
        if let Some(position) = first_non_finite(&matrix.matrix.data) {
            return Err(StageError::failed(format!(
                "{}: non-finite value at row {}, column {}",
                path.display(),
                position / matrix.matrix.cols.max(1),
                position % matrix.matrix.cols.max(1)
            ))
            .with_hint("remove or impute NaN/inf values before loading"));
        }
        ctx.write_matrix("matrix", &matrix)
    }
}

/// A table of numeric columns (as pandas' `to_parquet` or pyarrow write it)
/// as a matrix: the numeric columns in file order, converted to float32; a
/// `story` column of strings gives the segments (its rows must be grouped by
/// story); pandas' stored index (`__index_level_N__`) is skipped.
fn matrix_from_table(path: &Path) -> Result<MatrixArtifact, StageError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float32Type};
    const HINT: &str =
        "a matrix table has numeric columns and optionally a `story` column of strings; drop or convert the others";
    let batch = artifact::read_batch(path)?;
    let fail = |message: String| StageError::failed(format!("{}: {message}", path.display()));
    let mut columns = Vec::new();
    let mut stories = None;
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name();
        if name.starts_with("__index_level_") {
            continue;
        }
        if name == "story" {
            stories = Some(crate::kinds::tables::text_column(&batch, "story", &path.display().to_string())?);
            continue;
        }
        if !field.data_type().is_numeric() {
            return Err(fail(format!("column `{name}` is {}, not a number", field.data_type())).with_hint(HINT));
        }
        if column.null_count() > 0 {
            let row = (0..column.len()).find(|&i| column.is_null(i)).unwrap_or(0);
            return Err(fail(format!(
                "column `{name}` has {} missing values (first at row {row})",
                column.null_count()
            ))
            .with_hint("remove or impute missing values before loading"));
        }
        let cast = arrow::compute::cast(column, &DataType::Float32).map_err(|e| fail(e.to_string()))?;
        columns.push(cast);
    }
    if columns.is_empty() {
        return Err(fail(
            "no numeric columns: neither a voxflow matrix (no `data` column) nor a table of numbers".into(),
        )
        .with_hint(HINT));
    }
    let (rows, cols) = (batch.num_rows(), columns.len());
    let values: Vec<&[f32]> = columns.iter().map(|c| c.as_primitive::<Float32Type>().values().as_ref()).collect();
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        data.extend(values.iter().map(|column| column[r]));
    }
    let segments = match &stories {
        Some(stories) => crate::kinds::tables::story_segments(stories, &path.display().to_string())?,
        None => Vec::new(),
    };
    let mut matrix = MatrixArtifact::new(Matrix::from_vec(rows, cols, data));
    matrix.segments = segments;
    Ok(matrix)
}
