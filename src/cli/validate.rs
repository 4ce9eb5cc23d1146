//! `voxflow validate`: checks a pipeline file and reports every problem at
//! once, or says how many stages it has before and after matrix expansion.

use std::collections::BTreeSet;

use serde_json::json;

use super::args::{Format, PipelineArgs};
use super::error::CliError;

pub fn validate(args: &PipelineArgs) -> Result<(), CliError> {
    let pipeline = super::load(args)?;
    let bases: BTreeSet<&str> = pipeline.stages.iter().map(|s| s.base.as_str()).collect();
    if args.format == Format::Json {
        println!(
            "{}",
            json!({"valid": true, "pipeline": pipeline.name, "stages": pipeline.stages.len(), "stages_in_file": bases.len()})
        );
    } else {
        println!(
            "{}: valid, {} stages ({} after matrix expansion)",
            args.pipeline.display(),
            bases.len(),
            pipeline.stages.len()
        );
    }
    Ok(())
}
