//! From a [`PipelineSpec`] to a checked, expanded [`Pipeline`]: stage kinds
//! looked up, params canonicalised, `matrix:` axes expanded, inputs resolved
//! to concrete upstream stages, cycles found. Every problem becomes a
//! [`Diagnostic`]; a `Pipeline` exists only when there are none.
//!
//! Matrix expansion: a stage is expanded over every axis its params mention
//! as `${matrix.AXIS}` and every axis of its upstream stages. Expanded names
//! read `stage[axis=value,...]`, axes in the order of the `matrix:` block. An
//! expanded stage takes its inputs from the upstream expansion with the same
//! values on the shared axes.
//!
//! Gathering: an input written `stage[*]` (or `stage[*].output`) takes every
//! expansion of `stage` that agrees with this stage's own axes, and does not
//! pass the upstream's axes on; each becomes an input of role
//! `role[axis=value,...]` (the upstream's matrix values, as in its name), so
//! one stage can read a whole sweep (`alignment.summary`). The role as
//! written still satisfies the kind's required inputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use petgraph::graph::DiGraph;
use serde_json::{Map, Value};

use crate::spec::{nearest, Diagnostic, Diagnostics, PipelineSpec, Resources};
use crate::stage::{self, Stage};

/// A checked pipeline, stages in a topological order.
pub struct Pipeline {
    pub name: String,
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub store_dir: PathBuf,
    /// Matrix axis names, in file order.
    pub axes: Vec<String>,
    pub stages: Vec<PlannedStage>,
    /// What the file says about executors (`executor:`, `slurm:`, each
    /// stage's `retries:`), kept so that `run` need not parse the file again.
    pub executor: Option<String>,
    pub slurm: crate::spec::SlurmSpec,
    /// By stage name as written in the file (before matrix expansion).
    pub retries: BTreeMap<String, crate::spec::RetrySpec>,
}

/// One stage after expansion.
pub struct PlannedStage {
    pub name: String,
    /// The stage's name in the file (before expansion).
    pub base: String,
    pub kind: &'static dyn Stage,
    pub params: Value,
    pub inputs: Vec<PlannedInput>,
    /// Params naming files, resolved against the pipeline directory.
    pub files: Vec<(String, PathBuf)>,
    pub resources: Resources,
    /// The matrix values this expansion carries.
    pub matrix: Vec<(String, Value)>,
    pub line: Option<usize>,
}

impl PlannedStage {
    /// Whether the scheduler should give this stage a GPU slot:
    /// `resources: {gpu: N}` or a `device` param that may use one.
    pub fn wants_gpu(&self) -> bool {
        self.resources.gpu.unwrap_or(0) > 0 || self.kind.wants_gpu(&self.params)
    }
}

pub struct PlannedInput {
    pub role: String,
    /// Index into `Pipeline::stages`.
    pub upstream: usize,
    pub output: Option<String>,
}

impl Pipeline {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Indices of `name` itself, or of all expansions of a base stage name.
    pub fn select(&self, name: &str) -> Vec<usize> {
        match self.index_of(name) {
            Some(i) => vec![i],
            None => (0..self.stages.len()).filter(|&i| self.stages[i].base == name).collect(),
        }
    }

    /// For each stage, the stages that consume it.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.stages.len()];
        for (i, stage) in self.stages.iter().enumerate() {
            for input in &stage.inputs {
                if !out[input.upstream].contains(&i) {
                    out[input.upstream].push(i);
                }
            }
        }
        out
    }
}

/// Checks and expands a pipeline. `store_override` replaces `store:`.
pub fn resolve(spec: &PipelineSpec, store_override: Option<PathBuf>) -> Result<Pipeline, Diagnostics> {
    let mut errors = Diagnostics::default();
    let error = |errors: &mut Diagnostics, path: &str, stage: Option<&str>, message: String, hint: Option<String>| {
        errors.push(Diagnostic {
            file: spec.file.clone(),
            line: spec.lines.line_of(path),
            stage: stage.map(str::to_string),
            message,
            hint,
        });
    };
    let names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    let by_name: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    // `stage[*]` gathers every expansion of `stage`; it names `stage`.
    let by_name = |name: &str| by_name.get(gathered(name).unwrap_or(name)).copied();
    let axis_names: Vec<String> = spec.matrix.iter().map(|(axis, _)| axis.clone()).collect();

    // Kinds.
    let mut kinds: Vec<Option<&'static dyn Stage>> = Vec::new();
    for stage in &spec.stages {
        let kind = stage::lookup(&stage.kind);
        if kind.is_none() && !stage.kind.is_empty() {
            let known = stage::KINDS.iter().map(|k| k.kind());
            let hint = match nearest(&stage.kind, known) {
                Some(near) => format!("did you mean `{near}`? (`voxflow kinds` lists them all)"),
                None => "`voxflow kinds` lists the stage kinds".into(),
            };
            error(
                &mut errors,
                &format!("stages.{}.kind", stage.name),
                Some(&stage.name),
                format!("unknown kind `{}`", stage.kind),
                Some(hint),
            );
        }
        kinds.push(kind);
    }

    // The graph of stages as written, and its cycles.
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..spec.stages.len()).map(|i| graph.add_node(i)).collect();
    for (i, stage) in spec.stages.iter().enumerate() {
        for input in &stage.inputs {
            match by_name(&input.stage) {
                Some(j) => {
                    graph.add_edge(nodes[j], nodes[i], ());
                }
                None => {
                    let hint = nearest(&input.stage, names.iter().copied()).map(|n| format!("did you mean `{n}`?"));
                    errors.push(Diagnostic {
                        file: spec.file.clone(),
                        line: input.line.or(stage.line),
                        stage: Some(stage.name.clone()),
                        message: format!("input `{}` names no stage of this pipeline", input.stage),
                        hint: hint.or_else(|| Some(format!("stages: {}", names.join(", ")))),
                    });
                }
            }
        }
    }
    for component in petgraph::algo::tarjan_scc(&graph) {
        let is_cycle = component.len() > 1 || graph.contains_edge(component[0], component[0]);
        if is_cycle {
            let mut members: Vec<usize> = component.iter().map(|n| graph[*n]).collect();
            members.sort();
            let listed: Vec<&str> = members.iter().map(|&i| names[i]).collect();
            error(
                &mut errors,
                &format!("stages.{}", listed[0]),
                Some(listed[0]),
                format!("the inputs form a cycle: {}", listed.join(" -> ")),
                Some("a stage cannot depend on itself, directly or through others".into()),
            );
        }
    }
    // A topological order that keeps file order where the graph allows.
    let mut indegree: Vec<usize> = (0..spec.stages.len())
        .map(|i| graph.neighbors_directed(nodes[i], petgraph::Direction::Incoming).count())
        .collect();
    let mut ready: BTreeSet<usize> = (0..spec.stages.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(spec.stages.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for next in graph.neighbors_directed(nodes[i], petgraph::Direction::Outgoing) {
            let j = graph[next];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() < spec.stages.len() {
        // No expansion is possible; still report every stage's own param problems.
        for (stage, kind) in spec.stages.iter().zip(&kinds) {
            let Some(kind) = kind else { continue };
            let mut params = Value::Object(stage.params.clone());
            if let Some(Value::Object(defaults)) = spec.default_params.get(&stage.kind) {
                params = merge_defaults(defaults, params);
            }
            let mut refs = BTreeSet::new();
            collect_axis_refs(&params, &mut refs);
            if !refs.is_empty() {
                continue;
            }
            if let Err(problems) = kind.check_params(&params) {
                for problem in problems {
                    let (path, message) = param_problem(&stage.name, &problem);
                    error(&mut errors, &path, Some(&stage.name), message, problem.hint);
                }
            }
        }
        errors.sort();
        return Err(errors);
    }

    // Axes of each stage: its own references plus those of its upstreams.
    let mut axes: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); spec.stages.len()];
    for &i in &order {
        let stage = &spec.stages[i];
        let mut own = BTreeSet::new();
        collect_axis_refs(&Value::Object(stage.params.clone()), &mut own);
        // `inputs: {features: "lm.layer${matrix.layer}"}`: an output chosen per matrix value.
        for input in &stage.inputs {
            if let Some(output) = &input.output {
                collect_axis_refs(&Value::String(output.clone()), &mut own);
            }
        }
        for axis in own {
            match axis_names.iter().position(|a| *a == axis) {
                Some(position) => {
                    axes[i].insert(position);
                }
                None => error(
                    &mut errors,
                    &format!("stages.{}.params", stage.name),
                    Some(&stage.name),
                    format!("`${{matrix.{axis}}}` names no matrix axis"),
                    Some(if axis_names.is_empty() {
                        "add a top-level `matrix:` block".into()
                    } else {
                        format!("axes: {}", axis_names.join(", "))
                    }),
                ),
            }
        }
        for input in &stage.inputs {
            if gathered(&input.stage).is_some() {
                continue; // a gathered input passes no axes on
            }
            if let Some(j) = by_name(&input.stage) {
                let upstream = axes[j].clone();
                axes[i].extend(upstream);
            }
        }
    }

    // Expansion.
    let mut planned: Vec<PlannedStage> = Vec::new();
    let mut expansions: Vec<Vec<usize>> = vec![Vec::new(); spec.stages.len()];
    let mut seen_errors = BTreeSet::new();
    for &i in &order {
        let stage = &spec.stages[i];
        let Some(kind) = kinds[i] else { continue };
        let stage_axes: Vec<usize> = axes[i].iter().copied().collect();
        for combination in combinations(&stage_axes, &spec.matrix) {
            let values: Vec<(String, Value)> =
                stage_axes.iter().zip(&combination).map(|(&a, v)| (axis_names[a].clone(), v.clone())).collect();
            let name = expanded_name(&stage.name, &values);
            let mut params = Value::Object(stage.params.clone());
            substitute(&mut params, &values);
            if let Some(Value::Object(defaults)) = spec.default_params.get(&stage.kind) {
                params = merge_defaults(defaults, params);
            }
            let params = match kind.check_params(&params) {
                Ok(canonical) => canonical,
                Err(problems) => {
                    for problem in problems {
                        let (path, message) = param_problem(&stage.name, &problem);
                        if seen_errors.insert((stage.name.clone(), message.clone())) {
                            error(&mut errors, &path, Some(&stage.name), message, problem.hint);
                        }
                    }
                    continue;
                }
            };
            let mut inputs = Vec::new();
            for input in &stage.inputs {
                let Some(j) = by_name(&input.stage) else { continue };
                let wanted: Vec<(String, Value)> = values
                    .iter()
                    .filter(|(axis, _)| axes[j].iter().any(|&a| axis_names[a] == *axis))
                    .cloned()
                    .collect();
                let chosen: Vec<usize> = if gathered(&input.stage).is_some() {
                    expansions[j]
                        .iter()
                        .copied()
                        .filter(|&u| wanted.iter().all(|shared| planned[u].matrix.contains(shared)))
                        .collect()
                } else {
                    expansions[j].iter().copied().filter(|&u| planned[u].matrix == wanted).take(1).collect()
                };
                for upstream in chosen {
                    let output = input.output.as_ref().map(|output| {
                        let mut text = Value::String(output.clone());
                        substitute(&mut text, &values);
                        match text {
                            Value::String(text) => text,
                            other => display_value(&other),
                        }
                    });
                    if let Some(output) = &output {
                        let outputs = planned[upstream].kind.outputs(&planned[upstream].params);
                        if !outputs.contains(output)
                            && seen_errors.insert((stage.name.clone(), format!("output {output}")))
                        {
                            errors.push(Diagnostic {
                                file: spec.file.clone(),
                                line: input.line,
                                stage: Some(stage.name.clone()),
                                message: format!("stage `{}` has no output `{output}`", input.stage),
                                hint: Some(format!(
                                    "its outputs: {}",
                                    if outputs.is_empty() { "none".into() } else { outputs.join(", ") }
                                )),
                            });
                        }
                    }
                    let role = if gathered(&input.stage).is_some() {
                        expanded_name(&input.role, &planned[upstream].matrix)
                    } else {
                        input.role.clone()
                    };
                    inputs.push(PlannedInput { role, upstream, output });
                }
            }
            let roles: Vec<&str> = stage.inputs.iter().map(|input| input.role.as_str()).collect();
            // Inputs every stage of the kind needs, whatever its params.
            let always = kind.required_inputs(&Value::Null);
            for required in kind.required_inputs(&params) {
                if !roles.contains(&required) && seen_errors.insert((stage.name.clone(), format!("input {required}"))) {
                    let mut hint = format!("add `inputs: {{{required}: <stage or stage.output>}}`");
                    if !always.contains(&required) {
                        hint.push_str(", or change the params that ask for it");
                    }
                    error(
                        &mut errors,
                        &format!("stages.{}", stage.name),
                        Some(&stage.name),
                        format!("kind `{}` needs an input named `{required}`", kind.kind()),
                        Some(hint),
                    );
                }
            }
            for (message, hint) in kind.input_problems(&params, &roles) {
                if seen_errors.insert((stage.name.clone(), message.clone())) {
                    error(&mut errors, &format!("stages.{}", stage.name), Some(&stage.name), message, Some(hint));
                }
            }
            let files = kind
                .file_params(&params)
                .into_iter()
                .map(|(param, path)| {
                    let path = PathBuf::from(&path);
                    let resolved = if path.is_absolute() { path } else { spec.base_dir.join(path) };
                    (param, resolved)
                })
                .collect::<Vec<_>>();
            for (param, path) in &files {
                if !path.exists() && seen_errors.insert((stage.name.clone(), format!("file {param}"))) {
                    error(
                        &mut errors,
                        &format!("stages.{}.params.{param}", stage.name),
                        Some(&stage.name),
                        format!("param `{param}`: {} does not exist", path.display()),
                        Some(match kind.missing_file_hint(param) {
                            Some(how) => format!("paths are relative to the pipeline file's directory; {how}"),
                            None => "paths are relative to the pipeline file's directory".into(),
                        }),
                    );
                }
            }
            expansions[i].push(planned.len());
            planned.push(PlannedStage {
                name,
                base: stage.name.clone(),
                kind,
                params,
                inputs,
                files,
                resources: stage.resources.or(&spec.default_resources),
                matrix: values,
                line: stage.line,
            });
        }
    }
    if !errors.is_empty() {
        errors.sort();
        return Err(errors);
    }
    let store_dir = match store_override.or_else(|| spec.store.clone()) {
        Some(path) if path.is_absolute() => path,
        Some(path) => spec.base_dir.join(path),
        None => spec.base_dir.join(".voxflow"),
    };
    Ok(Pipeline {
        name: spec.name.clone(),
        file: spec.file.clone(),
        base_dir: spec.base_dir.clone(),
        store_dir,
        axes: axis_names,
        stages: planned,
        executor: spec.executor.clone(),
        slurm: spec.slurm.clone(),
        retries: spec.stages.iter().map(|stage| (stage.name.clone(), stage.retry.clone())).collect(),
    })
}

/// The line path and message of a param problem of stage `stage`.
fn param_problem(stage: &str, problem: &crate::stage::ParamError) -> (String, String) {
    if problem.path.is_empty() {
        (format!("stages.{stage}.params"), problem.message.clone())
    } else {
        (format!("stages.{stage}.params.{}", problem.path), format!("param `{}`: {}", problem.path, problem.message))
    }
}

fn collect_axis_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${matrix.") {
                let after = &rest[start + 9..];
                match after.find('}') {
                    Some(end) => {
                        out.insert(after[..end].to_string());
                        rest = &after[end + 1..];
                    }
                    None => break,
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_axis_refs(item, out)),
        Value::Object(map) => map.values().for_each(|item| collect_axis_refs(item, out)),
        _ => {}
    }
}

fn substitute(value: &mut Value, values: &[(String, Value)]) {
    match value {
        Value::String(text) => {
            for (axis, axis_value) in values {
                let placeholder = format!("${{matrix.{axis}}}");
                if *text == placeholder {
                    *value = axis_value.clone();
                    return;
                }
                if text.contains(&placeholder) {
                    *text = text.replace(&placeholder, &display_value(axis_value));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| substitute(item, values)),
        Value::Object(map) => map.values_mut().for_each(|item| substitute(item, values)),
        _ => {}
    }
}

/// `defaults` under `params`: params win, nested mappings merge.
fn merge_defaults(defaults: &Map<String, Value>, params: Value) -> Value {
    let Value::Object(mut params) = params else { return params };
    for (key, default) in defaults {
        match (params.get_mut(key), default) {
            (None, _) => {
                params.insert(key.clone(), default.clone());
            }
            (Some(existing @ Value::Object(_)), Value::Object(inner)) => {
                let merged = merge_defaults(inner, existing.take());
                *existing = merged;
            }
            _ => {}
        }
    }
    Value::Object(params)
}

fn combinations(axes: &[usize], matrix: &[(String, Vec<Value>)]) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    for &axis in axes {
        let mut next = Vec::new();
        for prefix in &out {
            for value in &matrix[axis].1 {
                let mut combination = prefix.clone();
                combination.push(value.clone());
                next.push(combination);
            }
        }
        out = next;
    }
    out
}

/// `stage` of an input written `stage[*]` (every expansion of `stage`).
pub fn gathered(reference: &str) -> Option<&str> {
    reference.strip_suffix("[*]")
}

/// `stage[axis=value,...]`, or `stage` when there are no axes.
pub fn expanded_name(base: &str, values: &[(String, Value)]) -> String {
    if values.is_empty() {
        return base.to_string();
    }
    let parts: Vec<String> = values.iter().map(|(axis, value)| format!("{axis}={}", display_value(value))).collect();
    format!("{base}[{}]", parts.join(","))
}

pub fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The matrix values of a stage as a map (for tables and JSON).
pub fn matrix_map(stage: &PlannedStage) -> BTreeMap<String, Value> {
    stage.matrix.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Scratch;

    fn load(label: &str, yaml: &str) -> Pipeline {
        let dir = Scratch::new(label);
        dir.pipeline(yaml, &[]).unwrap_or_else(|problems| panic!("{problems}"))
    }

    fn problems(label: &str, yaml: &str) -> Vec<String> {
        let dir = Scratch::new(label);
        match dir.pipeline(yaml, &[]) {
            Ok(_) => panic!("the pipeline loaded"),
            Err(problems) => problems.0.iter().map(|p| p.message.clone()).collect(),
        }
    }

    fn names(pipeline: &Pipeline) -> Vec<&str> {
        pipeline.stages.iter().map(|s| s.name.as_str()).collect()
    }

    /// The upstream stage of each input of stage `name`, by role.
    fn upstreams<'a>(pipeline: &'a Pipeline, name: &str) -> Vec<(&'a str, &'a str, Option<&'a str>)> {
        let stage = &pipeline.stages[pipeline.index_of(name).unwrap_or_else(|| panic!("no stage {name}"))];
        stage
            .inputs
            .iter()
            .map(|i| (i.role.as_str(), pipeline.stages[i.upstream].name.as_str(), i.output.as_deref()))
            .collect()
    }

    const SWEEP: &str = r#"
name: sweep
matrix:
  method: [lanczos, last]
  n: [1, 2]
stages:
  use:
    kind: command
    inputs: {data: src, base: root}
    run: cat {inputs.data} > {outputs.out}
    outputs: {out: use.txt}
    params: {n: "${matrix.n}", label: "n is ${matrix.n}"}
  root:
    kind: command
    run: echo root > {outputs.out}
    outputs: {out: root.txt}
  src:
    kind: command
    inputs: [root]
    run: echo {params.m} > {outputs.out}
    outputs: {out: src.txt}
    params: {m: "${matrix.method}"}
"#;

    #[test]
    fn a_gathered_input_takes_every_expansion_and_passes_no_axis_on() {
        let yaml = format!(
            "{SWEEP}  all:\n    kind: command\n    inputs: {{used: \"use[*].out\"}}\n    run: echo all > {{outputs.out}}\n    outputs: {{out: all.txt}}\n  per_n:\n    kind: command\n    inputs: {{used: \"use[*]\"}}\n    run: echo n > {{outputs.out}}\n    outputs: {{out: n.txt}}\n    params: {{n: \"${{matrix.n}}\"}}\n"
        );
        let pipeline = load("gather", &yaml);
        assert!(names(&pipeline).contains(&"all"), "{:?}", names(&pipeline));
        assert_eq!(
            upstreams(&pipeline, "all"),
            [
                ("used[method=lanczos,n=1]", "use[method=lanczos,n=1]", Some("out")),
                ("used[method=lanczos,n=2]", "use[method=lanczos,n=2]", Some("out")),
                ("used[method=last,n=1]", "use[method=last,n=1]", Some("out")),
                ("used[method=last,n=2]", "use[method=last,n=2]", Some("out")),
            ]
        );
        // Expanded over its own axis only, it gathers the expansions that agree on it.
        assert_eq!(
            upstreams(&pipeline, "per_n[n=2]"),
            [
                ("used[method=lanczos,n=2]", "use[method=lanczos,n=2]", None),
                ("used[method=last,n=2]", "use[method=last,n=2]", None),
            ]
        );
    }

    #[test]
    fn matrix_axes_expand_stages_and_inputs_match_by_value() {
        let pipeline = load("sweep", SWEEP);
        assert_eq!(pipeline.axes, ["method", "n"]);
        // Upstreams first; `use` also expands over src's axis, axes in the
        // order of the `matrix:` block whatever order the params name them.
        assert_eq!(
            names(&pipeline),
            [
                "root",
                "src[method=lanczos]",
                "src[method=last]",
                "use[method=lanczos,n=1]",
                "use[method=lanczos,n=2]",
                "use[method=last,n=1]",
                "use[method=last,n=2]",
            ]
        );
        assert_eq!(
            upstreams(&pipeline, "use[method=last,n=2]"),
            [("data", "src[method=last]", None), ("base", "root", None)]
        );
        assert_eq!(upstreams(&pipeline, "src[method=lanczos]"), [("root", "root", None)]);
        let stage = &pipeline.stages[pipeline.index_of("use[method=lanczos,n=2]").unwrap()];
        // A whole-value reference keeps the axis value's type; inside text it is spelled out.
        assert_eq!(stage.params["n"], serde_json::json!(2));
        assert_eq!(stage.params["label"], "n is 2");
        assert_eq!(stage.base, "use");
        assert_eq!(stage.matrix, [("method".to_string(), Value::from("lanczos")), ("n".to_string(), Value::from(2))]);
        assert_eq!(pipeline.select("src"), [1, 2]);
        assert_eq!(pipeline.select("src[method=last]"), [2]);
        assert_eq!(pipeline.dependents()[0], [1, 2, 3, 4, 5, 6]);
    }

    const LAYERS: &str = r#"
name: layers
matrix:
  layer: [LAYERS]
stages:
  lm:
    kind: command
    run: echo > {outputs.layer1} && echo > {outputs.layer2}
    outputs: {layer1: l1.txt, layer2: l2.txt}
  fit:
    kind: command
    inputs: {features: "lm.layer${matrix.layer}"}
    run: cat {inputs.features} > {outputs.out}
    outputs: {out: fit.txt}
"#;

    #[test]
    fn an_input_output_chosen_per_matrix_value() {
        let pipeline = load("layers", &LAYERS.replace("LAYERS", "1, 2"));
        // `lm` names no axis: it runs once, and each `fit` takes its own output.
        assert_eq!(names(&pipeline), ["lm", "fit[layer=1]", "fit[layer=2]"]);
        assert_eq!(upstreams(&pipeline, "fit[layer=2]"), [("features", "lm", Some("layer2"))]);
        assert_eq!(upstreams(&pipeline, "fit[layer=1]"), [("features", "lm", Some("layer1"))]);

        let messages = problems("layers-missing", &LAYERS.replace("LAYERS", "1, 3"));
        assert_eq!(messages, ["stage `lm` has no output `layer3`"]);
    }

    #[test]
    fn cycles_are_reported_with_their_members() {
        let messages = problems(
            "cycle",
            r#"
name: cycle
stages:
  a:
    kind: command
    inputs: [c]
    run: cat {inputs.c} > {outputs.out}
    outputs: {out: a.txt}
  b:
    kind: command
    inputs: [a]
    run: cat {inputs.a} > {outputs.out}
    outputs: {out: b.txt}
  c:
    kind: command
    inputs: [b]
    run: cat {inputs.b} > {outputs.out}
    outputs: {out: c.txt}
  d:
    kind: command
    run: echo > {outputs.out}
    outputs: {out: d.txt}
"#,
        );
        assert_eq!(messages, ["the inputs form a cycle: a -> b -> c"]);

        let messages = problems(
            "self-cycle",
            "name: self\nstages:\n  a:\n    kind: command\n    inputs: [a]\n    run: cat {inputs.a} > {outputs.out}\n    outputs: {out: a.txt}\n",
        );
        assert_eq!(messages, ["the inputs form a cycle: a"]);
    }

    #[test]
    fn unknown_axes_stages_and_kinds_are_named() {
        let messages = problems(
            "unknown",
            r#"
name: unknown
matrix:
  method: [a]
stages:
  a:
    kind: comand
  b:
    kind: command
    inputs: [aa]
    run: echo {params.x} > {outputs.out}
    outputs: {out: b.txt}
    params: {x: "${matrix.methd}"}
"#,
        );
        assert!(messages.contains(&"unknown kind `comand`".to_string()), "{messages:?}");
        assert!(messages.contains(&"input `aa` names no stage of this pipeline".to_string()), "{messages:?}");
        assert!(messages.contains(&"`${matrix.methd}` names no matrix axis".to_string()), "{messages:?}");
    }

    #[test]
    fn file_params_resolve_against_the_pipeline_directory() {
        let dir = Scratch::new("files");
        dir.write("data.txt", "1 2 3\n");
        let pipeline = dir
            .pipeline(
                "name: files\nstages:\n  a:\n    kind: command\n    run: cat data.txt > {outputs.out}\n    outputs: {out: a.txt}\n    params: {files: [data.txt]}\n",
                &[],
            )
            .unwrap_or_else(|problems| panic!("{problems}"));
        assert_eq!(pipeline.stages[0].files, [("files.0".to_string(), dir.path.join("data.txt"))]);
        assert_eq!(pipeline.store_dir, dir.path.join(".voxflow"));

        let missing = match dir.pipeline(
            "name: files\nstages:\n  a:\n    kind: command\n    run: cat nothing.txt > {outputs.out}\n    outputs: {out: a.txt}\n    params: {files: [nothing.txt]}\n",
            &[],
        ) {
            Ok(_) => panic!("a missing file loaded"),
            Err(problems) => problems.0,
        };
        assert_eq!(missing.len(), 1);
        assert!(missing[0].message.starts_with("param `files.0`: ") && missing[0].message.ends_with("does not exist"));
    }
}
