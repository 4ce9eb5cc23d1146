//! `voxflow kinds`: lists the stage kinds with their versions and summaries;
//! `voxflow kinds KIND` prints one kind's params (type, default, one line
//! each), required inputs and outputs.

use serde_json::Value;

use voxflow::stage::Stage;

use super::args::KindsArgs;
use super::error::CliError;

pub fn kinds(args: &KindsArgs) -> Result<(), CliError> {
    let Some(name) = &args.kind else {
        for kind in voxflow::stage::KINDS {
            println!("{:<28} v{}  {}", kind.kind(), kind.version(), kind.summary());
        }
        return Ok(());
    };
    let Some(kind) = voxflow::stage::lookup(name) else {
        let error = CliError::usage(format!("no stage kind `{name}`"));
        let names = voxflow::stage::KINDS.iter().map(|k| k.kind());
        return Err(match voxflow::spec::nearest(name, names) {
            Some(nearest) => error.with_hint(format!("did you mean `{nearest}`? `voxflow kinds` lists them all")),
            None => error.with_hint("`voxflow kinds` lists them all"),
        });
    };
    describe(kind);
    Ok(())
}

/// The kind's summary, params, inputs and outputs.
fn describe(kind: &dyn Stage) {
    println!("{} v{}: {}", kind.kind(), kind.version(), kind.summary());
    let (defaults, required) = defaults(kind);
    let mut rows: Vec<[String; 4]> = Vec::new();
    let documented = kind.param_docs();
    for doc in documented {
        let default = match lookup(&defaults, doc.name) {
            Some(value) => voxflow::plan::display_value(value),
            None if required.iter().any(|r| r == doc.name) => "(required)".into(),
            None => "(none)".into(),
        };
        rows.push([doc.name.into(), doc.kind.into(), default, doc.doc.into()]);
    }
    // Params the table does not describe still show, with their defaults.
    for (name, value) in &defaults {
        let prefix = format!("{name}.");
        if !documented.iter().any(|d| d.name == name || d.name.starts_with(&prefix)) {
            rows.push([name.clone(), json_type(value).into(), voxflow::plan::display_value(value), String::new()]);
        }
    }
    for name in &required {
        if !rows.iter().any(|r| &r[0] == name) {
            rows.push([name.clone(), String::new(), "(required)".into(), String::new()]);
        }
    }
    println!();
    if rows.is_empty() {
        println!("params: none");
    } else {
        println!("params:");
        let width = |i: usize, cap: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).min(cap);
        let (w0, w1, w2) = (width(0, 24), width(1, 28), width(2, 36));
        for [name, kind, default, doc] in &rows {
            let default = if default.chars().count() > 36 {
                format!("{}...", default.chars().take(33).collect::<String>())
            } else {
                default.clone()
            };
            println!("  {name:<w0$}  {kind:<w1$}  {default:<w2$}  {doc}");
        }
    }
    let params = Value::Object(defaults.clone());
    let inputs = kind.required_inputs(&params);
    if !inputs.is_empty() {
        println!("\ninputs (required): {}", inputs.join(", "));
    }
    let outputs = kind.outputs(&params);
    if !outputs.is_empty() {
        println!("outputs (with the defaults): {}", outputs.join(", "));
    }
}

/// The kind's params with their defaults, and the params that have none.
/// Found by checking empty params, then params with each required one filled
/// by a value of the type it takes.
fn defaults(kind: &dyn Stage) -> (serde_json::Map<String, Value>, Vec<String>) {
    let mut params = serde_json::Map::new();
    let mut required = Vec::new();
    for _ in 0..16 {
        let errors = match kind.check_params(&Value::Object(params.clone())) {
            Ok(Value::Object(canonical)) => {
                let defaults = canonical.into_iter().filter(|(name, _)| !required.contains(name)).collect();
                return (defaults, required);
            }
            Ok(_) => break,
            Err(errors) => errors,
        };
        let missing: Vec<String> = errors
            .iter()
            .filter_map(|e| e.message.strip_prefix("missing field `")?.split_once('`').map(|(f, _)| f.to_string()))
            .filter(|f| !required.contains(f))
            .collect();
        let Some(field) = missing.into_iter().next() else { break };
        // The first placeholder the params accept for this field.
        let accepted = [
            Value::from("x"),
            Value::from(1),
            Value::from(vec![1]),
            Value::Object(Default::default()),
            Value::Bool(true),
        ]
        .into_iter()
        .find(|candidate| {
            let mut trial = params.clone();
            trial.insert(field.clone(), candidate.clone());
            match kind.check_params(&Value::Object(trial)) {
                Ok(_) => true,
                Err(errors) => !errors.iter().any(|e| {
                    e.path == field
                        || e.path.starts_with(&format!("{field}."))
                        || e.message.contains(&format!("`{field}`"))
                }),
            }
        });
        required.push(field.clone());
        match accepted {
            Some(value) => {
                params.insert(field, value);
            }
            None => break,
        }
    }
    (serde_json::Map::new(), required)
}

/// The value at a dotted path (`folds.k`).
fn lookup<'v>(params: &'v serde_json::Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut value = params.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}
