//! Rendering shared by subcommands: the one-line-per-stage table of `plan`
//! and `run`, a stage outcome as JSON, and arrow tables for the terminal.

use arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::Float64Type;

use voxflow::exec::StageOutcome;

/// One stage outcome as a JSON value (`--format json`).
pub fn outcome_json(outcome: &StageOutcome) -> serde_json::Value {
    serde_json::to_value(outcome).expect("outcome serialises")
}

/// One line per stage on stdout: status, name, seconds and reason, then the
/// error and hint of a failed stage on indented lines.
pub fn print_outcomes(outcomes: &[StageOutcome]) {
    let seconds: Vec<Option<f64>> = outcomes.iter().map(|o| Some(o.seconds)).collect();
    print_rows(outcomes, &seconds);
}

/// [`print_outcomes`] for a plan: the time column is each stage's last
/// measured time, `-` where none is known.
pub fn print_plan(outcomes: &[StageOutcome], last_seconds: &[Option<f64>]) {
    print_rows(outcomes, last_seconds);
}

fn print_rows(outcomes: &[StageOutcome], seconds: &[Option<f64>]) {
    let width = outcomes.iter().map(|o| o.name.len()).max().unwrap_or(5).min(60);
    for (outcome, seconds) in outcomes.iter().zip(seconds) {
        let time = match seconds {
            Some(seconds) => format!("{seconds:.2}s"),
            None => "-".into(),
        };
        let mut line =
            format!("{:<9} {:<width$} {:>9}  {}", outcome.status.as_str(), outcome.name, time, outcome.reason);
        if let Some(error) = &outcome.error {
            line.push_str(&format!("\n          error: {error}"));
        }
        if let Some(hint) = &outcome.hint {
            line.push_str(&format!("\n          hint: {hint}"));
        }
        println!("{}", line.trim_end());
    }
}

/// The table as text with floats rounded to 4 decimals, for the terminal.
pub fn pretty_table(table: &RecordBatch) -> Result<String, arrow::error::ArrowError> {
    arrow::util::pretty::pretty_format_batches(&[rounded(table)]).map(|table| table.to_string())
}

/// The table with floats rounded to 4 decimals.
fn rounded(table: &RecordBatch) -> RecordBatch {
    let columns = table
        .columns()
        .iter()
        .map(|column| match column.as_primitive_opt::<Float64Type>() {
            Some(values) => {
                let rounded: Float64Array = values.iter().map(|v| v.map(|v| (v * 1e4).round() / 1e4)).collect();
                std::sync::Arc::new(rounded) as ArrayRef
            }
            None => column.clone(),
        })
        .collect();
    RecordBatch::try_new(table.schema(), columns).unwrap_or_else(|_| table.clone())
}
