//! `voxflow gc`: removes the store objects (and work directories of
//! resumable stages) that none of the given pipelines references, now, at
//! its last run or in its last `--keep-runs` recorded runs, names each
//! removed result by stage and run, and says how much the kept work
//! directories take. All the pipelines must share one store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use voxflow::exec::{self, Force};
use voxflow::store::Store;

use super::args::{Format, GcArgs};
use super::error::{CliError, EXIT_INVALID};

pub fn gc(args: &GcArgs) -> Result<(), CliError> {
    let mut keep = BTreeSet::new();
    // key -> (stage, the runs that made or used it), from every recorded run.
    let mut known: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut store_dir: Option<PathBuf> = args.store.clone();
    for path in &args.pipelines {
        let pipeline = voxflow::load_pipeline(path, &[], args.store.clone())
            .map_err(|diagnostics| CliError::invalid_pipeline(diagnostics, Format::Human))?;
        let store = super::open_store(&pipeline.store_dir)?;
        match &store_dir {
            Some(dir) if !same_dir(dir, &pipeline.store_dir) => {
                return Err(CliError::usage(format!(
                    "{} uses store {}, not {}",
                    path.display(),
                    pipeline.store_dir.display(),
                    dir.display()
                ))
                .with_hint("run gc once per store, or pass --store"));
            }
            _ => store_dir = Some(pipeline.store_dir.clone()),
        }
        for outcome in exec::plan(&pipeline, &store, &Force::Nothing) {
            if let Some(key) = outcome.key {
                keep.insert(key);
            }
        }
        keep.extend(store.load_state(&pipeline.name).stages.into_values().map(|s| s.key));
        let records = voxflow::history::list(&store, &pipeline.name);
        let kept_from = records.len().saturating_sub(args.keep_runs);
        for (n, record) in records.iter().enumerate() {
            for (stage, key) in record.result_keys() {
                if n >= kept_from {
                    keep.insert(key.clone());
                }
                let entry = known.entry(key).or_insert_with(|| (stage, Vec::new()));
                entry.1.push(format!("{} run {}", pipeline.name, record.id));
            }
        }
    }
    // clap requires at least one pipeline, so there is a store.
    let Some(store_dir) = store_dir else { return Err(CliError::quiet(EXIT_INVALID)) };
    let store = super::open_store(&store_dir)?;
    // Stage names of results no run recorded, read before they go.
    let (candidates, candidate_bytes) = store.gc(&keep, true)?;
    for key in &candidates {
        if !known.contains_key(key) {
            if let Some(stage) = manifest_stage(&store, key) {
                known.insert(key.clone(), (stage, Vec::new()));
            }
        }
    }
    let (removed, bytes) = if args.dry_run { (candidates, candidate_bytes) } else { store.gc(&keep, false)? };
    for name in store.stray_objects()? {
        eprintln!(
            "warning: objects/{name} is not an object directory (left in place; `voxflow verify --fix` removes it)"
        );
    }
    for key in &removed {
        let verb = if args.dry_run { "would remove" } else { "removed" };
        match known.get(key) {
            Some((stage, runs)) if runs.is_empty() => println!("{verb} {stage} {key} (in no recorded run)"),
            Some((stage, runs)) => println!("{verb} {stage} {key} ({})", runs.join(", ")),
            None => println!("{verb} {key}"),
        }
    }
    eprintln!(
        "{} entries, {:.1} MB{}",
        removed.len(),
        bytes as f64 / 1e6,
        if args.dry_run { " (dry run)" } else { "" }
    );
    // What stays: the work of interrupted resumable stages the pipelines still use.
    let removed: BTreeSet<&String> = removed.iter().collect();
    let kept: Vec<(String, u64)> =
        store.work_dirs().into_iter().filter(|(key, _)| !removed.contains(&format!("work/{key}"))).collect();
    if !kept.is_empty() {
        let total: u64 = kept.iter().map(|(_, size)| size).sum();
        eprintln!(
            "kept {} work director{} of interrupted stages the pipelines still use: {:.1} MB (a rerun resumes from them)",
            kept.len(),
            if kept.len() == 1 { "y" } else { "ies" },
            total as f64 / 1e6
        );
    }
    Ok(())
}

/// The stage a stored result says produced it.
fn manifest_stage(store: &Store, key: &str) -> Option<String> {
    let bytes = std::fs::read(store.object_dir(key).join("manifest.json")).ok()?;
    let manifest: voxflow::store::Manifest = serde_json::from_slice(&bytes).ok()?;
    Some(manifest.stage)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
