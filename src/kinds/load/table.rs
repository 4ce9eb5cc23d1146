//! `load.table`: a CSV, TSV, Parquet or Arrow table a user brings, stored
//! as Parquet. The file is hashed by content.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::extension;
use crate::artifact;
use crate::stage::{Kind, ParamError, StageContext, StageError};

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
    // 2: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 2;
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

pub(crate) fn read_csv(path: &Path, delimiter: u8, header: bool) -> Result<arrow::array::RecordBatch, StageError> {
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
