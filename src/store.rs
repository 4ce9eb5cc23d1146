//! The artifact store: a directory (default `.voxflow/` beside the pipeline)
//! that holds every stage result under its key.
//!
//! ```text
//! .voxflow/
//!   objects/<key>/manifest.json   key record, output digests, shapes, timings
//!   objects/<key>/<output files>  .arrow matrices, .parquet tables, files
//!   objects/<key>/logs/           stdout/stderr of command stages
//!   tmp/<key>.<pid>.<n>/          a stage being written (never read as a result)
//!   failed/<key>/                 the staging directory (logs) of a failed stage
//!   damaged/<key>/                an object whose bytes no longer match its manifest
//!   slurm-logs/<pipeline>/        logs of cluster jobs until their result lands
//!   work/<key>/                   a resumable stage's work (checkpoints) across attempts
//!   locks/<key>.lock              one writer per key across processes
//!   runs/<pipeline>.state.json    each stage's last key record (for `why`)
//!   runs/<pipeline>.last.json     the last run's outcome (`report` of a store without history)
//!   runs/<pipeline>/<id>.json     one record per run (`crate::history`)
//!   memo.json                     (path, size, mtime, inode) -> content digest
//! ```
//!
//! **Invariant:** an object directory exists only complete. A stage writes into
//! `tmp/`, its manifest last, and the directory is renamed into `objects/` in one
//! step while the key's lock is held; a killed run leaves at most a stray
//! `tmp/` entry, which `gc` removes.
//!
//! **Invariant:** a stage never computes from bytes whose digest differs from
//! the manifest's. Before a stage runs, [`Store::check_object`] re-hashes
//! each object it reads (once per process: an object committed by this
//! process was hashed as it was committed); a mismatch fails the stage, and
//! [`Store::quarantine`] moves the object to `damaged/<key>/`, so the next
//! run rebuilds it first.
//!
//! A commit does not fsync. A killed run loses nothing it renamed into
//! `objects/` (the kernel has the bytes). After a crash of the machine, an
//! object whose bytes had not reached the disk has a manifest that is
//! missing, empty or unparsable, or an output of the wrong size (journaled
//! ext4, XFS and btrfs never show a file's unwritten bytes as data), and
//! [`Store::lookup`] calls it damaged, so it is rebuilt; a manifest naming
//! another key is refused too. The outputs were never synced, so the one
//! fsync of the manifest per stage that commits used to do kept no result
//! safe by itself; it made every stage wait for the disk's cache flush
//! (1-1.6 ms each on this project's machines, one at a time across `-j`
//! slots; benches/README.md). The run's own files (`runs/`, `memo.json`)
//! are still written with [`write_atomic`], once per run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::key::KeyRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("store {path}: {message}")]
    Corrupt { path: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// Where a resumable stage stands: its last reported progress and note.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// The last note ("resuming from step 500 of 2000"), if any.
    #[serde(default)]
    pub note: Option<String>,
    /// When it was reported (RFC 3339).
    pub at: String,
}

/// One output of a stage, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputEntry {
    /// File name inside the object directory.
    pub file: String,
    /// BLAKE3 of the file's bytes (128 bits, hex); for a directory, its
    /// [`tree_digest`].
    pub digest: String,
    /// The file's size; for a directory, the sum of its files' sizes.
    pub bytes: u64,
    /// `matrix`, `table`, `file` or `dir` (a directory: a model checkpoint).
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shape: Option<Vec<usize>>,
}

/// What `objects/<key>/manifest.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub record: KeyRecord,
    /// The stage that produced it (informational: one object can serve several).
    pub stage: String,
    pub outputs: BTreeMap<String, OutputEntry>,
    /// Digest over all outputs: what a downstream stage that takes the whole
    /// stage as input puts in its key.
    pub digest: String,
    pub seconds: f64,
    pub finished_at: String,
    pub voxflow_version: String,
    pub host: String,
    pub device: String,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub logs: Vec<String>,
    /// SVG figures (relative paths) for the run report.
    #[serde(default)]
    pub figures: Vec<String>,
    /// Why a rerun may not write the same bytes (GPU training), when the
    /// stage says so; absent for stages whose reruns are identical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nondeterministic: Option<String>,
}

impl Manifest {
    /// The digest a consumer's key uses for `output` (or all outputs).
    pub fn digest_of(&self, output: Option<&str>) -> Option<String> {
        match output {
            None => Some(self.digest.clone()),
            Some(name) => self.outputs.get(name).map(|o| o.digest.clone()),
        }
    }
}

/// The combined digest of a set of outputs.
pub fn combined_digest(outputs: &BTreeMap<String, OutputEntry>) -> String {
    let mut hasher = blake3::Hasher::new();
    for (name, entry) in outputs {
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(entry.digest.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// Whether a key's result is usable.
#[derive(Debug)]
pub enum Lookup {
    Fresh(Box<Manifest>),
    Missing,
    Damaged(String),
}

/// A stage's entry in `runs/<pipeline>.state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageState {
    pub key: String,
    pub record: KeyRecord,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipelineState {
    pub stages: BTreeMap<String, StageState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoEntry {
    size: u64,
    mtime_ns: i128,
    inode: u64,
    digest: String,
}

/// The store handle; cheap to share between threads.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    memo: Mutex<HashMap<String, MemoEntry>>,
    memo_dirty: Mutex<bool>,
    /// Objects whose bytes this process hashed and found as their manifests
    /// say (or committed itself): [`Store::check_object`] hashes each once.
    verified: Mutex<HashSet<String>>,
}

static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for sub in ["objects", "tmp", "locks", "runs"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let memo_path = root.join("memo.json");
        let memo = fs::read(&memo_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
        Ok(Store {
            root: root.to_path_buf(),
            memo: Mutex::new(memo),
            memo_dirty: Mutex::new(false),
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Opens the store at `root` only if it exists (`verify` never creates one).
    pub fn open_existing(root: &Path) -> Result<Store, StoreError> {
        if !root.join("objects").is_dir() {
            return Err(StoreError::Corrupt {
                path: root.display().to_string(),
                message: "no store here (no objects/ directory)".into(),
            });
        }
        Store::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn object_dir(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(key)
    }

    /// Checks that the result for `key` is complete: its manifest parses and
    /// every output file is there with its recorded size. (`verify` re-hashes.)
    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.object_dir(key);
        let manifest_path = dir.join("manifest.json");
        let bytes = match fs::read(&manifest_path) {
            Ok(bytes) => bytes,
            // No object directory (one metadata call: the usual case of a stage never built).
            Err(_) if !dir.exists() => {
                let damaged = self.root.join("damaged").join(key);
                if damaged.exists() {
                    return Lookup::Damaged(format!(
                        "a stage that read it found its bytes changed; it was moved to {}",
                        damaged.display()
                    ));
                }
                return Lookup::Missing;
            }
            Err(error) => return Lookup::Damaged(format!("{}: {error}", manifest_path.display())),
        };
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(manifest) => manifest,
            Err(error) => return Lookup::Damaged(format!("{}: {error}", manifest_path.display())),
        };
        if manifest.key != key {
            // Bytes of another object (a crash can leave a file pointing at
            // stale blocks): never taken for this key's result.
            return Lookup::Damaged(format!("{}: the manifest is for key {}", manifest_path.display(), manifest.key));
        }
        for (name, output) in &manifest.outputs {
            let path = dir.join(&output.file);
            match output_size(&path) {
                Ok(bytes) if bytes == output.bytes => {}
                Ok(bytes) => {
                    return Lookup::Damaged(format!(
                        "output `{name}` ({}) has {bytes} bytes, the manifest says {}",
                        path.display(),
                        output.bytes
                    ))
                }
                Err(_) => return Lookup::Damaged(format!("output `{name}` ({}) is missing", path.display())),
            }
        }
        Lookup::Fresh(Box::new(manifest))
    }

    /// Takes the per-key lock, waiting for another process that holds it.
    pub fn lock(&self, key: &str) -> Result<File, StoreError> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = File::create(&path).map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// A fresh, empty directory to write a stage's outputs into.
    pub fn staging_dir(&self, key: &str) -> Result<PathBuf, StoreError> {
        let n = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join("tmp").join(format!("{key}.{}.{n}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Writes the manifest into `staging` and moves it to `objects/<key>`.
    /// The caller holds the key's lock. Nothing is fsynced (see the module
    /// documentation: `lookup` finds what a crash did not keep).
    pub fn commit(&self, staging: &Path, manifest: &Manifest) -> Result<(), StoreError> {
        let manifest_path = staging.join("manifest.json");
        let text = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
        fs::write(&manifest_path, &text).map_err(io(&manifest_path))?;
        let target = self.object_dir(&manifest.key);
        if target.exists() {
            // A damaged object for the same key: replace it.
            fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        fs::rename(staging, &target).map_err(io(&target))?;
        // Its digests were just computed from these bytes.
        self.verified.lock().expect("verified lock").insert(manifest.key.clone());
        Ok(())
    }

    /// Re-hashes the outputs of the object `manifest` describes (once per
    /// process) and checks them against the manifest: each output's digest
    /// and size, and the combined digest downstream keys are built from.
    /// `Err` names the first output (or field) that disagrees.
    pub fn check_object(&self, manifest: &Manifest) -> Result<(), String> {
        if self.verified.lock().expect("verified lock").contains(&manifest.key) {
            return Ok(());
        }
        if let Some(problem) = manifest_problems(&self.object_dir(&manifest.key), manifest).into_iter().next() {
            return Err(problem);
        }
        self.verified.lock().expect("verified lock").insert(manifest.key.clone());
        Ok(())
    }

    /// Moves the object of `key` out of `objects/` to `damaged/<key>/` (under
    /// its lock), so it is no longer fresh and the next run rebuilds it; the
    /// bytes stay there to look at until `gc` removes them.
    pub fn quarantine(&self, key: &str) -> Result<PathBuf, StoreError> {
        let _lock = self.lock(key)?;
        let damaged = self.root.join("damaged");
        let target = damaged.join(key);
        let dir = self.object_dir(key);
        if !dir.exists() {
            // Another stage of this run found it first.
            return Ok(target);
        }
        fs::create_dir_all(&damaged).map_err(io(&damaged))?;
        if target.exists() {
            fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        fs::rename(&dir, &target).map_err(io(&dir))?;
        self.verified.lock().expect("verified lock").remove(key);
        Ok(target)
    }

    /// The work directory of `key` (`work/<key>/`), created if needed: what
    /// a resumable stage keeps across attempts. The caller holds the key's lock.
    pub fn work_dir(&self, key: &str) -> Result<PathBuf, StoreError> {
        let dir = self.work_path(key);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    pub fn work_path(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    /// Removes the work directory of `key` (its result is committed).
    pub fn remove_work(&self, key: &str) -> Result<(), StoreError> {
        let dir = self.work_path(key);
        match fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io(&dir)(error)),
            _ => Ok(()),
        }
    }

    /// Records where the stage of `key` stands (`work/<key>/progress.json`),
    /// for `voxflow show` and for a scheduler following a cluster job.
    pub fn save_progress(&self, key: &str, progress: &Progress) -> Result<(), StoreError> {
        let text = serde_json::to_vec(progress).expect("progress serialises");
        write_atomic(&self.work_path(key).join("progress.json"), &text)
    }

    /// The last progress the stage of `key` reported, if it kept a work directory.
    pub fn load_progress(&self, key: &str) -> Option<Progress> {
        let bytes = fs::read(self.work_path(key).join("progress.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The work directories there are, with their sizes in bytes.
    pub fn work_dirs(&self) -> Vec<(String, u64)> {
        let root = self.root.join("work");
        let Ok(entries) = fs::read_dir(&root) else { return Vec::new() };
        let mut dirs: Vec<(String, u64)> = entries
            .filter_map(|e| e.ok())
            .map(|entry| (entry.file_name().to_string_lossy().to_string(), dir_size(&entry.path())))
            .collect();
        dirs.sort();
        dirs
    }

    /// Removes the result of `key` (used before a forced or repaired
    /// rebuild), or a stray file of that name in `objects/`.
    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        let dir = self.object_dir(key);
        let removed = match fs::symlink_metadata(&dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => Err(error),
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&dir),
            Ok(_) => fs::remove_file(&dir),
        };
        removed.map_err(io(&dir))
    }

    /// Content digest of a file or directory, memoised by (path, size, mtime, inode).
    pub fn content_digest(&self, path: &Path) -> Result<String, StoreError> {
        let meta = fs::metadata(path).map_err(io(path))?;
        if meta.is_dir() {
            return tree_digest(path, |file| self.content_digest(file));
        }
        let absolute = fs::canonicalize(path).map_err(io(path))?;
        let id = absolute.to_string_lossy().to_string();
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        if let Some(entry) = self.memo.lock().expect("memo lock").get(&id) {
            if entry.size == meta.len() && entry.mtime_ns == mtime_ns && entry.inode == meta.ino() {
                return Ok(entry.digest.clone());
            }
        }
        let digest = file_digest(path)?;
        self.memo
            .lock()
            .expect("memo lock")
            .insert(id, MemoEntry { size: meta.len(), mtime_ns, inode: meta.ino(), digest: digest.clone() });
        *self.memo_dirty.lock().expect("memo lock") = true;
        Ok(digest)
    }

    /// Saves the digest memo if it changed.
    pub fn save_memo(&self) -> Result<(), StoreError> {
        if !std::mem::take(&mut *self.memo_dirty.lock().expect("memo lock")) {
            return Ok(());
        }
        let memo = self.memo.lock().expect("memo lock");
        let text = serde_json::to_vec(&*memo).expect("memo serialises");
        write_atomic(&self.root.join("memo.json"), &text)
    }

    fn state_path(&self, pipeline: &str) -> PathBuf {
        self.root.join("runs").join(format!("{pipeline}.state.json"))
    }

    pub fn load_state(&self, pipeline: &str) -> PipelineState {
        fs::read(self.state_path(pipeline))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Merges `updates` into the pipeline's state under its lock.
    pub fn update_state(&self, pipeline: &str, updates: BTreeMap<String, StageState>) -> Result<(), StoreError> {
        let lock_path = self.root.join("locks").join(format!("state-{pipeline}.lock"));
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let mut state = self.load_state(pipeline);
        let changed = updates.iter().any(|(name, new)| state.stages.get(name).is_none_or(|old| old.key != new.key));
        if !changed {
            return Ok(());
        }
        state.stages.extend(updates);
        let text = serde_json::to_vec(&state).expect("state serialises");
        write_atomic(&self.state_path(pipeline), &text)
    }

    pub fn last_run_path(&self, pipeline: &str) -> PathBuf {
        self.root.join("runs").join(format!("{pipeline}.last.json"))
    }

    /// Every key that has an object directory.
    pub fn object_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.object_entries()?.into_iter().filter(|(_, is_dir)| *is_dir).map(|(name, _)| name).collect())
    }

    /// Entries of `objects/` that are not directories (a stray file, a
    /// link): no run wrote them; `verify` reports them, `gc` leaves them.
    pub fn stray_objects(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.object_entries()?.into_iter().filter(|(_, is_dir)| !*is_dir).map(|(name, _)| name).collect())
    }

    /// The names in `objects/`, sorted, each with whether it is a directory.
    fn object_entries(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let dir = self.root.join("objects");
        let mut entries: Vec<(String, bool)> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|entry| entry.ok())
            .map(|entry| {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                (entry.file_name().to_string_lossy().to_string(), is_dir)
            })
            .collect();
        entries.sort();
        Ok(entries)
    }

    /// Removes every object whose key is not in `keep`, the work directories
    /// of other keys, and abandoned staging directories. Returns the removed
    /// keys (`work/<key>`, `tmp/<name>` for the others) and the bytes freed.
    pub fn gc(&self, keep: &BTreeSet<String>, dry_run: bool) -> Result<(Vec<String>, u64), StoreError> {
        let mut removed = Vec::new();
        let mut bytes = 0;
        for key in self.object_keys()? {
            if keep.contains(&key) {
                continue;
            }
            let dir = self.object_dir(&key);
            bytes += dir_size(&dir);
            if !dry_run {
                let _lock = self.lock(&key)?;
                fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            removed.push(key);
        }
        // Work directories of keys no pipeline references, unless a live run holds them.
        for (key, size) in self.work_dirs() {
            if keep.contains(&key) {
                continue;
            }
            let lock_path = self.root.join("locks").join(format!("{key}.lock"));
            let free = File::create(&lock_path).map(|f| f.try_lock().is_ok()).unwrap_or(false);
            if free {
                bytes += size;
                if !dry_run {
                    self.remove_work(&key)?;
                }
                removed.push(format!("work/{key}"));
            }
        }
        // Quarantined objects: their keys are rebuilt under `objects/`.
        let damaged = self.root.join("damaged");
        for entry in fs::read_dir(&damaged).into_iter().flatten().filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().to_string();
            bytes += dir_size(&entry.path());
            if !dry_run {
                fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            }
            removed.push(format!("damaged/{name}"));
        }
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))?.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().to_string();
            let key = name.split('.').next().unwrap_or_default().to_string();
            let lock_path = self.root.join("locks").join(format!("{key}.lock"));
            // A staging directory whose key is unlocked belongs to no live run.
            let free = File::create(&lock_path).map(|f| f.try_lock().is_ok()).unwrap_or(false);
            if free {
                bytes += dir_size(&entry.path());
                if !dry_run {
                    fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
                }
                removed.push(format!("tmp/{name}"));
            }
        }
        Ok((removed, bytes))
    }

    /// Re-hashes every output of every object and checks each manifest
    /// (its key, its outputs' digests and sizes, its combined digest);
    /// returns the problems found, stray entries of `objects/` included.
    pub fn verify(&self) -> Result<Vec<VerifyProblem>, StoreError> {
        let mut problems = Vec::new();
        for name in self.stray_objects()? {
            problems.push(VerifyProblem {
                key: name,
                stage: None,
                detail: "not an object directory (a stray file in objects/)".into(),
            });
        }
        for key in self.object_keys()? {
            let dir = self.object_dir(&key);
            let manifest: Manifest =
                match fs::read(dir.join("manifest.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                    Some(m) => m,
                    None => {
                        problems.push(VerifyProblem {
                            key,
                            stage: None,
                            detail: "manifest.json missing or unreadable".into(),
                        });
                        continue;
                    }
                };
            if manifest.key != key || manifest.record.key() != key {
                problems.push(VerifyProblem {
                    key: key.clone(),
                    stage: Some(manifest.stage.clone()),
                    detail: "manifest key does not match its directory".into(),
                });
            }
            for detail in manifest_problems(&dir, &manifest) {
                problems.push(VerifyProblem { key: key.clone(), stage: Some(manifest.stage.clone()), detail });
            }
        }
        Ok(problems)
    }
}

/// What disagrees between the object in `dir` and its manifest: each
/// output's digest and size (re-hashed), and the combined digest.
fn manifest_problems(dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, output) in &manifest.outputs {
        let path = dir.join(&output.file);
        match output_digest(&path) {
            Ok((digest, _)) if digest != output.digest => problems.push(format!(
                "output `{name}` digest {digest} != recorded {} ({})",
                output.digest,
                path.display()
            )),
            Ok((_, bytes)) if bytes != output.bytes => problems.push(format!(
                "output `{name}` has {bytes} bytes, the manifest says {} ({})",
                output.bytes,
                path.display()
            )),
            Ok(_) => {}
            Err(error) => problems.push(format!("output `{name}`: {error}")),
        }
    }
    let combined = combined_digest(&manifest.outputs);
    if combined != manifest.digest {
        problems.push(format!(
            "combined digest {} in the manifest != {combined} from its outputs' digests",
            manifest.digest
        ));
    }
    problems
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyProblem {
    pub key: String,
    pub stage: Option<String>,
    pub detail: String,
}

/// The digest of a directory: BLAKE3 over its files in sorted order, each as
/// its path relative to `dir`, a NUL, the file's own digest (`digest`) and
/// a newline. Names and contents (hence sizes) enter it; mtimes do not. The
/// same for a directory a param names (keyed by content) and a directory a
/// stage writes as an output, so a model fed by path and the same model fed
/// as an upstream output key the same.
pub fn tree_digest(
    dir: &Path,
    mut digest: impl FnMut(&Path) -> Result<String, StoreError>,
) -> Result<String, StoreError> {
    let mut entries: Vec<PathBuf> = Vec::new();
    collect_files(dir, &mut entries).map_err(io(dir))?;
    entries.sort();
    let mut hasher = blake3::Hasher::new();
    for entry in entries {
        let relative = entry.strip_prefix(dir).unwrap_or(&entry);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        hasher.update(digest(&entry)?.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

/// The digest and size of an output: a file's [`file_digest`], or a
/// directory's [`tree_digest`] and the sum of its files' sizes.
pub fn output_digest(path: &Path) -> Result<(String, u64), StoreError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        Ok((tree_digest(path, file_digest)?, dir_size(path)))
    } else {
        Ok((file_digest(path)?, meta.len()))
    }
}

/// The first symbolic link at `path` or below it (a directory output), if
/// any, with where it points. A stored artifact must be a regular file or a
/// directory of regular files: a link's target can change after the object
/// is stored, and the stored result with it.
pub fn find_symlink(path: &Path) -> Result<Option<(PathBuf, PathBuf)>, StoreError> {
    let meta = fs::symlink_metadata(path).map_err(io(path))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).unwrap_or_default();
        return Ok(Some((path.to_path_buf(), target)));
    }
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> =
            fs::read_dir(path).map_err(io(path))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for entry in entries {
            if let Some(found) = find_symlink(&entry)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// The size of an output as the manifest records it (a directory: its files' sum).
fn output_size(path: &Path) -> std::io::Result<u64> {
    let meta = fs::metadata(path)?;
    Ok(if meta.is_dir() { dir_size(path) } else { meta.len() })
}

/// BLAKE3 of a file's bytes (128 bits, hex).
pub fn file_digest(path: &Path) -> Result<String, StoreError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = blake3::Hasher::new();
    // Reads of up to 1 MiB, but no bigger buffer than the file needs: most
    // outputs are small, and zeroing 1 MiB per file was a visible part of a
    // trivial stage's cost.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buffer = vec![0u8; (len as usize).saturating_add(1).clamp(4096, 1 << 20)];
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = temp_beside(path);
    let result = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path).map_err(io(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Like [`write_atomic`] for writers that need a path (Parquet, CSV):
/// `write` fills a temporary file beside `path`, which is synced and renamed
/// into place, so a reader sees the old file or the whole new one. On
/// failure the temporary file is removed and `path` is left as it was.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let tmp = temp_beside(path);
    let result = write(&tmp)
        .and_then(|()| File::open(&tmp).and_then(|file| file.sync_all()).map_err(|e| format!("{}: {e}", tmp.display())))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display())));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A temporary name beside `path`, unique within this process.
fn temp_beside(path: &Path) -> PathBuf {
    let n = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_extension(format!("tmp.{}.{n}", std::process::id()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut file = File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let mut files = Vec::new();
    let _ = collect_files(dir, &mut files);
    files.iter().filter_map(|f| fs::metadata(f).ok()).map(|m| m.len()).sum()
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::testing::{fresh_rng, Scratch};

    /// Stages one object with two outputs of random bytes and returns its
    /// manifest (not yet committed) and staging directory.
    fn staged(store: &Store, rng: &mut impl Rng, seed: u64) -> (Manifest, PathBuf) {
        let record = KeyRecord {
            kind: "command".into(),
            version: 1,
            params: serde_json::json!({ "seed": seed }),
            inputs: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        let key = record.key();
        let staging = store.staging_dir(&key).unwrap();
        let mut outputs = BTreeMap::new();
        for name in ["a", "b"] {
            let bytes: Vec<u8> = (0..rng.random_range(1..4096)).map(|_| rng.random()).collect();
            let file = format!("{name}.bin");
            fs::write(staging.join(&file), &bytes).unwrap();
            let digest = file_digest(&staging.join(&file)).unwrap();
            let entry = OutputEntry { file, digest, bytes: bytes.len() as u64, format: "file".into(), shape: None };
            outputs.insert(name.to_string(), entry);
        }
        let manifest = Manifest {
            key,
            record,
            stage: "s".into(),
            digest: combined_digest(&outputs),
            outputs,
            seconds: 0.0,
            finished_at: String::new(),
            voxflow_version: String::new(),
            host: String::new(),
            device: "cpu".into(),
            warnings: Vec::new(),
            logs: Vec::new(),
            figures: Vec::new(),
            nondeterministic: None,
        };
        (manifest, staging)
    }

    fn committed(store: &Store, rng: &mut impl Rng, seed: u64) -> Manifest {
        let (manifest, staging) = staged(store, rng, seed);
        let _lock = store.lock(&manifest.key).unwrap();
        store.commit(&staging, &manifest).unwrap();
        manifest
    }

    #[test]
    fn a_committed_object_is_fresh_and_its_staging_directory_is_gone() {
        let mut rng = fresh_rng("a_committed_object_is_fresh_and_its_staging_directory_is_gone");
        let scratch = Scratch::new("store-commit");
        let store = Store::open(&scratch.path).unwrap();
        let (manifest, staging) = staged(&store, &mut rng, 1);
        assert!(matches!(store.lookup(&manifest.key), Lookup::Missing));
        let _lock = store.lock(&manifest.key).unwrap();
        store.commit(&staging, &manifest).unwrap();
        assert!(!staging.exists());
        let Lookup::Fresh(found) = store.lookup(&manifest.key) else { panic!("not fresh after commit") };
        assert_eq!(found.outputs, manifest.outputs);
        assert_eq!(found.digest, manifest.digest);
        assert_eq!(found.record.key(), manifest.key);
        assert!(store.verify().unwrap().is_empty());
    }

    #[test]
    fn a_truncated_or_missing_output_makes_the_object_damaged() {
        let mut rng = fresh_rng("a_truncated_or_missing_output_makes_the_object_damaged");
        let scratch = Scratch::new("store-damaged");
        let store = Store::open(&scratch.path).unwrap();
        let manifest = committed(&store, &mut rng, 2);
        let a = store.object_dir(&manifest.key).join("a.bin");
        let bytes = fs::read(&a).unwrap();
        fs::write(&a, &bytes[..bytes.len() - 1]).unwrap();
        let Lookup::Damaged(detail) = store.lookup(&manifest.key) else { panic!("a short output passed") };
        assert!(detail.contains("output `a`") && detail.contains("bytes"), "{detail}");
        fs::remove_file(&a).unwrap();
        let Lookup::Damaged(detail) = store.lookup(&manifest.key) else { panic!("a missing output passed") };
        assert!(detail.contains("is missing"), "{detail}");
        fs::write(store.object_dir(&manifest.key).join("manifest.json"), b"{ not json").unwrap();
        assert!(matches!(store.lookup(&manifest.key), Lookup::Damaged(_)));
    }

    /// A directory output (a checkpoint): its digest is the tree digest a
    /// param naming the same directory gets, one changed byte changes it,
    /// `verify` finds it, and a missing file makes the object damaged.
    #[test]
    fn a_directory_output_is_hashed_by_its_tree() {
        let mut rng = fresh_rng("a_directory_output_is_hashed_by_its_tree");
        let scratch = Scratch::new("store-dir-output");
        let store = Store::open(&scratch.path.join("store")).unwrap();
        let (mut manifest, staging) = staged(&store, &mut rng, 11);
        let checkpoint = staging.join("step5");
        fs::create_dir_all(checkpoint.join("sub")).unwrap();
        let mut total = 0;
        for name in ["config.json", "model.safetensors", "sub/tokenizer.json"] {
            let bytes: Vec<u8> = (0..rng.random_range(1..4096)).map(|_| rng.random()).collect();
            total += bytes.len() as u64;
            fs::write(checkpoint.join(name), &bytes).unwrap();
        }
        let (digest, bytes) = output_digest(&checkpoint).unwrap();
        assert_eq!(bytes, total);
        // The same directory copied elsewhere and named by a param.
        let copy = scratch.path.join("copy");
        fs::create_dir_all(copy.join("sub")).unwrap();
        for name in ["config.json", "model.safetensors", "sub/tokenizer.json"] {
            fs::copy(checkpoint.join(name), copy.join(name)).unwrap();
        }
        assert_eq!(store.content_digest(&copy).unwrap(), digest);
        let entry =
            OutputEntry { file: "step5".into(), digest: digest.clone(), bytes, format: "dir".into(), shape: None };
        manifest.outputs.insert("step5".into(), entry);
        manifest.digest = combined_digest(&manifest.outputs);
        let _lock = store.lock(&manifest.key).unwrap();
        store.commit(&staging, &manifest).unwrap();
        assert!(matches!(store.lookup(&manifest.key), Lookup::Fresh(_)));
        assert!(store.verify().unwrap().is_empty());

        let weights = store.object_dir(&manifest.key).join("step5/model.safetensors");
        let mut data = fs::read(&weights).unwrap();
        let at = rng.random_range(0..data.len());
        data[at] ^= 0x01;
        fs::write(&weights, &data).unwrap();
        assert_ne!(output_digest(&weights.parent().unwrap().to_path_buf()).unwrap().0, digest);
        let problems = store.verify().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].detail.starts_with("output `step5` digest"), "{}", problems[0].detail);

        fs::remove_file(store.object_dir(&manifest.key).join("step5/sub/tokenizer.json")).unwrap();
        assert!(matches!(store.lookup(&manifest.key), Lookup::Damaged(_)));
    }

    #[test]
    fn a_manifest_of_another_key_makes_the_object_damaged() {
        let mut rng = fresh_rng("a_manifest_of_another_key_makes_the_object_damaged");
        let scratch = Scratch::new("store-other-key");
        let store = Store::open(&scratch.path).unwrap();
        let first = committed(&store, &mut rng, 8);
        let second = committed(&store, &mut rng, 9);
        let manifest = |key: &str| store.object_dir(key).join("manifest.json");
        fs::copy(manifest(&first.key), manifest(&second.key)).unwrap();
        // The same outputs would pass the size checks: the key must not.
        for (a, b) in first.outputs.values().zip(second.outputs.values()) {
            fs::copy(store.object_dir(&first.key).join(&a.file), store.object_dir(&second.key).join(&b.file)).unwrap();
        }
        let Lookup::Damaged(detail) = store.lookup(&second.key) else { panic!("another key's manifest passed") };
        assert!(detail.contains(&format!("is for key {}", first.key)), "{detail}");
        assert!(matches!(store.lookup(&first.key), Lookup::Fresh(_)));
    }

    #[test]
    fn verify_finds_a_changed_byte_of_the_same_size() {
        let mut rng = fresh_rng("verify_finds_a_changed_byte_of_the_same_size");
        let scratch = Scratch::new("store-verify");
        let store = Store::open(&scratch.path).unwrap();
        let manifest = committed(&store, &mut rng, 3);
        let b = store.object_dir(&manifest.key).join("b.bin");
        let mut bytes = fs::read(&b).unwrap();
        let at = rng.random_range(0..bytes.len());
        bytes[at] ^= 0x40;
        fs::write(&b, &bytes).unwrap();
        let problems = store.verify().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, manifest.key);
        assert!(problems[0].detail.starts_with("output `b` digest"), "{}", problems[0].detail);
    }

    #[test]
    fn gc_keeps_what_is_listed_and_abandoned_staging_only() {
        let mut rng = fresh_rng("gc_keeps_what_is_listed_and_abandoned_staging_only");
        let scratch = Scratch::new("store-gc");
        let store = Store::open(&scratch.path).unwrap();
        let kept = committed(&store, &mut rng, 4);
        let dropped = committed(&store, &mut rng, 5);
        let (abandoned, abandoned_dir) = staged(&store, &mut rng, 6);
        let (live, live_dir) = staged(&store, &mut rng, 7);
        let _live_lock = store.lock(&live.key).unwrap();
        let keep: BTreeSet<String> = [kept.key.clone()].into();

        let (dry, dry_bytes) = store.gc(&keep, true).unwrap();
        assert!(store.object_dir(&dropped.key).exists() && abandoned_dir.exists(), "a dry run removed something");
        let (removed, bytes) = store.gc(&keep, false).unwrap();
        assert_eq!((&dry, dry_bytes), (&removed, bytes));
        let abandoned_name = format!("tmp/{}", abandoned_dir.file_name().unwrap().to_string_lossy());
        assert_eq!(removed, vec![dropped.key.clone(), abandoned_name]);
        let expected: u64 = dropped.outputs.values().chain(abandoned.outputs.values()).map(|o| o.bytes).sum();
        assert!(bytes >= expected, "freed {bytes} bytes, the outputs alone are {expected}");
        assert!(matches!(store.lookup(&kept.key), Lookup::Fresh(_)));
        assert!(matches!(store.lookup(&dropped.key), Lookup::Missing));
        assert!(live_dir.exists(), "gc removed the staging directory of a locked key");
    }

    #[test]
    fn content_digests_follow_the_bytes_and_the_memo_survives_a_reopen() {
        let mut rng = fresh_rng("content_digests_follow_the_bytes_and_the_memo_survives_a_reopen");
        let scratch = Scratch::new("store-memo");
        let root = scratch.path.clone();
        let store = Store::open(&root.join("store")).unwrap();
        let path = root.join("input.txt");
        let bytes: Vec<u8> = (0..1000).map(|_| rng.random()).collect();
        fs::write(&path, &bytes).unwrap();
        let digest = store.content_digest(&path).unwrap();
        assert_eq!(digest, blake3::hash(&bytes).to_hex()[..32]);
        store.save_memo().unwrap();
        let reopened = Store::open(&root.join("store")).unwrap();
        assert_eq!(reopened.content_digest(&path).unwrap(), digest);
        let mut changed = bytes.clone();
        changed[rng.random_range(0..1000)] ^= 1;
        fs::write(&path, &changed).unwrap();
        assert_eq!(reopened.content_digest(&path).unwrap(), blake3::hash(&changed).to_hex()[..32]);
        // A directory's digest covers its files' names and contents.
        let dir = root.join("dir");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/x"), b"1").unwrap();
        let before = store.content_digest(&dir).unwrap();
        fs::rename(dir.join("sub/x"), dir.join("sub/y")).unwrap();
        assert_ne!(store.content_digest(&dir).unwrap(), before);
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let scratch = Scratch::new("store-atomic");
        let dir = scratch.path.clone();
        let path = dir.join("table.csv");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let failed = write_atomic_with(&path, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err("writer failed".into())
        });
        assert_eq!(failed.unwrap_err(), "writer failed");
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names, ["table.csv"]);
    }
}
