//! `benchmark.table`: a user's sentence benchmark whose responses are a
//! matrix (a NumPy `.npy` through `load.matrix`, or any voxflow matrix) and
//! whose sentence ids are a table (CSV or Parquet through `load.table`),
//! assembled into the benchmark layout that `benchmark.sentences` reads.
//!
//! Inputs: `sentences` (a table with one row per row of the matrix, in the
//! same order: `sentence` and `passage` (integers), `text`, optionally
//! `subject`; other columns are left out) and `responses` (rows x units).
//! Param `units`: the response units' names (default `unit0`, `unit1`,
//! ...; as many as the matrix has columns, none named like an id column).
//!
//! Output `benchmark` (benchmark.parquet): the id columns, then one float64
//! column per unit. The result is checked as `benchmark.sentences` will
//! read it (each subject has each sentence once, a sentence stays in one
//! passage, values are finite), so a wrong file fails here, naming this
//! stage and the row.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use serde::{Deserialize, Serialize};

use super::benchmark::read_benchmark;
use super::table;
use crate::stage::{Kind, ParamError, StageContext, StageError};

const ID_COLUMNS: [&str; 4] = ["sentence", "passage", "text", "subject"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableParams {
    /// Names of the response columns; default `unit0`, `unit1`, ...
    #[serde(default)]
    pub units: Option<Vec<String>>,
}

pub struct BenchmarkTable;

impl Kind for BenchmarkTable {
    type Params = TableParams;
    const NAME: &'static str = "benchmark.table";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a sentence benchmark from a response matrix (.npy via load.matrix) and a table of sentence, passage, text, subject";
    const INPUTS: &'static [&'static str] = &["sentences", "responses"];
    const OUTPUTS: &'static [&'static str] = &["benchmark"];

    fn validate(&self, p: &TableParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if let Some(units) = &p.units {
            if let Some(bad) = units.iter().find(|u| ID_COLUMNS.contains(&u.as_str()) || u.is_empty()) {
                errors.push(
                    ParamError::new("units", format!("unit name `{bad}` is empty or an id column"))
                        .hint("name units other than sentence, passage, text and subject"),
                );
            }
            let mut sorted = units.clone();
            sorted.sort();
            if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
                errors.push(ParamError::new("units", format!("unit name `{}` appears twice", pair[0])));
            }
        }
        errors
    }

    fn run(&self, p: &TableParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let rows = ctx.input_table("sentences")?;
        let responses = ctx.input_matrix("responses")?.matrix;
        let (rows_stage, responses_stage) =
            (ctx.input("sentences")?.stage.clone(), ctx.input("responses")?.stage.clone());
        if rows.num_rows() != responses.rows {
            return Err(StageError::failed(format!(
                "{}: the sentences table of `{rows_stage}` has {} rows but the responses of `{responses_stage}` have {}",
                Self::NAME,
                rows.num_rows(),
                responses.rows
            ))
            .with_hint("give one table row per matrix row, in the same order"));
        }
        let names: Vec<String> = match &p.units {
            Some(units) if units.len() != responses.cols => {
                return Err(StageError::failed(format!(
                    "{}: `units` names {} units but the responses of `{responses_stage}` have {} columns",
                    Self::NAME,
                    units.len(),
                    responses.cols
                ))
                .with_hint("name every column of the matrix, or leave `units` out"))
            }
            Some(units) => units.clone(),
            None => (0..responses.cols).map(|u| format!("unit{u}")).collect(),
        };
        let mut columns: Vec<(&str, ArrayRef)> = Vec::new();
        for id in ID_COLUMNS {
            if let Some(column) = rows.column_by_name(id) {
                columns.push((id, column.clone()));
            }
        }
        for (u, name) in names.iter().enumerate() {
            let values = (0..responses.rows).map(|i| responses.get(i, u) as f64);
            columns.push((name.as_str(), Arc::new(Float64Array::from_iter_values(values))));
        }
        let batch = table(columns);
        read_benchmark(&batch, &format!("{}: the benchmark from `{rows_stage}` and `{responses_stage}`", Self::NAME))?;
        ctx.write_table("benchmark", &batch)
    }
}
