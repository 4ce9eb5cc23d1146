//! The terminal reporter: progress bars (indicatif) when stderr is a
//! terminal, one per running stage with its rate and ETA, plain lines
//! otherwise (a stage's notes, such as "resuming from step 500", either way). Each finished stage gets one line on
//! stderr as it ends; `voxflow run` prints the table of all stages on stdout
//! at the end only when stdout is not where stderr goes (see
//! `cli::run::same_destination`), so a log of both shows each stage once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use voxflow::exec::{Reporter, StageOutcome, Status};

pub struct TerminalReporter {
    bars: Option<Bars>,
    /// Print cached stages' lines above the bars too (no table follows).
    every_stage: bool,
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl TerminalReporter {
    /// `interactive`: bars on stderr. `every_stage`: the lines above the bars
    /// include cached stages (plain lines always do), for runs whose summary
    /// table is not printed.
    pub fn new(interactive: bool, every_stage: bool) -> TerminalReporter {
        let bars = interactive.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} stages {elapsed_precise}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            Bars { multi, total, running: Mutex::new(HashMap::new()) }
        });
        TerminalReporter { bars, every_stage }
    }

    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.total.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }
}

impl Reporter for TerminalReporter {
    fn start(&self, pipeline: &str, stages: usize) {
        if let Some(bars) = &self.bars {
            bars.total.set_prefix(pipeline.to_string());
            bars.total.set_length(stages as u64);
        }
    }

    fn stage_started(&self, name: &str) {
        match &self.bars {
            Some(bars) => {
                let bar = bars.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {spinner} {msg} {wide_bar} {pos}/{len} {per_sec} eta {eta} ({elapsed})",
                    )
                    .expect("template"),
                );
                bar.set_message(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.running.lock().expect("bars").insert(name.to_string(), bar);
            }
            None => tracing::info!("start {name}"),
        }
    }

    fn stage_progress(&self, name: &str, done: u64, total: u64) {
        if let Some(bars) = &self.bars {
            if let Some(bar) = bars.running.lock().expect("bars").get(name) {
                bar.set_length(total);
                bar.set_position(done);
            }
        }
    }

    fn stage_note(&self, name: &str, text: &str) {
        let line = format!("          {name}: {text}");
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn stage_finished(&self, outcome: &StageOutcome) {
        let line = match outcome.status {
            Status::Ran => format!("ran       {} ({:.2}s): {}", outcome.name, outcome.seconds, outcome.reason),
            Status::Cached => format!("cached    {}", outcome.name),
            Status::Failed => {
                let mut line = format!("FAILED    {}: {}", outcome.name, outcome.error.as_deref().unwrap_or(""));
                if let Some(hint) = &outcome.hint {
                    line.push_str(&format!("\n          hint: {hint}"));
                }
                line
            }
            other => format!("{:<9} {}: {}", other.as_str(), outcome.name, outcome.reason),
        };
        match &self.bars {
            Some(bars) => {
                if let Some(bar) = bars.running.lock().expect("bars").remove(&outcome.name) {
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
                bars.total.inc(1);
                if outcome.status != Status::Cached || self.every_stage {
                    let _ = bars.multi.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
        for warning in &outcome.warnings {
            match &self.bars {
                Some(bars) => {
                    let _ = bars.multi.println(format!("warning   {}: {warning}", outcome.name));
                }
                None => eprintln!("warning   {}: {warning}", outcome.name),
            }
        }
    }
}
