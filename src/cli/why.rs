//! `voxflow why`: explains why a stage is (or is not) fresh: its key now,
//! its key at the last run, and the reasons they differ.

use serde_json::json;

use voxflow::exec::{self, Force};

use super::args::{Format, StageArgs};
use super::error::CliError;
use super::output::outcome_json;

pub fn why(args: &StageArgs) -> Result<(), CliError> {
    let (pipeline, store) = super::open(&args.pipeline)?;
    let selected = super::select_stages(&pipeline, &args.stage)?;
    let outcomes = exec::plan(&pipeline, &store, &Force::Nothing);
    let state = store.load_state(&pipeline.name);
    if args.pipeline.format == Format::Json {
        let stages: Vec<_> = selected
            .iter()
            .map(|&i| {
                let mut value = outcome_json(&outcomes[i]);
                value["last_key"] = json!(state.stages.get(&pipeline.stages[i].name).map(|s| s.key.clone()));
                value
            })
            .collect();
        println!("{}", json!({"pipeline": pipeline.name, "stages": stages}));
        return Ok(());
    }
    for i in selected {
        let outcome = &outcomes[i];
        let last = state.stages.get(&outcome.name).map(|s| s.key.as_str()).unwrap_or("(never run)");
        println!("{} ({}): {}", outcome.name, outcome.kind, outcome.status.as_str());
        println!("  key now:      {}", outcome.key.as_deref().unwrap_or("(not known until upstream stages run)"));
        println!("  key last run: {last}");
        for reason in &outcome.reasons {
            println!("  - {reason}");
        }
        if outcome.reasons.is_empty() && !outcome.reason.is_empty() {
            println!("  - {}", outcome.reason);
        }
    }
    Ok(())
}
