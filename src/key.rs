//! The cache key. A stage's key is the BLAKE3 hash of its [`KeyRecord`]:
//! kind, the kind's implementation version, canonical params, the digests of
//! its input artifacts and the content digests of the files its params name.
//!
//! **Invariant:** nothing else enters a key: no absolute path, mtime, host,
//! job id, thread count or device. Two machines that see the same inputs
//! compute the same key.
//!
//! When a key differs from the one recorded at the last run, [`explain`]
//! compares the two records field by field into [`Reason`]s, the way cargo
//! explains a dirty unit.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
            Reason::FileChanged { param, old, new } => {
                write!(f, "file named by `{param}` changed: {} -> {}", short(old.as_deref()), short(new.as_deref()))
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
            reasons.push(Reason::FileChanged { param: param.clone(), old: a.cloned(), new: b.cloned() });
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

    fn record(params: Value) -> KeyRecord {
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
        let a = record(json!({"alpha": 10.0, "folds": {"k": 5, "by": "story"}}));
        let b = record(json!({"folds": {"by": "story", "k": 5}, "alpha": 10}));
        assert_eq!(a.key(), b.key());
        let c = record(json!({"alpha": 10.5, "folds": {"k": 5, "by": "story"}}));
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
    fn explain_names_the_changed_param_and_input() {
        let old = record(json!({"alpha": 1, "folds": {"k": 5}}));
        let mut new = record(json!({"alpha": 10, "folds": {"k": 5}}));
        new.inputs.insert("x".into(), "bbbb".into());
        let reasons = explain(&old, &new);
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].to_string(), "param `alpha` changed: 1 -> 10");
        assert!(matches!(&reasons[1], Reason::InputChanged { role, .. } if role == "x"));
        assert!(explain(&old, &old).is_empty());
    }
}
