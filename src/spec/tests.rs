//! Unit tests of the pipeline-file reader: diagnostics with file, line,
//! stage and hint, every problem at once, and `--set` overrides.

use std::path::Path;

use rand::Rng;
use serde_json::json;

use super::*;

fn parse_text(text: &str, overrides: &[&str]) -> Result<PipelineSpec, Diagnostics> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    parse(Path::new("pipelines/x.yaml"), text, &overrides)
}

fn problems(text: &str, overrides: &[&str]) -> Vec<Diagnostic> {
    match parse_text(text, overrides) {
        Ok(_) => panic!("no problem found in:\n{text}"),
        Err(diagnostics) => diagnostics.0,
    }
}

const VALID: &str = "\
name: t
defaults:
  resources: {threads: 2}
  params: {ridge: {alphas: [1, 10]}}
matrix:
  method: [lanczos, average]
stages:
  words:
    kind: align.words
    inputs: {words: synth.words}
  fit:
    kind: ridge
    inputs: [words, trs]
    params: {alphas: [1, 2], folds: {by: story}}
    resources: {threads: 4}
";

#[test]
fn a_valid_file_gives_its_stages_in_file_order_with_roles_and_lines() {
    let spec = parse_text(VALID, &[]).unwrap();
    assert_eq!(spec.name, "t");
    assert_eq!(spec.base_dir, Path::new("pipelines"));
    assert_eq!(spec.matrix, vec![("method".to_string(), vec![json!("lanczos"), json!("average")])]);
    let names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["words", "fit"]);
    let words = &spec.stages[0];
    assert_eq!(words.line, Some(8));
    assert_eq!((words.inputs[0].role.as_str(), words.inputs[0].stage.as_str()), ("words", "synth"));
    assert_eq!(words.inputs[0].output.as_deref(), Some("words"));
    let fit = &spec.stages[1];
    let roles: Vec<&str> = fit.inputs.iter().map(|i| i.role.as_str()).collect();
    assert_eq!(roles, ["words", "trs"]);
    assert_eq!(fit.inputs[1].line, Some(13));
    assert_eq!(fit.resources.threads, Some(4));
    assert_eq!(fit.params["folds"], json!({"by": "story"}));
}

#[test]
fn every_problem_is_reported_at_once_with_its_line_and_stage() {
    let text = "\
name: t
stagess: {}
stages:
  a:
    kind: command
    inputz: [b]
  b:
    params: {x: 1}
  c.d:
    kind: command
";
    let found = problems(text, &[]);
    let lines: Vec<Option<usize>> = found.iter().map(|d| d.line).collect();
    assert_eq!(lines, [Some(2), Some(6), Some(7), Some(9)], "{found:#?}");
    assert_eq!(found[0].message, "unknown key `stagess` in a pipeline");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `stages`?"));
    assert_eq!(found[1].stage.as_deref(), Some("a"));
    assert_eq!(found[1].hint.as_deref(), Some("did you mean `inputs`?"));
    assert_eq!(found[2].message, "missing `kind`");
    assert!(found[3].message.contains("stage name `c.d`"), "{}", found[3].message);
    let rendered = Diagnostics(found).to_string();
    assert!(rendered.starts_with("error: pipelines/x.yaml:2: unknown key `stagess`"), "{rendered}");
    assert!(rendered
        .contains("pipelines/x.yaml:6: stage `a`: unknown key `inputz` in a stage\n  hint: did you mean `inputs`?"));
}

#[test]
fn yaml_that_does_not_parse_names_its_line_and_unknown_keys_far_from_any_name_list_the_keys() {
    let found = problems("name: t\nstages:\n  a: {kind: command\n", &[]);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.starts_with("not valid YAML"), "{}", found[0].message);
    assert!(found[0].line.is_some());
    let found = problems("name: t\nzzzzzzzzzzzz: 1\nstages: {a: {kind: command}}\n", &[]);
    assert_eq!(found[0].hint.as_deref().map(|h| h.starts_with("a pipeline takes: ")), Some(true), "{found:?}");
}

#[test]
fn set_overrides_replace_nested_params_and_parse_values_as_yaml() {
    let spec =
        parse_text(VALID, &["fit.alphas=[3, 4.5]", "fit.folds.by=contiguous", "words.label=plain text"]).unwrap();
    assert_eq!(spec.stages[1].params["alphas"], json!([3, 4.5]));
    assert_eq!(spec.stages[1].params["folds"], json!({"by": "contiguous"}));
    assert_eq!(spec.stages[0].params["label"], json!("plain text"));
}

#[test]
fn a_set_override_of_an_unknown_stage_suggests_the_nearest_and_is_blamed_on_set() {
    let found = problems(VALID, &["fitt.alphas=[1]", "fit"]);
    assert_eq!(found.len(), 2, "{found:#?}");
    let unknown = found.iter().find(|d| d.message.contains("no stage named `fitt`")).expect("unknown stage");
    assert_eq!(unknown.file, Path::new("--set"));
    assert_eq!(unknown.hint.as_deref(), Some("did you mean `fit`?"));
    assert!(found.iter().any(|d| d.message == "`fit` is not `stage.param=value`"));
}

#[test]
fn set_replaces_a_matrix_axis_and_names_a_wrong_one() {
    let spec = parse_text(VALID, &["matrix.method=[average]"]).unwrap();
    assert_eq!(spec.matrix, vec![("method".to_string(), vec![json!("average")])]);
    let found = problems(VALID, &["matrix.methd=[a]", "matrix.method=lanczos", "matrix.method=[[1]]"]);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].message.contains("no matrix axis `methd`"), "{found:#?}");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `matrix.method`?"));
    assert!(found[1..].iter().all(|d| d.message.ends_with("a matrix axis takes a non-empty list")), "{found:#?}");
}

#[test]
fn a_missing_file_is_one_diagnostic_naming_it() {
    let missing = Path::new("/nonexistent/voxflow/pipeline.yaml");
    let Err(found) = load(missing, &[]) else { panic!("a missing file loaded") };
    assert_eq!(found.0.len(), 1);
    assert_eq!(found.0[0].file, missing);
    assert!(found.0[0].message.starts_with("cannot read the pipeline file"), "{}", found.0[0].message);
    assert!(load_lenient(missing, &[]).is_err());
}

/// What a pipeline file cannot hold: a name too long or with a control
/// character for the store's file names, one value twice on a matrix axis
/// (two stages of one name), YAML tags (`!!binary` would run decoded text).
#[test]
fn long_names_repeated_matrix_values_and_tags_are_refused_with_their_lines() {
    let mut rng = crate::testing::fresh_rng("long_names_repeated_matrix_values_and_tags_are_refused_with_their_lines");
    let long: String = (0..rng.random_range(101..400)).map(|_| 'n').collect();
    let text = format!("name: {long}\nstages:\n  a: {{kind: command, run: echo}}\n");
    let found = problems(&text, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, Some(1));
    assert_eq!(found[0].message, format!("the pipeline name is {} bytes long; at most 100", long.len()));
    assert!(parse_text(&text.replace(&long, &long[..100]), &[]).is_ok());

    let found = problems("name: \"a\\0b\"\nstages:\n  a: {kind: command, run: echo}\n", &[]);
    assert!(found[0].message.contains("control character"), "{found:?}");

    let found = problems(
        "name: m\nmatrix:\n  method: [lanczos, sinc, lanczos]\n  n: [1, 2]\nstages:\n  a: {kind: command, run: echo}\n",
        &[],
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].message, "matrix axis `method` lists \"lanczos\" twice (items 1 and 3)");
    assert_eq!(found[0].line, Some(3));

    let tagged = |text: &str, line: usize, tag: &str| {
        let found = problems(text, &[]);
        let message = format!("YAML tag `{tag}` is not supported");
        assert!(found.iter().any(|d| d.line == Some(line) && d.message == message), "{found:?}");
    };
    tagged("name: t\nstages:\n  a:\n    kind: command\n    run: !!binary aGVsbG8=\n", 5, "!!binary");
    tagged("name: t\nstages:\n  a:\n    kind: command\n    run: echo\n    params: !local {x: 1}\n", 6, "!local");
}

/// A `--set` value's problem is the command line's, with no line of the
/// file; a file that is not UTF-8 is reported at the line of the bad byte.
#[test]
fn set_value_problems_name_the_command_line_and_bad_bytes_their_line() {
    let found = problems(VALID, &["fit.alphas=[1, .nan]"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].file.to_str(), found[0].line), (Some("--set"), None));
    assert!(found[0].message.starts_with("`--set fit.alphas=[1, .nan]`: "), "{}", found[0].message);

    let mut rng = crate::testing::fresh_rng("set_value_problems_name_the_command_line_and_bad_bytes_their_line");
    let scratch = crate::testing::Scratch::new("spec-not-utf8");
    let lines: Vec<&str> = VALID.lines().collect();
    let bad_line = rng.random_range(0..lines.len());
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        bytes.extend_from_slice(line.as_bytes());
        if i == bad_line {
            bytes.extend_from_slice(b" \xff\xfe");
        }
        bytes.push(b'\n');
    }
    let path = scratch.path.join("latin.yaml");
    std::fs::write(&path, &bytes).unwrap();
    let found = load(&path, &[]).err().expect("a file that is not UTF-8 loaded").0;
    assert_eq!(found[0].line, Some(bad_line + 1), "{found:?}");
    assert_eq!(
        found[0].message,
        format!("the file is not UTF-8 text: an invalid byte at column {}", lines[bad_line].len() + 2)
    );
}
