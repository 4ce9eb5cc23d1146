//! The cache key. A stage's key is the BLAKE3 hash of its [`KeyRecord`]:
//! kind, the kind's implementation version, canonical params, the digests of
//! its input artifacts and the content digests of the files its params name.
//!
//! **Invariant:** nothing else enters a key: no absolute path, mtime, host,
//! job id, thread count or device. Two machines that see the same inputs
//! compute the same key.
//!
//! One function builds a stage's record, [`record`]: `plan`, `run`, `why`
//! and `voxflow exec` all go through it (its params part is
//! [`keyed_params`]), so what a plan compares is what a run keys.
//!
//! When a key differs from the one recorded at the last run, [`explain`]
//! compares the two records field by field into [`Reason`]s, the way cargo
//! explains a dirty unit.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::PlannedStage;
use crate::store::{Manifest, Store};

/// Everything that determines a stage's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kind: String,
    pub version: u32,
    /// Canonical params: defaults filled in, numbers normalised; file-path
    /// params are listed in `files` by content instead.
    pub params: Value,
    /// Input role -> digest of the upstream artifact it names.
    pub inputs: BTreeMap<String, String>,
    /// Param path -> content digest of the file or directory it names.
    pub files: BTreeMap<String, String>,
}

impl KeyRecord {
    /// The key: hex BLAKE3 of the canonical JSON of the record, cut to 128 bits.
    pub fn key(&self) -> String {
        let mut text = String::new();
        write_canonical(&serde_json::to_value(self).expect("a key record serialises"), &mut text);
        blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
    }
}

/// What stands in the keyed params for the path a file param names: the key
/// sees the file's content (in [`KeyRecord::files`]), not where it lives.
pub const FILE_PLACEHOLDER: &str = "<content digest in files>";

/// The params part of `stage`'s key record: its canonical params with each
/// file param's path replaced by [`FILE_PLACEHOLDER`], and without `device`.
/// Where a stage runs is not what it computes: `device` is recorded in the
/// manifest, never keyed (CPU and GPU results agree within tolerance).
pub fn keyed_params(stage: &PlannedStage) -> Value {
    let mut params = stage.params.clone();
    for (param, _) in &stage.files {
        set_path(&mut params, param, Value::String(FILE_PLACEHOLDER.into()));
    }
    if let Value::Object(map) = &mut params {
        map.remove("device");
    }
    params
}

/// The digest of each input of `stage` (by role), from the results of the
/// stages before it (`upstream`, indexed like `Pipeline::stages`).
/// `Ok(None)` while some upstream result is not known yet (it runs first).
pub fn input_digests(
    stage: &PlannedStage,
    upstream: &[Option<Arc<Manifest>>],
) -> Result<Option<BTreeMap<String, String>>, String> {
    let mut inputs = BTreeMap::new();
    for input in &stage.inputs {
        let Some(manifest) = upstream[input.upstream].as_ref() else { return Ok(None) };
        let digest = manifest
            .digest_of(input.output.as_deref())
            .ok_or_else(|| format!("upstream result has no output `{}`", input.output.as_deref().unwrap_or("")))?;
        inputs.insert(input.role.clone(), digest);
    }
    Ok(Some(inputs))
}

/// The key record of `stage`: kind, version, [`keyed_params`], `inputs` (from
/// [`input_digests`]) and the content digest of each file its params name.
/// An input whose role is one of the kind's `file_inputs` (a model given as
/// an upstream output) is recorded as that file param: the output's digest
/// (a directory's `store::tree_digest`) under `files`, the param as the
/// placeholder, so the key is the one the same directory named by path gets.
///
/// `inputs` is `None` where an upstream has not run yet: the record then has
/// no inputs, its key means nothing, and it serves only to compare the
/// stage's own fields with the last run's ([`explain`] minus
/// [`Reason::InputChanged`]).
pub fn record(
    stage: &PlannedStage,
    store: &Store,
    inputs: Option<BTreeMap<String, String>>,
) -> Result<KeyRecord, String> {
    let mut files = BTreeMap::new();
    for (param, path) in &stage.files {
        let digest = store.content_digest(path).map_err(|e| format!("param `{param}`: {e}"))?;
        files.insert(param.clone(), digest);
    }
    let mut params = keyed_params(stage);
    let mut inputs = inputs.unwrap_or_default();
    // A file param given as an input is keyed as the file param would be.
    for role in stage.kind.file_inputs() {
        if let Some(digest) = inputs.remove(*role) {
            files.insert(role.to_string(), digest);
            if let Value::Object(map) = &mut params {
                map.insert(role.to_string(), Value::String(FILE_PLACEHOLDER.into()));
            }
        }
    }
    Ok(KeyRecord { kind: stage.kind.kind().to_string(), version: stage.kind.version(), params, inputs, files })
}

/// Sets the value at dotted `path` (`a.b.0`) if it exists.
fn set_path(value: &mut Value, path: &str, new: Value) {
    let mut current = value;
    for part in path.split('.') {
        current = match current {
            Value::Object(map) => match map.get_mut(part) {
                Some(next) => next,
                None => return,
            },
            Value::Array(items) => match part.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    *current = new;
}

/// Numbers written the same way whatever their type: `10`, `10.0` and `1e1`
/// are one value; integral floats become integers.
pub fn canonical_value(value: &Value) -> Value {
    match value {
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                value.clone()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Value::from(f as i64)
                } else {
                    value.clone()
                }
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_value).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical_value(v))).collect()),
        other => other.clone(),
    }
}

/// Writes JSON with object keys sorted, independent of map implementation.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                write_canonical(&map[*key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Why a stage is not fresh (or, for `Cached`, why it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The result for this key is in the store.
    Cached,
    /// No earlier run of this stage is recorded and the store has no result.
    New,
    Forced,
    KindChanged {
        old: String,
        new: String,
    },
    VersionChanged {
        old: u32,
        new: u32,
    },
    ParamChanged {
        path: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    InputChanged {
        role: String,
        old: Option<String>,
        new: Option<String>,
    },
    FileChanged {
        param: String,
        /// The file's path as the pipeline names it (relative to the
        /// pipeline's directory), where the stage is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        old: Option<String>,
        new: Option<String>,
    },
    /// The key is the same as last time but its result is gone or damaged.
    OutputMissing {
        detail: String,
    },
    /// An upstream stage will run first, so this key is not known yet.
    UpstreamPending {
        stage: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Cached => write!(f, "cached"),
            Reason::New => write!(f, "new stage, no cached result"),
            Reason::Forced => write!(f, "forced"),
            Reason::KindChanged { old, new } => write!(f, "kind changed: {old} -> {new}"),
            Reason::VersionChanged { old, new } => {
                write!(f, "implementation version changed: {old} -> {new}")
            }
            Reason::ParamChanged { path, old, new } => {
                write!(f, "param `{path}` changed: {} -> {}", show(old), show(new))
            }
            Reason::InputChanged { role, old, new } => {
                write!(f, "input `{role}` changed: {} -> {}", short(old.as_deref()), short(new.as_deref()))
            }
            Reason::FileChanged { param, path: None, old, new } => {
                write!(f, "file named by `{param}` changed: {} -> {}", short(old.as_deref()), short(new.as_deref()))
            }
            // `files.0` says nothing a reader can use: the path alone.
            Reason::FileChanged { param, path: Some(path), old, new } if param.starts_with("files.") => {
                write!(f, "file `{path}` changed: {} -> {}", short(old.as_deref()), short(new.as_deref()))
            }
            Reason::FileChanged { param, path: Some(path), old, new } => {
                write!(f, "file `{path}` (`{param}`) changed: {} -> {}", short(old.as_deref()), short(new.as_deref()))
            }
            Reason::OutputMissing { detail } => write!(f, "output missing or damaged: {detail}"),
            Reason::UpstreamPending { stage } => write!(f, "upstream `{stage}` runs first"),
        }
    }
}

fn show(value: &Option<Value>) -> String {
    let text = match value {
        None => return "(unset)".into(),
        Some(v) => v.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

fn short(digest: Option<&str>) -> String {
    match digest {
        None => "(none)".into(),
        Some(d) => d.chars().take(10).collect(),
    }
}

/// The field-by-field differences between the last run's record and now.
pub fn explain(old: &KeyRecord, new: &KeyRecord) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if old.kind != new.kind {
        reasons.push(Reason::KindChanged { old: old.kind.clone(), new: new.kind.clone() });
    }
    if old.version != new.version {
        reasons.push(Reason::VersionChanged { old: old.version, new: new.version });
    }
    diff_values("", Some(&old.params), Some(&new.params), &mut reasons);
    for role in old.inputs.keys().chain(new.inputs.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (a, b) = (old.inputs.get(role), new.inputs.get(role));
        if a != b {
            reasons.push(Reason::InputChanged { role: role.clone(), old: a.cloned(), new: b.cloned() });
        }
    }
    for param in old.files.keys().chain(new.files.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (a, b) = (old.files.get(param), new.files.get(param));
        if a != b {
            reasons.push(Reason::FileChanged { param: param.clone(), path: None, old: a.cloned(), new: b.cloned() });
        }
    }
    reasons
}

/// [`explain`] for `stage` of the pipeline in `base_dir`: a changed file
/// is named by its path (relative to `base_dir`) as well as its param.
pub fn explain_stage(
    base_dir: &std::path::Path,
    stage: &PlannedStage,
    old: &KeyRecord,
    new: &KeyRecord,
) -> Vec<Reason> {
    let mut reasons = explain(old, new);
    for reason in &mut reasons {
        if let Reason::FileChanged { param, path, .. } = reason {
            if let Some((_, file)) = stage.files.iter().find(|(name, _)| name == param) {
                *path = Some(file.strip_prefix(base_dir).unwrap_or(file).display().to_string());
            }
        }
    }
    reasons
}

fn diff_values(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Reason>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                diff_values(&child, a.get(key), b.get(key), out);
            }
        }
        (a, b) if a != b => out.push(Reason::ParamChanged { path: path.to_string(), old: a.cloned(), new: b.cloned() }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ridge_record(params: Value) -> KeyRecord {
        KeyRecord {
            kind: "ridge".into(),
            version: 1,
            params: canonical_value(&params),
            inputs: BTreeMap::from([("x".into(), "aaaa".into())]),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn numbers_and_key_order_do_not_change_the_key() {
        let a = ridge_record(json!({"alpha": 10.0, "folds": {"k": 5, "by": "story"}}));
        let b = ridge_record(json!({"folds": {"by": "story", "k": 5}, "alpha": 10}));
        assert_eq!(a.key(), b.key());
        let c = ridge_record(json!({"alpha": 10.5, "folds": {"k": 5, "by": "story"}}));
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn long_values_are_cut_on_character_boundaries() {
        let long = "é".repeat(80);
        let reason = Reason::ParamChanged { path: "text".into(), old: Some(Value::String(long.clone())), new: None };
        let shown = reason.to_string();
        assert!(shown.starts_with("param `text` changed: \"éé") && shown.contains("... -> (unset)"), "{shown}");
    }

    #[test]
    fn canonical_numbers() {
        let value: Value =
            serde_json::from_str(r#"{"a": 10.0, "b": [1e1, 2.5, -3.0], "c": {"d": 1e20, "e": "10.0"}}"#).unwrap();
        let canonical = canonical_value(&value);
        assert_eq!(canonical, json!({"a": 10, "b": [10, 2.5, -3], "c": {"d": 1e20, "e": "10.0"}}));
        assert!(canonical["a"].is_i64() && canonical["c"]["d"].is_f64());
    }

    /// The key of a fixed record: the hash, the canonical JSON and the
    /// field names are all part of every stored key, so this never changes.
    #[test]
    fn the_key_of_a_fixed_record_does_not_change() {
        let mut fixed = ridge_record(json!({"alphas": [1, 10.0], "folds": {"by": "story"}, "tag": "é"}));
        fixed.files.insert("files.0".into(), "cccc".into());
        assert_eq!(fixed.key(), "d52ce73ec02ba5b975295ccc860fa52e");
    }

    #[test]
    fn explain_names_the_changed_param_and_input() {
        let old = ridge_record(json!({"alpha": 1, "folds": {"k": 5}}));
        let mut new = ridge_record(json!({"alpha": 10, "folds": {"k": 5}}));
        new.inputs.insert("x".into(), "bbbb".into());
        let reasons = explain(&old, &new);
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].to_string(), "param `alpha` changed: 1 -> 10");
        assert!(matches!(&reasons[1], Reason::InputChanged { role, .. } if role == "x"));
        assert!(explain(&old, &old).is_empty());
    }

    #[test]
    fn explain_names_kind_version_nested_params_roles_and_files() {
        let mut old = ridge_record(json!({"folds": {"k": 5, "by": "story"}, "gone": true}));
        old.files.insert("path".into(), "f1".into());
        let mut new = ridge_record(json!({"folds": {"k": 6, "by": "story"}, "added": 1}));
        new.kind = "prep".into();
        new.version = 2;
        new.inputs = BTreeMap::from([("y".into(), "bbbb".into())]);
        new.files.insert("path".into(), "f2".into());
        let reasons = explain(&old, &new);
        assert_eq!(
            reasons,
            [
                Reason::KindChanged { old: "ridge".into(), new: "prep".into() },
                Reason::VersionChanged { old: 1, new: 2 },
                Reason::ParamChanged { path: "added".into(), old: None, new: Some(json!(1)) },
                Reason::ParamChanged { path: "folds.k".into(), old: Some(json!(5)), new: Some(json!(6)) },
                Reason::ParamChanged { path: "gone".into(), old: Some(json!(true)), new: None },
                Reason::InputChanged { role: "x".into(), old: Some("aaaa".into()), new: None },
                Reason::InputChanged { role: "y".into(), old: None, new: Some("bbbb".into()) },
                Reason::FileChanged {
                    param: "path".into(),
                    path: None,
                    old: Some("f1".into()),
                    new: Some("f2".into())
                },
            ]
        );
        assert_eq!(reasons[1].to_string(), "implementation version changed: 1 -> 2");
        assert_eq!(reasons[4].to_string(), "param `gone` changed: true -> (unset)");
        assert_eq!(reasons[6].to_string(), "input `y` changed: (none) -> bbbb");
        assert_eq!(reasons[7].to_string(), "file named by `path` changed: f1 -> f2");
    }

    /// A command stage that reads a file, and a ridge fit (which has a
    /// `device` param) on its output.
    const KEYED: &str = r#"
name: keyed
stages:
  prep:
    kind: command
    run: cat data.txt > {outputs.out}
    outputs: {out: prep.txt}
    params: {files: [data.txt]}
  fit:
    kind: ridge
    inputs: {data: prep}
    params: {alphas: [1, 10.0, 1e2]}
"#;

    fn keyed(dir: &crate::testing::Scratch, overrides: &[&str]) -> crate::plan::Pipeline {
        dir.pipeline(KEYED, overrides).unwrap_or_else(|problems| panic!("{problems}"))
    }

    #[test]
    fn device_is_not_keyed() {
        let dir = crate::testing::Scratch::new("key-device");
        dir.write("data.txt", "1\n");
        let store = Store::open(&dir.path.join("store")).unwrap();
        let inputs = || Some(BTreeMap::from([("data".to_string(), "dddd".to_string())]));
        let cpu = keyed(&dir, &[]);
        let fit = &cpu.stages[1];
        assert_eq!(fit.params["device"], "cpu", "the default is filled in");
        let params = keyed_params(fit);
        assert!(params.get("device").is_none(), "{params}");
        assert_eq!(params["alphas"], json!([1, 10, 100]));
        let auto = keyed(&dir, &["fit.device=auto"]);
        assert_eq!(auto.stages[1].params["device"], "auto");
        let (a, b) = (record(fit, &store, inputs()).unwrap(), record(&auto.stages[1], &store, inputs()).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.inputs["data"], "dddd");
        assert_eq!((a.kind.as_str(), a.version), ("ridge", fit.kind.version()));
        // Another alpha is another key, and says so.
        let more = keyed(&dir, &["fit.alphas=[1, 10]"]);
        let c = record(&more.stages[1], &store, inputs()).unwrap();
        assert_ne!(a.key(), c.key());
        assert_eq!(
            explain(&a, &c),
            [Reason::ParamChanged { path: "alphas".into(), old: Some(json!([1, 10, 100])), new: Some(json!([1, 10])) }]
        );
        // Pending inputs leave the inputs out; nothing else differs.
        let pending = record(fit, &store, None).unwrap();
        assert!(pending.inputs.is_empty());
        assert_eq!(KeyRecord { inputs: a.inputs.clone(), ..pending }, a);
    }

    #[test]
    fn file_params_are_keyed_by_content_not_path() {
        let dir = crate::testing::Scratch::new("key-files");
        dir.write("data.txt", "1\n");
        dir.write("copy.txt", "1\n");
        let store = Store::open(&dir.path.join("store")).unwrap();
        let pipeline = keyed(&dir, &[]);
        let prep = &pipeline.stages[0];
        let first = record(prep, &store, Some(BTreeMap::new())).unwrap();
        assert_eq!(first.params["files"], json!([FILE_PLACEHOLDER]));
        assert_eq!(first.files.keys().collect::<Vec<_>>(), ["files.0"]);
        assert_eq!(first.files["files.0"], store.content_digest(&dir.path.join("data.txt")).unwrap());
        // The same bytes elsewhere: the same key.
        let moved = keyed(&dir, &["prep.files=[copy.txt]"]);
        let second = record(&moved.stages[0], &store, Some(BTreeMap::new())).unwrap();
        assert_eq!(first.key(), second.key());
        // Other bytes: another key, and the reason names the param.
        std::thread::sleep(std::time::Duration::from_millis(20));
        dir.write("copy.txt", "2\n");
        let store = Store::open(&dir.path.join("store2")).unwrap();
        let third = record(&moved.stages[0], &store, Some(BTreeMap::new())).unwrap();
        assert_ne!(first.key(), third.key());
        let reasons = explain(&first, &third);
        assert!(matches!(&reasons[..], [Reason::FileChanged { param, .. }] if param == "files.0"), "{reasons:?}");
    }
}
