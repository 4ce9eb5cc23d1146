//! The stage API: what a stage kind implements and what a running stage
//! sees. The kinds themselves live in `crate::kinds`; [`registry::KINDS`]
//! is the one list of them.
//!
//! A kind implements [`Kind`] against its typed params (a serde struct that
//! denies unknown fields and fills defaults; params with a fixed set of
//! values are enums): what it needs and writes given those params, the
//! checks serde cannot express, and `run`. The blanket `impl<K: Kind> Stage
//! for K` turns it into the object-safe [`Stage`] the registry, the planner
//! and the executor use: it parses and canonicalises the params (defaults
//! filled in, so writing a default explicitly does not change the key) and
//! hands `run` the typed params. Kinds never print: they report through the
//! [`StageContext`] (progress, warnings).

mod context;
pub mod registry;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::device::Device;
pub use context::{Activity, InputArtifact, StageContext, StageError, WrittenOutput};
pub use registry::{lookup, KINDS};

/// One kind of stage, written against its typed params. Every `Kind` is a
/// [`Stage`] through the blanket impl below.
pub trait Kind: Sync {
    /// The params: `#[serde(deny_unknown_fields)]`, defaults filled in, enums
    /// for params with a fixed set of values. Their serialised form, made
    /// canonical, is what enters the key.
    type Params: DeserializeOwned + Serialize;
    /// The name used as `kind:` in a pipeline file.
    const NAME: &'static str;
    /// Bumped whenever the kind's output changes for the same inputs and params.
    const VERSION: u32;
    /// One line for `voxflow kinds`.
    const SUMMARY: &'static str;
    /// Input roles every stage of the kind needs, whatever its params.
    const INPUTS: &'static [&'static str] = &[];
    /// The outputs every stage of the kind writes, whatever its params.
    const OUTPUTS: &'static [&'static str] = &[];
    /// Input roles that stand for the file param of the same name (a model
    /// directory given as `inputs: {model: train.step500}` instead of
    /// `params: {model: path}`): the key records either as that param's
    /// content digest, so the two ways key the same (`key::record`).
    const FILE_INPUTS: &'static [&'static str] = &[];
    /// One line per param for `voxflow kinds KIND`: (name, type, what it
    /// does). Defaults come from the params type itself.
    const PARAM_DOCS: &'static [ParamDoc] = &[];

    /// Input roles that must be present, given the params (checked at
    /// validation, before anything runs): [`Kind::INPUTS`] unless overridden.
    fn required_inputs(&self, _params: &Self::Params) -> Vec<&'static str> {
        Self::INPUTS.to_vec()
    }
    /// Problems with the input roles given that `required_inputs` cannot
    /// express (one of several ways to give them), as (message, hint);
    /// checked at validation like the required ones.
    fn input_problems(&self, _params: &Self::Params, _roles: &[&str]) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The names of the outputs a stage with these params writes:
    /// [`Kind::OUTPUTS`] unless overridden.
    fn outputs(&self, _params: &Self::Params) -> Vec<String> {
        Self::OUTPUTS.iter().map(|name| name.to_string()).collect()
    }
    /// Params that name input files or directories: (param path, path as written).
    fn file_params(&self, _params: &Self::Params) -> Vec<(String, String)> {
        Vec::new()
    }
    /// How to get the file a file param names when it does not exist
    /// (validation adds it to its hint), e.g. the script that installs it.
    fn missing_file_hint(&self, _param: &str) -> Option<&'static str> {
        None
    }
    /// Whether the stage wants a GPU slot (`device: auto|cuda`).
    fn wants_gpu(&self, _params: &Self::Params) -> bool {
        false
    }
    /// The checks serde cannot express (ranges, combinations), each with the
    /// param's path.
    /// Whether the stage runs in a worker process (`voxflow-worker`, linked
    /// with libtorch) rather than in the scheduler's process, given the
    /// device the scheduler assigned. Kinds that call libtorch say yes.
    fn in_worker(&self, _params: &Self::Params, _assigned: Device) -> bool {
        false
    }
    /// Whether the stage gets a work directory that survives a failed or
    /// killed attempt (`StageContext::work_dir`), to resume from.
    fn resumable(&self, _params: &Self::Params) -> bool {
        false
    }
    fn validate(&self, _params: &Self::Params) -> Vec<ParamError> {
        Vec::new()
    }
    fn run(&self, params: &Self::Params, ctx: &mut StageContext) -> Result<(), StageError>;
}

/// One kind of stage, as the registry, the planner and the executor see it:
/// params as JSON (canonical once `check_params` has accepted them).
pub trait Stage: Sync {
    /// The name used as `kind:` in a pipeline file.
    fn kind(&self) -> &'static str;
    /// Bumped whenever the kind's output changes for the same inputs and params.
    fn version(&self) -> u32;
    /// One line for `voxflow kinds`.
    fn summary(&self) -> &'static str;
    /// Input roles that must be present, given canonical params (checked
    /// at validation, before anything runs); with params that do not parse
    /// (`Value::Null`), the ones every stage of the kind needs.
    fn required_inputs(&self, params: &Value) -> Vec<&'static str>;
    /// Problems with the input roles given that `required_inputs` cannot
    /// express, as (message, hint).
    fn input_problems(&self, params: &Value, roles: &[&str]) -> Vec<(String, String)>;
    /// The names of the outputs this stage writes, given canonical params.
    fn outputs(&self, params: &Value) -> Vec<String>;
    /// Parses params, fills defaults and returns the canonical form, or every
    /// problem found, each with the param's path.
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>>;
    /// Params that name input files or directories: (param path, path as written).
    fn file_params(&self, params: &Value) -> Vec<(String, String)>;
    /// See [`Kind::missing_file_hint`].
    fn missing_file_hint(&self, param: &str) -> Option<&'static str>;
    /// Whether the stage wants a GPU slot (`device: auto|cuda`).
    fn wants_gpu(&self, params: &Value) -> bool;
    /// See [`Kind::in_worker`].
    fn in_worker(&self, params: &Value, assigned: Device) -> bool;
    /// See [`Kind::FILE_INPUTS`].
    fn file_inputs(&self) -> &'static [&'static str];
    /// See [`Kind::resumable`].
    fn resumable(&self, params: &Value) -> bool;
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError>;
    /// See [`Kind::PARAM_DOCS`].
    fn param_docs(&self) -> &'static [ParamDoc];
}

/// A param as `voxflow kinds KIND` describes it.
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    pub name: &'static str,
    /// As a user writes it: `list of numbers`, `story | contiguous | chunked`.
    pub kind: &'static str,
    pub doc: &'static str,
}

/// A [`ParamDoc`] in one line: `param("alphas", "list of numbers", "...")`.
pub const fn param(name: &'static str, kind: &'static str, doc: &'static str) -> ParamDoc {
    ParamDoc { name, kind, doc }
}

/// Canonical params read back into the kind's type; None if they do not
/// parse (they were checked at validation).
fn typed<K: Kind>(params: &Value) -> Option<K::Params> {
    serde_json::from_value(params.clone()).ok()
}

impl<K: Kind> Stage for K {
    fn kind(&self) -> &'static str {
        K::NAME
    }
    fn version(&self) -> u32 {
        K::VERSION
    }
    fn summary(&self) -> &'static str {
        K::SUMMARY
    }
    fn required_inputs(&self, params: &Value) -> Vec<&'static str> {
        match typed::<K>(params) {
            Some(params) => Kind::required_inputs(self, &params),
            None => K::INPUTS.to_vec(),
        }
    }
    fn input_problems(&self, params: &Value, roles: &[&str]) -> Vec<(String, String)> {
        typed::<K>(params).map(|params| Kind::input_problems(self, &params, roles)).unwrap_or_default()
    }
    fn outputs(&self, params: &Value) -> Vec<String> {
        typed::<K>(params).map(|params| Kind::outputs(self, &params)).unwrap_or_default()
    }
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>> {
        let (parsed, canonical) = parse_params::<K::Params>(params)?;
        let errors = Kind::validate(self, &parsed);
        if errors.is_empty() {
            Ok(canonical)
        } else {
            Err(errors)
        }
    }
    fn file_params(&self, params: &Value) -> Vec<(String, String)> {
        typed::<K>(params).map(|params| Kind::file_params(self, &params)).unwrap_or_default()
    }
    fn missing_file_hint(&self, param: &str) -> Option<&'static str> {
        Kind::missing_file_hint(self, param)
    }
    fn wants_gpu(&self, params: &Value) -> bool {
        typed::<K>(params).is_some_and(|params| Kind::wants_gpu(self, &params))
    }
    fn file_inputs(&self) -> &'static [&'static str] {
        K::FILE_INPUTS
    }
    fn resumable(&self, params: &Value) -> bool {
        typed::<K>(params).is_some_and(|params| Kind::resumable(self, &params))
    }
    fn in_worker(&self, params: &Value, assigned: Device) -> bool {
        typed::<K>(params).is_some_and(|params| Kind::in_worker(self, &params, assigned))
    }
    fn param_docs(&self) -> &'static [ParamDoc] {
        K::PARAM_DOCS
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let params: K::Params =
            serde_json::from_value(ctx.params.clone()).map_err(|e| StageError::failed(format!("params: {e}")))?;
        Kind::run(self, &params, ctx)
    }
}

/// A problem with one param of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// Dotted path under `params` (empty for the params as a whole).
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ParamError {
    pub fn new(path: &str, message: impl Into<String>) -> ParamError {
        ParamError { path: path.to_string(), message: message.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ParamError {
        self.hint = Some(hint.into());
        self
    }
}

/// Deserialises params into `P` (which denies unknown fields and has
/// defaults) and returns `P` together with its canonical JSON, or every
/// problem found. serde stops at the first problem, so each one's entry is
/// left out and the params parsed again, until they parse or the problem
/// cannot be left out (a missing field): one stage's problems are reported
/// together, like the pipeline's.
pub fn parse_params<P: DeserializeOwned + Serialize>(params: &Value) -> Result<(P, Value), Vec<ParamError>> {
    const MOST: usize = 32;
    let mut remaining = params.clone();
    let mut errors = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, P>(remaining.clone()) {
            Ok(parsed) if errors.is_empty() => {
                let canonical = crate::key::canonical_value(&serde_json::to_value(&parsed).expect("params serialise"));
                return Ok((parsed, canonical));
            }
            Ok(_) => return Err(errors),
            Err(error) => error,
        };
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        // A required entry left out for its own problem is not a second one.
        let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map(|(f, _)| f);
        if missing.is_some_and(|field| removed.contains(&join_path(&path, field))) {
            return Err(errors);
        }
        // The path names the bad entry itself, an unknown field included.
        let left_out = remove_entry(&mut remaining, &path);
        removed.push(path.clone());
        errors.push(param_error(path, message));
        if errors.len() >= MOST || !left_out {
            return Err(errors);
        }
    }
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Removes the map entry at a dotted path; false when there is none (the
/// params as a whole, a list item, a path that does not exist).
fn remove_entry(value: &mut Value, path: &str) -> bool {
    if path.is_empty() || path.contains('[') {
        return false;
    }
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (Some(parent), key),
        None => (None, path),
    };
    let mut current = value;
    for part in parent.into_iter().flat_map(|p| p.split('.')) {
        match current.get_mut(part) {
            Some(next) => current = next,
            None => return false,
        }
    }
    current.as_object_mut().is_some_and(|map| map.remove(key).is_some())
}

/// A serde error as a [`ParamError`]. A value outside an enum's set
/// (serde's "unknown variant `x`, expected one of `a`, `b`") becomes
/// "unknown value `x`: expected one of a, b" with the nearest allowed value
/// as a hint; an unknown field gets the nearest field name as a hint.
fn param_error(path: String, message: String) -> ParamError {
    let listed = |rest: &str| -> Vec<String> { rest.split('`').skip(1).step_by(2).map(str::to_string).collect() };
    let did_you_mean = |unknown: &str, known: &[String]| {
        crate::spec::nearest(unknown, known.iter().map(String::as_str)).map(|n| format!("did you mean `{n}`?"))
    };
    for (prefix, field) in [("unknown variant `", false), ("unknown field `", true)] {
        let Some((unknown, rest)) = message.strip_prefix(prefix).and_then(|rest| rest.split_once('`')) else {
            continue;
        };
        let known = listed(rest);
        let hint = did_you_mean(unknown, &known);
        if field {
            return ParamError { path, message, hint };
        }
        let message = format!("unknown value `{unknown}`: expected one of {}", known.join(", "));
        return ParamError { path, message, hint };
    }
    ParamError { path, message, hint: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        #[serde(default)]
        method: Option<Method>,
        #[serde(default)]
        window: usize,
        #[serde(default)]
        folds: Folds,
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Method {
        Lanczos,
        Sinc,
    }

    #[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Folds {
        #[serde(default)]
        k: usize,
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Required {
        path: String,
    }

    /// Every problem of one stage's params is reported, not only serde's first.
    #[test]
    fn every_problem_of_one_stages_params_is_reported() {
        let params =
            serde_json::json!({"method": "lanczo", "window": "three", "windw": 1, "folds": {"k": -1, "by": "x"}});
        let errors = parse_params::<Example>(&params).err().expect("bad params parsed");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        for path in ["method", "window", "windw", "folds.k", "folds.by"] {
            assert!(paths.contains(&path), "no error at `{path}`: {errors:#?}");
        }
        assert!(errors.iter().any(|e| e.message.contains("unknown field `windw`")), "{errors:#?}");
        assert!(errors.iter().any(|e| e.message.contains("unknown field `by`")), "{errors:#?}");
        let errors = parse_params::<Required>(&serde_json::json!({"path": 5})).err().expect("bad params parsed");
        assert_eq!(errors.len(), 1, "a required entry left out counts as a second problem: {errors:#?}");
        let (parsed, _) = parse_params::<Example>(&serde_json::json!({"method": "sinc", "window": 3})).unwrap();
        assert!(matches!(parsed.method, Some(Method::Sinc)) && parsed.window == 3);
    }

    /// serde's unknown-variant and unknown-field messages become the enum
    /// error with the allowed values and the nearest-name hint.
    #[test]
    fn enum_errors_list_the_values_and_suggest_the_nearest() {
        let error = param_error(
            "method".into(),
            "unknown variant `lanczo`, expected one of `rect`, `average`, `sum`, `last`, `lanczos`, `sinc`".into(),
        );
        assert_eq!(error.message, "unknown value `lanczo`: expected one of rect, average, sum, last, lanczos, sinc");
        assert_eq!(error.hint.as_deref(), Some("did you mean `lanczos`?"));
        let error = param_error("score".into(), "unknown variant `xyz`, expected `l2` or `pearson`".into());
        assert_eq!(error.message, "unknown value `xyz`: expected one of l2, pearson");
        assert_eq!(error.hint, None);
        let error = param_error("".into(), "unknown field `windw`, expected one of `method`, `window`".into());
        assert_eq!(error.message, "unknown field `windw`, expected one of `method`, `window`");
        assert_eq!(error.hint.as_deref(), Some("did you mean `window`?"));
    }
}
