//! Checkpoint directories written atomically: the files go into a temp
//! directory beside the target, are synced, and the directory is renamed
//! into place, so a reader sees the old checkpoint or the new one, never a
//! half-written one.

use std::path::{Path, PathBuf};

use super::TrainError;

fn sibling(dir: &Path, tag: &str) -> Result<PathBuf, TrainError> {
    let name = dir
        .file_name()
        .ok_or_else(|| TrainError::file(dir, "a checkpoint directory needs a name"))?
        .to_string_lossy()
        .to_string();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(dir.with_file_name(format!(".{name}.{tag}-{}-{nanos}", std::process::id())))
}

fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::file(dir, e))? {
        let path = entry.map_err(|e| TrainError::file(dir, e))?.path();
        if path.is_file() {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| TrainError::file(&path, e))?;
        }
    }
    // Directory fsync: best effort (not every filesystem supports it).
    let _ = std::fs::File::open(dir).and_then(|f| f.sync_all());
    Ok(())
}

/// Writes `dir` with `write` (which fills the directory it is given),
/// replacing an existing `dir` only once everything is written.
pub fn write_dir_atomically(dir: &Path, write: impl FnOnce(&Path) -> Result<(), TrainError>) -> Result<(), TrainError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| TrainError::file(parent, e))?;
    }
    let tmp = sibling(dir, "tmp")?;
    std::fs::create_dir(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    let result = write(&tmp).and_then(|()| sync_dir(&tmp));
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(error);
    }
    // rename(2) does not replace a non-empty directory: move the old one aside first.
    let old = if dir.exists() {
        let old = sibling(dir, "old")?;
        std::fs::rename(dir, &old).map_err(|e| TrainError::file(dir, e))?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(TrainError::file(dir, e));
    }
    if let Some(parent) = dir.parent() {
        let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_directories_and_leaves_nothing_on_failure() {
        let root = std::env::temp_dir().join(format!("voxflow-ckpt-{}", std::process::id()));
        let dir = root.join("ckpt");
        write_dir_atomically(&dir, |d| std::fs::write(d.join("a"), "1").map_err(|e| TrainError::file(d, e))).unwrap();
        write_dir_atomically(&dir, |d| std::fs::write(d.join("b"), "2").map_err(|e| TrainError::file(d, e))).unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(std::fs::read_to_string(dir.join("b")).unwrap(), "2");
        let failed = write_dir_atomically(&dir, |d| {
            std::fs::write(d.join("c"), "3").unwrap();
            Err(TrainError::Config("boom".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(dir.join("b")).unwrap(), "2");
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ckpt")]);
        std::fs::remove_dir_all(root).unwrap();
    }
}
