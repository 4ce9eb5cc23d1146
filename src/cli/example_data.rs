//! `voxflow example-data`: writes the generated dataset (synth.stories with
//! the given params) as files in the LeBel 2023 (ds003020) layout, and
//! prints the output directory.

use voxflow::kinds::synth::{Synth, SynthParams};
use voxflow::stage::Stage;

use super::args::ExampleDataArgs;
use super::error::{CliError, Problem};

pub fn example_data(args: &ExampleDataArgs) -> Result<(), CliError> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&args.params)
        .map_err(|error| CliError::usage(format!("--params is not YAML: {error}")))?;
    let value = serde_json::to_value(&yaml).map_err(|error| CliError::usage(format!("--params: {error}")))?;
    // The same checks as a synth.stories stage's params.
    let canonical = Synth.check_params(&value).map_err(|errors| {
        CliError::usage_all(
            errors
                .into_iter()
                .map(|error| {
                    let what = if error.path.is_empty() { String::new() } else { format!(" `{}`", error.path) };
                    Problem { message: format!("--params{what}: {}", error.message), hint: error.hint }
                })
                .collect(),
        )
    })?;
    let params: SynthParams = serde_json::from_value(canonical).map_err(|error| {
        CliError::usage(format!("--params: {error}")).with_hint("the keys are those of the synth.stories stage")
    })?;
    voxflow::kinds::synth::write_lebel_layout(&args.out, &params, &args.subject).map_err(CliError::failed)?;
    println!("{}", args.out.display());
    Ok(())
}
