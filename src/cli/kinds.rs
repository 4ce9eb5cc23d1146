//! `voxflow kinds`: lists the stage kinds with their versions and summaries.

use super::error::CliError;

pub fn kinds() -> Result<(), CliError> {
    for kind in voxflow::stage::KINDS {
        println!("{:<28} v{}  {}", kind.kind(), kind.version(), kind.summary());
    }
    Ok(())
}
