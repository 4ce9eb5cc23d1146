//! `load.table` and `load.matrix`: bring a user's file into the store. The
//! file is hashed by content (the key does not see its path), so moving it
//! changes nothing and editing it reruns what depends on it.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Kind, ParamError, StageContext, StageError};
use crate::artifact::{self, MatrixArtifact};
use crate::numeric::matrix::first_non_finite;
use crate::numeric::Matrix;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadTableParams {
    /// CSV, TSV, Parquet or Arrow IPC (.arrow/.feather) file, relative to the
    /// pipeline file.
    pub path: String,
    /// Field separator for text files; default `,` (`\t` for .tsv).
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default = "yes")]
    pub header: bool,
}

fn yes() -> bool {
    true
}

pub struct LoadTable;

impl Kind for LoadTable {
    type Params = LoadTableParams;
    const NAME: &'static str = "load.table";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "read a CSV, TSV or Parquet table into the store";
    const OUTPUTS: &'static [&'static str] = &["table"];

    fn validate(&self, parsed: &LoadTableParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if let Some(delimiter) = &parsed.delimiter {
            if delimiter != "\\t" && delimiter.len() != 1 {
                errors.push(ParamError::new("delimiter", format!("`{delimiter}` is not one character")));
            }
        }
        let extension = extension(&parsed.path);
        if !["csv", "tsv", "txt", "parquet", "arrow", "feather"].contains(&extension.as_str()) {
            errors.push(
                ParamError::new("path", format!("cannot load `.{extension}` files as tables"))
                    .hint("use .csv, .tsv, .parquet or .arrow/.feather"),
            );
        }
        errors
    }

    fn file_params(&self, params: &LoadTableParams) -> Vec<(String, String)> {
        vec![("path".to_string(), params.path.clone())]
    }

    fn run(&self, params: &LoadTableParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let path = ctx.resolve(&params.path);
        let batch = if ["parquet", "arrow", "feather"].contains(&extension(&params.path).as_str()) {
            artifact::read_batch(&path)?
        } else {
            let delimiter = match params.delimiter.as_deref() {
                Some("\\t") => b'\t',
                Some(d) => d.as_bytes()[0],
                None if extension(&params.path) == "tsv" => b'\t',
                None => b',',
            };
            read_csv(&path, delimiter, params.header)?
        };
        ctx.write_table("table", &batch)
    }
}

fn read_csv(path: &Path, delimiter: u8, header: bool) -> Result<arrow::array::RecordBatch, StageError> {
    use arrow::csv::reader::{Format, ReaderBuilder};
    let fail = |e: &dyn std::fmt::Display| StageError::failed(format!("{}: {e}", path.display()));
    let format = Format::default().with_header(header).with_delimiter(delimiter);
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let (schema, _) = format.infer_schema(file, Some(10_000)).map_err(|e| fail(&e))?;
    let schema = Arc::new(schema);
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let reader = ReaderBuilder::new(schema.clone()).with_format(format).build(file).map_err(|e| fail(&e))?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| fail(&e))?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| fail(&e))
}

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
            stories = Some(super::tables::text_column(&batch, "story", &path.display().to_string())?);
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
        Some(stories) => super::tables::story_segments(stories, &path.display().to_string())?,
        None => Vec::new(),
    };
    let mut matrix = MatrixArtifact::new(Matrix::from_vec(rows, cols, data));
    matrix.segments = segments;
    Ok(matrix)
}

fn extension(path: &str) -> String {
    Path::new(path).extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default()
}
