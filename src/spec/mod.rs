//! The pipeline file: YAML text -> [`PipelineSpec`], with every problem
//! collected as a [`Diagnostic`] that names file, line and stage. This module
//! knows the file's shape (top-level keys, stage keys, `--set` overrides); it
//! does not know stage kinds or their params: `crate::plan` checks those and
//! expands the `matrix:`.

mod diagnostic;
mod lines;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use diagnostic::{nearest, Diagnostic, Diagnostics};
pub use lines::LineIndex;

const TOP_LEVEL_KEYS: &[&str] = &["name", "description", "store", "executor", "slurm", "defaults", "matrix", "stages"];
const STAGE_KEYS: &[&str] = &[
    "kind",
    "inputs",
    "params",
    "resources",
    "run",
    "outputs",
    "description",
    "retries",
    "retry_mem_factor",
    "retry_time_factor",
];
const RESOURCE_KEYS: &[&str] = &["threads", "gpu", "mem", "time"];
const DEFAULTS_KEYS: &[&str] = &["resources", "params"];
const SLURM_KEYS: &[&str] = &["partition", "account", "qos", "time", "mem", "max_jobs", "sbatch_args"];
/// The longest pipeline name, in bytes: it is part of file names in the
/// store (`runs/<name>.state.json`), which most file systems cap at 255.
pub const MAX_NAME_BYTES: usize = 100;
/// The values `executor:` takes.
pub const EXECUTORS: &[&str] = &["local", "slurm"];

/// A pipeline as written, before expansion.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub file: PathBuf,
    /// The directory of the pipeline file: relative paths resolve against it.
    pub base_dir: PathBuf,
    pub name: String,
    pub store: Option<PathBuf>,
    pub default_resources: Resources,
    /// Default params per stage kind (`defaults: params: {ridge: {...}}`).
    pub default_params: Map<String, Value>,
    /// Matrix axes in file order, each with its values.
    pub matrix: Vec<(String, Vec<Value>)>,
    pub stages: Vec<StageSpec>,
    pub lines: LineIndex,
    /// `executor:` (`local` or `slurm`), when given.
    pub executor: Option<String>,
    /// The `slurm:` block (used by `--executor slurm`).
    pub slurm: SlurmSpec,
}

/// The `slurm:` block: where and how stages are submitted. Stage
/// `resources:` override `time` and `mem`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Default time limit (`30`, `01:00:00`, `2h`, ...).
    pub time: Option<String>,
    /// Default memory (`4G`, `512M`, ...).
    pub mem: Option<String>,
    /// Jobs in the queue at once (the default of `-j` with this executor).
    pub max_jobs: Option<usize>,
    /// More sbatch arguments, passed as given (`--constraint=avx2`).
    pub sbatch_args: Vec<String>,
}

/// A stage's `retries:` (cluster executors resubmit a failed job this many
/// times), with the memory and time limits multiplied on each new attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySpec {
    pub retries: u32,
    pub mem_factor: f64,
    pub time_factor: f64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec { retries: 0, mem_factor: 1.0, time_factor: 1.0 }
    }
}

#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    pub kind: String,
    pub inputs: Vec<InputSpec>,
    pub params: Map<String, Value>,
    pub resources: Resources,
    pub retry: RetrySpec,
    pub line: Option<usize>,
}

/// One input of a stage: `role` is how the stage refers to it; `stage` and
/// `output` say what it is (`fit.predictions` -> stage `fit`, output
/// `predictions`; a bare stage name means all of that stage's outputs).
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub role: String,
    pub stage: String,
    pub output: Option<String>,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub threads: Option<usize>,
    pub gpu: Option<usize>,
    pub mem: Option<String>,
    pub time: Option<String>,
}

impl Resources {
    /// `self` with unset fields taken from `defaults`.
    pub fn or(&self, defaults: &Resources) -> Resources {
        Resources {
            threads: self.threads.or(defaults.threads),
            gpu: self.gpu.or(defaults.gpu),
            mem: self.mem.clone().or_else(|| defaults.mem.clone()),
            time: self.time.clone().or_else(|| defaults.time.clone()),
        }
    }
}

/// Reads and checks a pipeline file, applying `--set stage.param=value`
/// overrides. Returns every problem found, not just the first.
pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineSpec, Diagnostics> {
    let text = read_pipeline_file(path)?;
    parse(path, &text, overrides)
}

fn read_pipeline_file(path: &Path) -> Result<String, Diagnostics> {
    let bytes = std::fs::read(path).map_err(|error| {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: None,
            stage: None,
            message: format!("cannot read the pipeline file: {error}"),
            hint: Some("check the path; pipelines usually live under pipelines/".into()),
        }])
    })?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + valid.iter().rev().take_while(|&&b| b != b'\n').count();
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: Some(line),
            stage: None,
            message: format!("the file is not UTF-8 text: an invalid byte at column {column}"),
            hint: Some("save the pipeline file as UTF-8".into()),
        }])
    })
}

/// Parses pipeline text as if it were read from `path`.
pub fn parse(path: &Path, text: &str, overrides: &[String]) -> Result<PipelineSpec, Diagnostics> {
    let (spec, errors) = parse_lenient(path, text, overrides)?;
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// Reads a pipeline file, returning what could be understood together with
/// the problems found, so that later checks can add theirs to the same list.
/// Only a file that is not YAML at all is an `Err`.
pub fn load_lenient(path: &Path, overrides: &[String]) -> Result<(PipelineSpec, Diagnostics), Diagnostics> {
    let text = read_pipeline_file(path)?;
    parse_lenient(path, &text, overrides)
}

/// Like [`parse`], but returns the partial spec with its problems.
pub fn parse_lenient(
    path: &Path,
    text: &str,
    overrides: &[String],
) -> Result<(PipelineSpec, Diagnostics), Diagnostics> {
    let mut parser =
        SpecParser { file: path.to_path_buf(), lines: LineIndex::new(text), errors: Diagnostics::default() };
    let yaml: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            return Err(Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                line: error.location().map(|l| l.line()),
                stage: None,
                message: format!("not valid YAML: {error}"),
                hint: None,
            }]))
        }
    };
    for (tag, line) in parser.lines.tags.clone() {
        parser.errors.push(Diagnostic {
            file: path.to_path_buf(),
            line: Some(line),
            stage: None,
            message: format!("YAML tag `{tag}` is not supported"),
            hint: Some("write the value as plain YAML, without a tag (a command line as text)".into()),
        });
    }
    let root = parser.yaml_to_json(&yaml, "");
    let spec = parser.pipeline(path, root, overrides);
    parser.errors.sort();
    Ok((spec, parser.errors))
}

struct SpecParser {
    file: PathBuf,
    lines: LineIndex,
    errors: Diagnostics,
}

impl SpecParser {
    fn error(&mut self, path: &str, stage: Option<&str>, message: String, hint: Option<String>) {
        self.errors.push(Diagnostic {
            file: self.file.clone(),
            line: self.lines.line_of(path),
            stage: stage.map(str::to_string),
            message,
            hint,
        });
    }

    fn unknown_keys(&mut self, map: &Map<String, Value>, known: &[&str], path: &str, stage: Option<&str>, what: &str) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = match nearest(key, known.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("{what} takes: {}", known.join(", ")),
                };
                self.error(&join(path, key), stage, format!("unknown key `{key}` in {what}"), Some(hint));
            }
        }
    }

    /// YAML -> JSON values: the rest of voxflow works on serde_json values,
    /// whose maps are sorted and whose numbers are plain.
    fn yaml_to_json(&mut self, value: &serde_yaml::Value, path: &str) -> Value {
        match value {
            serde_yaml::Value::Null => Value::Null,
            serde_yaml::Value::Bool(b) => Value::Bool(*b),
            serde_yaml::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    match serde_json::Number::from_f64(f) {
                        Some(number) => Value::Number(number),
                        None => {
                            self.error(path, None, format!("`{f}` is not a finite number"), None);
                            Value::Null
                        }
                    }
                }
            }
            serde_yaml::Value::String(s) => Value::String(s.clone()),
            serde_yaml::Value::Sequence(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.yaml_to_json(item, &join(path, &i.to_string())))
                    .collect(),
            ),
            serde_yaml::Value::Mapping(mapping) => {
                let mut out = Map::new();
                for (key, item) in mapping {
                    let key = match key {
                        serde_yaml::Value::String(s) => s.clone(),
                        serde_yaml::Value::Number(n) => n.to_string(),
                        serde_yaml::Value::Bool(b) => b.to_string(),
                        other => {
                            self.error(path, None, format!("mapping key {other:?} is not a string"), None);
                            continue;
                        }
                    };
                    let child = self.yaml_to_json(item, &join(path, &key));
                    out.insert(key, child);
                }
                Value::Object(out)
            }
            serde_yaml::Value::Tagged(tagged) => {
                // Reported with its line from the events (`LineIndex::tags`).
                if self.lines.tags.is_empty() {
                    self.error(path, None, format!("YAML tags such as `{}` are not supported", tagged.tag), None);
                }
                Value::Null
            }
        }
    }

    fn pipeline(&mut self, path: &Path, root: Value, overrides: &[String]) -> PipelineSpec {
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        let mut spec = PipelineSpec {
            file: path.to_path_buf(),
            base_dir,
            name: String::new(),
            store: None,
            default_resources: Resources::default(),
            default_params: Map::new(),
            matrix: Vec::new(),
            stages: Vec::new(),
            lines: self.lines.clone(),
            executor: None,
            slurm: SlurmSpec::default(),
        };
        let Value::Object(root) = root else {
            self.error("", None, "a pipeline file must be a mapping with `name` and `stages`".into(), None);
            return spec;
        };
        self.unknown_keys(&root, TOP_LEVEL_KEYS, "", None, "a pipeline");
        match root.get("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => {
                if name.contains(['/', '\\']) || name.starts_with('.') {
                    self.error(
                        "name",
                        None,
                        format!("pipeline name `{name}` must not contain `/` or start with `.`"),
                        None,
                    );
                }
                // It names the run's files in the store (`runs/<name>.state.json`).
                if name.len() > MAX_NAME_BYTES {
                    self.error(
                        "name",
                        None,
                        format!("the pipeline name is {} bytes long; at most {MAX_NAME_BYTES}", name.len()),
                        Some("the name is part of file names in the store; choose a shorter one".into()),
                    );
                }
                if name.chars().any(char::is_control) {
                    self.error(
                        "name",
                        None,
                        format!("pipeline name {name:?} holds a control character (a NUL, a newline)"),
                        Some("the name is part of file names in the store".into()),
                    );
                }
                spec.name = name.clone();
            }
            Some(_) => self.error("name", None, "`name` must be a non-empty string".into(), None),
            None => self.error("", None, "missing `name`".into(), Some("add `name: my-pipeline` at the top".into())),
        }
        match root.get("store") {
            None => {}
            Some(Value::String(store)) => spec.store = Some(PathBuf::from(store)),
            Some(_) => self.error("store", None, "`store` must be a path".into(), None),
        }
        match root.get("executor") {
            None => {}
            Some(Value::String(executor)) if EXECUTORS.contains(&executor.as_str()) => {
                spec.executor = Some(executor.clone())
            }
            Some(other) => self.error(
                "executor",
                None,
                format!("unknown executor {other}"),
                Some(format!("`executor` takes {}", EXECUTORS.join(" or "))),
            ),
        }
        if let Some(slurm) = root.get("slurm") {
            spec.slurm = self.slurm(slurm);
        }
        if let Some(defaults) = root.get("defaults") {
            self.defaults(defaults, &mut spec);
        }
        if let Some(matrix) = root.get("matrix") {
            spec.matrix = self.matrix(matrix);
        }
        match root.get("stages") {
            Some(Value::Object(stages)) if !stages.is_empty() => {
                for (name, stage) in stages {
                    if let Some(stage) = self.stage(name, stage) {
                        spec.stages.push(stage);
                    }
                }
            }
            Some(_) => self.error("stages", None, "`stages` must be a mapping of stage name to stage".into(), None),
            None => self.error("", None, "missing `stages`".into(), Some("add a `stages:` mapping".into())),
        }
        for assignment in overrides {
            self.apply_override(assignment, &mut spec);
        }
        spec
    }

    fn defaults(&mut self, defaults: &Value, spec: &mut PipelineSpec) {
        let Value::Object(map) = defaults else {
            self.error("defaults", None, "`defaults` must be a mapping".into(), None);
            return;
        };
        self.unknown_keys(map, DEFAULTS_KEYS, "defaults", None, "`defaults`");
        if let Some(resources) = map.get("resources") {
            spec.default_resources = self.resources(resources, "defaults.resources", None);
        }
        match map.get("params") {
            None => {}
            Some(Value::Object(params)) => {
                for (kind, value) in params {
                    if !value.is_object() {
                        self.error(
                            &format!("defaults.params.{kind}"),
                            None,
                            format!("defaults for kind `{kind}` must be a mapping"),
                            None,
                        );
                    }
                }
                spec.default_params = params.clone();
            }
            Some(_) => self.error(
                "defaults.params",
                None,
                "`defaults.params` maps a stage kind to its default params".into(),
                None,
            ),
        }
    }

    fn matrix(&mut self, matrix: &Value) -> Vec<(String, Vec<Value>)> {
        let Value::Object(axes) = matrix else {
            self.error("matrix", None, "`matrix` must map an axis name to a list of values".into(), None);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (axis, values) in axes {
            let path = format!("matrix.{axis}");
            if !is_identifier(axis) {
                self.error(&path, None, format!("matrix axis `{axis}` must be letters, digits, `_` or `-`"), None);
            }
            match values {
                Value::Array(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        // Two equal values would expand to two stages of one name.
                        if let Some(first) = items[..i].iter().position(|earlier| earlier == item) {
                            self.error(
                                &format!("{path}.{i}"),
                                None,
                                format!("matrix axis `{axis}` lists {item} twice (items {} and {})", first + 1, i + 1),
                                Some("each value of an axis must be different".into()),
                            );
                        }
                        if item.is_object() || item.is_array() {
                            self.error(
                                &format!("{path}.{i}"),
                                None,
                                format!("matrix values must be scalars; axis `{axis}` has a list or mapping"),
                                None,
                            );
                        }
                    }
                    out.push((axis.clone(), items.clone()));
                }
                _ => self.error(&path, None, format!("matrix axis `{axis}` must be a non-empty list"), None),
            }
        }
        out
    }

    fn slurm(&mut self, value: &Value) -> SlurmSpec {
        let mut slurm = SlurmSpec::default();
        let Value::Object(map) = value else {
            self.error("slurm", None, format!("`slurm` must be a mapping ({})", SLURM_KEYS.join(", ")), None);
            return slurm;
        };
        self.unknown_keys(map, SLURM_KEYS, "slurm", None, "`slurm`");
        for (key, slot) in
            [("partition", &mut slurm.partition), ("account", &mut slurm.account), ("qos", &mut slurm.qos)]
        {
            match map.get(key) {
                None => {}
                Some(Value::String(s)) if !s.trim().is_empty() => *slot = Some(s.clone()),
                Some(other) => {
                    self.error(&format!("slurm.{key}"), None, format!("`{key}` must be a name, found {other}"), None)
                }
            }
        }
        slurm.time = self.limit(map.get("time"), "slurm.time", None, "time");
        slurm.mem = self.limit(map.get("mem"), "slurm.mem", None, "mem");
        match map.get("max_jobs") {
            None => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
                slurm.max_jobs = n.as_u64().map(|n| n as usize)
            }
            Some(other) => self.error(
                "slurm.max_jobs",
                None,
                format!("`max_jobs` must be a positive integer, found {other}"),
                None,
            ),
        }
        match map.get("sbatch_args") {
            None => {}
            Some(Value::String(args)) => slurm.sbatch_args = args.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                slurm.sbatch_args = items.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            Some(other) => self.error(
                "slurm.sbatch_args",
                None,
                format!("`sbatch_args` must be a list of sbatch arguments, found {other}"),
                Some("for example `sbatch_args: [--constraint=avx2, --exclusive]`".into()),
            ),
        }
        slurm
    }

    /// A `time` or `mem` value: kept as written once it parses.
    fn limit(&mut self, value: Option<&Value>, path: &str, stage: Option<&str>, key: &str) -> Option<String> {
        let text = match value? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                self.error(
                    path,
                    stage,
                    format!("`{key}` must be a string such as `4G` or `01:00:00`, found {other}"),
                    None,
                );
                return None;
            }
        };
        let checked = if key == "time" {
            crate::exec::slurm::parse_time_minutes(&text).map(|_| ())
        } else {
            crate::exec::slurm::parse_mem_mb(&text).map(|_| ())
        };
        match checked {
            Ok(()) => Some(text),
            Err(message) => {
                let hint = if key == "time" {
                    "write minutes (`30`), `HH:MM:SS`, `D-HH:MM:SS`, or `90m`, `2h`, `1d`"
                } else {
                    "write a size such as `512M`, `4G` or `1T` (a bare number is megabytes)"
                };
                self.error(path, stage, format!("`{key}`: {message}"), Some(hint.into()));
                None
            }
        }
    }

    fn retry(&mut self, map: &Map<String, Value>, path: &str, stage: &str) -> RetrySpec {
        let mut retry = RetrySpec::default();
        match map.get("retries") {
            None => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 100) => {
                retry.retries = n.as_u64().unwrap_or(0) as u32
            }
            Some(other) => self.error(
                &format!("{path}.retries"),
                Some(stage),
                format!("`retries` must be a whole number of extra attempts (0 to 100), found {other}"),
                None,
            ),
        }
        for (key, slot) in [("retry_mem_factor", &mut retry.mem_factor), ("retry_time_factor", &mut retry.time_factor)]
        {
            match map.get(key) {
                None => {}
                Some(Value::Number(n)) if n.as_f64().is_some_and(|f| (1.0..=100.0).contains(&f)) => {
                    *slot = n.as_f64().unwrap_or(1.0)
                }
                Some(other) => self.error(
                    &format!("{path}.{key}"),
                    Some(stage),
                    format!("`{key}` must be a number from 1 to 100, found {other}"),
                    Some("each new attempt multiplies the limit by this factor, e.g. 2".into()),
                ),
            }
        }
        retry
    }

    fn resources(&mut self, value: &Value, path: &str, stage: Option<&str>) -> Resources {
        let Value::Object(map) = value else {
            self.error(path, stage, "`resources` must be a mapping (threads, gpu, mem, time)".into(), None);
            return Resources::default();
        };
        self.unknown_keys(map, RESOURCE_KEYS, path, stage, "`resources`");
        let mut resources = Resources::default();
        for (key, slot) in [("threads", &mut resources.threads), ("gpu", &mut resources.gpu)] {
            match map.get(key) {
                None => {}
                Some(Value::Number(n)) if n.as_u64().is_some() => *slot = n.as_u64().map(|v| v as usize),
                Some(other) => self.error(
                    &join(path, key),
                    stage,
                    format!("`{key}` must be a non-negative integer, found {other}"),
                    None,
                ),
            }
        }
        resources.mem = self.limit(map.get("mem"), &join(path, "mem"), stage, "mem");
        resources.time = self.limit(map.get("time"), &join(path, "time"), stage, "time");
        if resources.threads == Some(0) {
            self.error(&join(path, "threads"), stage, "`threads` must be at least 1".into(), None);
        }
        resources
    }

    fn stage(&mut self, name: &str, value: &Value) -> Option<StageSpec> {
        let path = format!("stages.{name}");
        if !is_identifier(name) {
            self.error(
                &path,
                Some(name),
                format!("stage name `{name}` must be letters, digits, `_` or `-` (no dots or brackets)"),
                None,
            );
        }
        let Value::Object(map) = value else {
            self.error(&path, Some(name), "a stage must be a mapping with at least `kind`".into(), None);
            return None;
        };
        self.unknown_keys(map, STAGE_KEYS, &path, Some(name), "a stage");
        let kind = match map.get("kind") {
            Some(Value::String(kind)) => kind.clone(),
            Some(other) => {
                self.error(
                    &format!("{path}.kind"),
                    Some(name),
                    format!("`kind` must be a string, found {other}"),
                    None,
                );
                String::new()
            }
            None => {
                self.error(
                    &path,
                    Some(name),
                    "missing `kind`".into(),
                    Some("run `voxflow kinds` to list the stage kinds".into()),
                );
                String::new()
            }
        };
        let mut params = match map.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params.clone(),
            Some(other) => {
                self.error(
                    &format!("{path}.params"),
                    Some(name),
                    format!("`params` must be a mapping, found {other}"),
                    None,
                );
                Map::new()
            }
        };
        for key in ["run", "outputs"] {
            if let Some(value) = map.get(key) {
                if kind != "command" && crate::stage::lookup(&kind).is_some() {
                    self.error(
                        &format!("{path}.{key}"),
                        Some(name),
                        format!("`{key}` is only for `command` stages"),
                        Some("put it under `params` if this kind takes it".into()),
                    );
                } else if params.contains_key(key) {
                    self.error(
                        &format!("{path}.{key}"),
                        Some(name),
                        format!("`{key}` is given both at the stage and under `params`"),
                        None,
                    );
                } else {
                    params.insert(key.to_string(), value.clone());
                }
            }
        }
        let inputs = match map.get("inputs") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => self.inputs(value, &format!("{path}.inputs"), name),
        };
        let resources = match map.get("resources") {
            None => Resources::default(),
            Some(value) => self.resources(value, &format!("{path}.resources"), Some(name)),
        };
        let retry = self.retry(map, &path, name);
        Some(StageSpec {
            name: name.to_string(),
            kind,
            inputs,
            params,
            resources,
            retry,
            line: self.lines.line_of(&path),
        })
    }

    fn inputs(&mut self, value: &Value, path: &str, stage: &str) -> Vec<InputSpec> {
        let mut out = Vec::new();
        let mut add = |this: &mut SpecParser, role: String, reference: &Value, item_path: String| {
            let Value::String(reference) = reference else {
                this.error(
                    &item_path,
                    Some(stage),
                    format!("an input must be a stage name or `stage.output`, found {reference}"),
                    None,
                );
                return;
            };
            let (upstream, output) = match reference.split_once('.') {
                Some((upstream, output)) => (upstream.to_string(), Some(output.to_string())),
                None => (reference.clone(), None),
            };
            out.push(InputSpec { role, stage: upstream, output, line: this.lines.line_of(&item_path) });
        };
        match value {
            Value::String(_) => add(self, role_of(value), value, path.to_string()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    add(self, role_of(item), item, format!("{path}.{i}"));
                }
            }
            Value::Object(map) => {
                for (role, item) in map {
                    add(self, role.clone(), item, format!("{path}.{role}"));
                }
            }
            other => self.error(
                path,
                Some(stage),
                format!("`inputs` must be a list of stage names or a mapping role -> stage, found {other}"),
                None,
            ),
        }
        let mut seen = std::collections::BTreeSet::new();
        for input in &out {
            if !seen.insert(input.role.clone()) {
                self.errors.push(Diagnostic {
                    file: self.file.clone(),
                    line: input.line,
                    stage: Some(stage.to_string()),
                    message: format!("input role `{}` is given twice", input.role),
                    hint: Some("use the mapping form `inputs: {features: a, responses: b}` to name each input".into()),
                });
            }
        }
        out
    }

    fn apply_override(&mut self, assignment: &str, spec: &mut PipelineSpec) {
        let file = PathBuf::from("--set");
        let fail = |this: &mut SpecParser, message: String, hint: Option<String>| {
            this.errors.push(Diagnostic { file: file.clone(), line: None, stage: None, message, hint });
        };
        // An example from this pipeline: a stage and a param it sets.
        let example = spec
            .stages
            .iter()
            .flat_map(|s| s.params.iter().map(move |(param, value)| (s, param, value)))
            .filter(|(_, param, _)| !matches!(param.as_str(), "run" | "outputs" | "shell" | "files"))
            .map(|(s, param, value)| format!("{}.{param}={value}", s.name))
            .find(|text| text.len() <= 40)
            .unwrap_or_else(|| "fit.alphas=[1, 10, 100]".into());
        let Some((target, raw_value)) = assignment.split_once('=') else {
            let hint = format!("write `--set '{example}'`");
            fail(self, format!("`{assignment}` is not `stage.param=value`"), Some(hint));
            return;
        };
        let mut parts = target.split('.');
        let stage_name = parts.next().unwrap_or_default();
        let keys: Vec<&str> = parts.collect();
        if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
            let hint = format!("write `--set '{example}'`");
            fail(self, format!("`{target}` must name a stage and a param, as in `{example}`"), Some(hint));
            return;
        }
        let before = self.errors.0.len();
        let value: Value = match serde_yaml::from_str::<serde_yaml::Value>(raw_value) {
            Ok(yaml) => self.yaml_to_json(&yaml, ""),
            Err(_) => Value::String(raw_value.to_string()),
        };
        // A problem of the value is the command line's, not the file's.
        for error in &mut self.errors.0[before..] {
            error.file = file.clone();
            error.line = None;
            error.message = format!("`--set {assignment}`: {}", error.message);
        }
        // `--set matrix.AXIS=[values]` replaces a sweep's values (a stage
        // named `matrix` keeps its own meaning).
        if stage_name == "matrix" && !spec.stages.iter().any(|s| s.name == "matrix") {
            let axes: Vec<String> = spec.matrix.iter().map(|(axis, _)| axis.clone()).collect();
            let Some(entry) = spec.matrix.iter_mut().find(|(axis, _)| keys.len() == 1 && axis == keys[0]) else {
                let hint = nearest(keys[0], axes.iter().map(String::as_str))
                    .map(|n| format!("did you mean `matrix.{n}`?"))
                    .or_else(|| Some(format!("the matrix axes are: {}", axes.join(", "))));
                fail(self, format!("`--set {assignment}`: no matrix axis `{}`", keys.join(".")), hint);
                return;
            };
            match value {
                Value::Array(values)
                    if !values.is_empty() && values.iter().all(|v| !v.is_array() && !v.is_object()) =>
                {
                    entry.1 = values
                }
                _ => fail(
                    self,
                    format!("`--set {assignment}`: a matrix axis takes a non-empty list"),
                    Some(format!("write `--set 'matrix.{}=[a, b]'`", entry.0)),
                ),
            }
            return;
        }
        let names: Vec<String> = spec.stages.iter().map(|s| s.name.clone()).collect();
        let Some(stage) = spec.stages.iter_mut().find(|s| s.name == stage_name) else {
            let hint = nearest(stage_name, names.iter().map(String::as_str)).map(|n| format!("did you mean `{n}`?"));
            fail(self, format!("`--set {assignment}`: no stage named `{stage_name}`"), hint);
            return;
        };
        let mut map = &mut stage.params;
        for key in &keys[..keys.len() - 1] {
            let entry = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().expect("just made an object");
        }
        map.insert(keys[keys.len() - 1].to_string(), value);
    }
}

fn role_of(reference: &Value) -> String {
    match reference {
        Value::String(s) => s.split('.').next_back().unwrap_or(s).to_string(),
        _ => String::new(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests;
