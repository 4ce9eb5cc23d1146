//! `voxflow report`: writes an HTML page of one recorded run of the
//! pipeline (`--run N`, default the last) and prints the page's path.

use voxflow::exec::RunSummary;

use super::args::ReportArgs;
use super::error::CliError;

pub fn report(args: &ReportArgs) -> Result<(), CliError> {
    let (pipeline, store, run) = super::chosen_run(&args.pipeline, args.run)?;
    // A store written before runs were recorded has the last run's outcome only.
    let summary: Option<RunSummary> = match &run {
        Some(_) => None,
        None => std::fs::read(store.last_run_path(&pipeline.name)).ok().and_then(|b| serde_json::from_slice(&b).ok()),
    };
    let html = voxflow::report::render(&pipeline, &store, summary.as_ref(), run.as_ref());
    let out = args.out.clone().unwrap_or_else(|| store.root().join("reports").join(format!("{}.html", pipeline.name)));
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    voxflow::store::write_atomic(&out, html.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}
