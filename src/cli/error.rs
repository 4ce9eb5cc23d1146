//! `CliError`, what a subcommand returns when it does not succeed: the exit
//! code (1 a stage or the store failed, 2 an invalid pipeline or usage, 130
//! interrupted) and what to tell the user. Subcommands build one and return
//! it with `?`; `report` is the one place that prints it (`error: ...` lines,
//! each followed by its `  hint: ...`, on stderr) and gives the exit code.

use std::fmt;

use serde_json::json;

use voxflow::spec::Diagnostics;
use voxflow::store::StoreError;

use super::args::Format;

/// A stage (or the store, or a file it writes) failed.
pub const EXIT_FAILED: i32 = 1;
/// The pipeline file or the command line is invalid.
pub const EXIT_INVALID: i32 = 2;
/// Ctrl-C stopped the run.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a subcommand exits non-zero.
#[derive(Debug)]
pub struct CliError {
    code: i32,
    report: Report,
}

#[derive(Debug)]
enum Report {
    /// Nothing more to print: the subcommand's output already says what went
    /// wrong (a failed stage's line, a damaged object).
    Quiet,
    /// One or more `error:` lines.
    Problems(Vec<Problem>),
    /// The pipeline file's problems; with `--format json` also
    /// `{"valid": false, "errors": [...]}` on stdout.
    Diagnostics(Diagnostics, Format),
}

/// One `error: MESSAGE` line and its optional `  hint: HINT` line.
#[derive(Debug)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl CliError {
    fn new(code: i32, message: impl Into<String>) -> CliError {
        CliError { code, report: Report::Problems(vec![Problem { message: message.into(), hint: None }]) }
    }

    /// Bad usage: a flag names no stage, an option is malformed (exit 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(EXIT_INVALID, message)
    }

    /// Several usage errors reported at once (exit 2).
    pub fn usage_all(problems: Vec<Problem>) -> CliError {
        CliError { code: EXIT_INVALID, report: Report::Problems(problems) }
    }

    /// A stage, the store or a written file failed (exit 1).
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError::new(EXIT_FAILED, message)
    }

    /// Ctrl-C stopped the work this message describes (exit 130).
    pub fn interrupted(message: impl Into<String>) -> CliError {
        CliError::new(EXIT_INTERRUPTED, message)
    }

    /// The pipeline file is invalid (exit 2); `format` is the subcommand's
    /// `--format`.
    pub fn invalid_pipeline(diagnostics: Diagnostics, format: Format) -> CliError {
        CliError { code: EXIT_INVALID, report: Report::Diagnostics(diagnostics, format) }
    }

    /// Exit with `code` and print nothing more: the output already said why.
    pub fn quiet(code: i32) -> CliError {
        CliError { code, report: Report::Quiet }
    }

    /// Adds a hint to the last `error:` line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        if let Report::Problems(problems) = &mut self.report {
            if let Some(last) = problems.last_mut() {
                last.hint = Some(hint.into());
            }
        }
        self
    }

    /// What goes on stdout (only the JSON of an invalid pipeline).
    fn stdout(&self) -> Option<String> {
        match &self.report {
            Report::Diagnostics(diagnostics, Format::Json) => {
                Some(format!("{}\n", json!({"valid": false, "errors": diagnostics.0})))
            }
            _ => None,
        }
    }

    /// What goes on stderr, every line ending in a newline.
    fn stderr(&self) -> String {
        match &self.report {
            Report::Quiet => String::new(),
            Report::Problems(problems) => problems.iter().map(|problem| format!("{problem}\n")).collect(),
            Report::Diagnostics(diagnostics, _) => {
                let count = diagnostics.0.len();
                format!("{diagnostics}\n{count} error{} found; nothing ran\n", if count == 1 { "" } else { "s" })
            }
        }
    }

    /// Prints the error and returns the exit code.
    pub fn report(&self) -> i32 {
        if let Some(stdout) = self.stdout() {
            print!("{stdout}");
        }
        eprint!("{}", self.stderr());
        self.code
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> CliError {
        CliError::failed(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use voxflow::spec::Diagnostic;

    use super::*;

    fn diagnostic(message: &str, hint: Option<&str>) -> Diagnostic {
        Diagnostic {
            file: PathBuf::from("p.yaml"),
            line: Some(3),
            stage: Some("fit".into()),
            message: message.into(),
            hint: hint.map(Into::into),
        }
    }

    #[test]
    fn problems_render_as_error_and_indented_hint_lines() {
        let error = CliError::usage("--stage x: no such stage in p.yaml");
        assert_eq!(error.code, 2);
        assert_eq!(error.stderr(), "error: --stage x: no such stage in p.yaml\n");
        assert_eq!(error.stdout(), None);
        let error = CliError::failed("no summary").with_hint("run it first");
        assert_eq!(error.code, 1);
        assert_eq!(error.stderr(), "error: no summary\n  hint: run it first\n");
        let error = CliError::usage_all(vec![
            Problem { message: "a".into(), hint: Some("h".into()) },
            Problem { message: "b".into(), hint: None },
        ]);
        assert_eq!(error.stderr(), "error: a\n  hint: h\nerror: b\n");
    }

    #[test]
    fn codes_of_each_kind() {
        assert_eq!(CliError::interrupted("stage `a`: cancelled").code, 130);
        assert_eq!(CliError::quiet(1).code, 1);
        assert_eq!(CliError::quiet(1).stderr(), "");
        let store = StoreError::Corrupt { path: "s".into(), message: "bad".into() };
        let error = CliError::from(store);
        assert_eq!((error.code, error.stderr()), (1, "error: store s: bad\n".to_string()));
    }

    #[test]
    fn diagnostics_count_their_errors_and_go_to_stdout_as_json() {
        let one = Diagnostics(vec![diagnostic("unknown kind", Some("did you mean `ridge`?"))]);
        let error = CliError::invalid_pipeline(one.clone(), Format::Human);
        assert_eq!(error.code, 2);
        assert_eq!(
            error.stderr(),
            "error: p.yaml:3: stage `fit`: unknown kind\n  hint: did you mean `ridge`?\n1 error found; nothing ran\n"
        );
        assert_eq!(error.stdout(), None);
        let json = CliError::invalid_pipeline(one, Format::Json).stdout().expect("json on stdout");
        let value: serde_json::Value = serde_json::from_str(&json).expect("one JSON line");
        assert_eq!(value["valid"], json!(false));
        assert_eq!(value["errors"][0]["message"], json!("unknown kind"));
        let two = Diagnostics(vec![diagnostic("a", None), diagnostic("b", None)]);
        assert!(CliError::invalid_pipeline(two, Format::Human).stderr().ends_with("\n2 errors found; nothing ran\n"));
    }
}
