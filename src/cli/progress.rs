//! The terminal reporter: progress bars (indicatif) when stderr is a
//! terminal: the run's bar with its ticking clock, and one line per running
//! stage with its own clock, its phase ("loading model") while it has no
//! count, then its count in its unit ("1200/4200 words") with the rate and
//! ETA ([`count_text`]); plain lines otherwise (a stage's notes, such as
//! "resuming from step 500", either way). Each finished stage gets one line on
//! stderr as it ends; `voxflow run` prints the table of all stages on stdout
//! at the end only when stdout is not where stderr goes (see
//! `cli::run::same_destination`), so a log of both shows each stage once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    running: Mutex<HashMap<String, Running>>,
}

/// A running stage's line: its bar, the unit of its counts, and its first
/// count (when and how many), from which the rate is measured.
struct Running {
    bar: ProgressBar,
    unit: Option<String>,
    first: Option<(Instant, u64)>,
}

/// A clock: `0:05`, `12:34`, `1:02:03`.
pub fn clock(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// A stage's count as its line shows it: `done/total unit`, then the rate
/// and the ETA once `since` (the time since its first count, when it had
/// done `first` units) allows a rate: `1200/4200 words, 40.0 words/s, eta 1:15`.
pub fn count_text(done: u64, total: u64, unit: Option<&str>, first: u64, since: Duration) -> String {
    let unit_suffix = unit.map(|u| format!(" {u}")).unwrap_or_default();
    let mut text = if total > 0 { format!("{done}/{total}{unit_suffix}") } else { format!("{done}{unit_suffix}") };
    let seconds = since.as_secs_f64();
    if seconds >= 0.5 && done > first {
        let rate = (done - first) as f64 / seconds;
        let per = unit.unwrap_or("units");
        if rate >= 100.0 {
            text.push_str(&format!(", {rate:.0} {per}/s"));
        } else {
            text.push_str(&format!(", {rate:.1} {per}/s"));
        }
        if total > done {
            text.push_str(&format!(", eta {}", clock(Duration::from_secs_f64((total - done) as f64 / rate))));
        }
    }
    text
}

fn phase_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {prefix} {msg} [{elapsed_precise}]").expect("template")
}

fn count_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {prefix} [{bar:25}] {msg} [{elapsed_precise}]")
        .expect("template")
        .progress_chars("=> ")
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
                ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} stages [{elapsed_precise}]")
                    .expect("template")
                    .progress_chars("=> "),
            );
            // The run's clock ticks while a long stage reports nothing.
            total.enable_steady_tick(Duration::from_millis(500));
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
                bar.set_style(phase_style());
                bar.set_prefix(name.to_string());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.running.lock().expect("bars").insert(name.to_string(), Running { bar, unit: None, first: None });
            }
            None => tracing::info!("start {name}"),
        }
    }

    fn stage_progress(&self, name: &str, done: u64, total: u64) {
        if let Some(bars) = &self.bars {
            if let Some(running) = bars.running.lock().expect("bars").get_mut(name) {
                let now = Instant::now();
                let (first_at, first) = *running.first.get_or_insert_with(|| {
                    running.bar.set_style(count_style());
                    (now, done)
                });
                running.bar.set_length(total);
                running.bar.set_position(done);
                running.bar.set_message(count_text(done, total, running.unit.as_deref(), first, now - first_at));
            }
        }
    }

    fn stage_phase(&self, name: &str, text: &str) {
        if let Some(bars) = &self.bars {
            if let Some(running) = bars.running.lock().expect("bars").get(name) {
                if running.first.is_none() {
                    running.bar.set_message(text.to_string());
                }
            }
        } else {
            tracing::info!("{name}: {text}");
        }
    }

    fn stage_unit(&self, name: &str, unit: &str) {
        if let Some(bars) = &self.bars {
            if let Some(running) = bars.running.lock().expect("bars").get_mut(name) {
                running.unit = Some(unit.to_string());
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
                if let Some(running) = bars.running.lock().expect("bars").remove(&outcome.name) {
                    running.bar.finish_and_clear();
                    bars.multi.remove(&running.bar);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_minutes_and_hours() {
        assert_eq!(clock(Duration::from_secs(0)), "0:00");
        assert_eq!(clock(Duration::from_secs(98)), "1:38");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn a_count_shows_its_unit_rate_and_eta() {
        // No rate before half a second of counting, or without progress.
        assert_eq!(count_text(0, 4200, Some("words"), 0, Duration::from_secs(3)), "0/4200 words");
        assert_eq!(count_text(100, 4200, Some("words"), 0, Duration::from_millis(200)), "100/4200 words");
        // 1200 words in 30 s since the first count (at 0): 40/s, 3000 left: 75 s.
        assert_eq!(
            count_text(1200, 4200, Some("words"), 0, Duration::from_secs(30)),
            "1200/4200 words, 40.0 words/s, eta 1:15"
        );
        // The rate counts from the first count (a resumed run starts at 500).
        assert_eq!(
            count_text(700, 2000, Some("steps"), 500, Duration::from_secs(2)),
            "700/2000 steps, 100 steps/s, eta 0:13"
        );
        // Without a unit, without a total, and done.
        assert_eq!(count_text(50, 100, None, 0, Duration::from_secs(10)), "50/100, 5.0 units/s, eta 0:10");
        assert_eq!(count_text(7, 0, Some("files"), 0, Duration::from_secs(1)), "7 files, 7.0 files/s");
        assert_eq!(count_text(100, 100, None, 0, Duration::from_secs(10)), "100/100, 10.0 units/s");
    }
}
