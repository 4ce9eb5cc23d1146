//! `voxflow init DIR`: a starter pipeline (`pipeline.yaml`, from a template
//! that runs as written), a README of the commands, a `.gitignore` for the
//! store and, for the `command` template, the scripts its stages call.
//! Never overwrites: a file that is already there stops it before anything
//! is written.

use std::path::{Path, PathBuf};

use super::args::{InitArgs, InitTemplate};
use super::error::CliError;

const ENCODING: &str = include_str!("init/encoding.yaml");
const COMMAND: &str = include_str!("init/command.yaml");
const NUMBERS: &str = include_str!("init/numbers.sh");
const POWER: &str = include_str!("init/power.sh");
const README: &str = include_str!("init/README.md");

pub fn init(args: &InitArgs) -> Result<(), CliError> {
    let dir = &args.dir;
    let name = args.name.clone().unwrap_or_else(|| pipeline_name(dir));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(CliError::usage(format!("`{name}` cannot name a pipeline"))
            .with_hint("pass --name with letters, digits, `_` and `-` only"));
    }
    let pipeline = match args.template {
        InitTemplate::Encoding => ENCODING,
        InitTemplate::Command => COMMAND,
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join("pipeline.yaml"), pipeline.replace("name: NAME", &format!("name: {name}"))),
        (dir.join("README.md"), README.replace("# NAME", &format!("# {name}"))),
        (dir.join(".gitignore"), ".voxflow/\n".to_string()),
    ];
    if args.template == InitTemplate::Command {
        files.push((dir.join("scripts/numbers.sh"), NUMBERS.to_string()));
        files.push((dir.join("scripts/power.sh"), POWER.to_string()));
    }
    let present: Vec<String> = files.iter().filter(|(p, _)| p.exists()).map(|(p, _)| p.display().to_string()).collect();
    if !present.is_empty() {
        return Err(CliError::usage(format!(
            "{} already there: voxflow init writes no file over another",
            present.join(", ")
        ))
        .with_hint("choose an empty or new directory, or move those files away"));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        voxflow::store::write_atomic(path, text.as_bytes())?;
    }
    let pipeline = dir.join("pipeline.yaml");
    println!("wrote {}", files.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", "));
    println!("next: voxflow run {}", pipeline.display());
    Ok(())
}

/// The directory's name, as a pipeline name (other characters become `_`).
fn pipeline_name(dir: &Path) -> String {
    let base = std::fs::canonicalize(dir)
        .ok()
        .or_else(|| Some(dir.to_path_buf()))
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "pipeline".into());
    base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}
