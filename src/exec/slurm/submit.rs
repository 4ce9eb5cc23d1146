//! Submitting a stage: the `sbatch` arguments for its resources, the batch
//! script (one `voxflow exec` for the stage's key), `sbatch --parsable` with
//! retries on transient errors, and sbatch's refusals in voxflow's words.
//! Also the `mem:` and `time:` parsers the pipeline checks share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{absolute, sanitize, AttemptFailure, SlurmExecutor};
use crate::exec::RemoteRequest;
use crate::plan::{Pipeline, PlannedStage};
use crate::spec::SlurmSpec;

impl SlurmExecutor {
    /// The sbatch arguments (everything but the script) for one attempt.
    fn sbatch_args(
        &self,
        pipeline: &Pipeline,
        stage: &PlannedStage,
        log_pattern: &Path,
        mem_mb: Option<u64>,
        minutes: Option<u64>,
    ) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=voxflow:{}:{}", pipeline.name, stage.name),
            format!("--output={}", log_pattern.display()),
            format!("--chdir={}", absolute(&pipeline.base_dir).display()),
        ];
        for (flag, value) in
            [("partition", &self.options.partition), ("account", &self.options.account), ("qos", &self.options.qos)]
        {
            if let Some(value) = value {
                args.push(format!("--{flag}={value}"));
            }
        }
        if let Some(threads) = stage.resources.threads {
            args.push(format!("--cpus-per-task={threads}"));
        }
        if let Some(mb) = mem_mb {
            args.push(format!("--mem={mb}M"));
        }
        if let Some(minutes) = minutes {
            args.push(format!("--time={minutes}"));
        }
        if let Some(gpus) = stage.resources.gpu.filter(|&g| g > 0) {
            args.push(format!("--gres=gpu:{gpus}"));
        }
        args.extend(self.options.sbatch_args.iter().cloned());
        args
    }

    /// The batch script: one `voxflow exec` for the stage's key.
    fn script(&self, request: &RemoteRequest<'_>) -> String {
        let mut command =
            vec![quote(&self.binary.to_string_lossy()), "exec".into(), "--key".into(), quote(request.key)];
        command.push("--store".into());
        command.push(quote(&absolute(request.store.root()).to_string_lossy()));
        for assignment in &self.overrides {
            command.push("--set".into());
            command.push(quote(assignment));
        }
        if request.force {
            command.push("--force".into());
        }
        command.push("--".into());
        command.push(quote(&absolute(&request.pipeline.file).to_string_lossy()));
        command.push(quote(&request.stage.name));
        format!(
            "#!/bin/sh\n\
             # voxflow: stage {stage} of pipeline {pipeline}, key {key}\n\
             echo \"voxflow: stage {stage_quoted}, key {key}, Slurm job $SLURM_JOB_ID on $(hostname), started $(date -u +%Y-%m-%dT%H:%M:%S.%NZ)\"\n\
             exec {command}\n",
            stage = request.stage.name.replace('\n', " "),
            stage_quoted = request.stage.name.replace(['"', '$', '`', '\\', '\n'], "_"),
            pipeline = request.pipeline.name.replace('\n', " "),
            key = request.key,
            command = command.join(" "),
        )
    }

    /// Submits one job; returns its id and its log file.
    pub(super) fn submit(
        &self,
        request: &RemoteRequest<'_>,
        mem_mb: Option<u64>,
        minutes: Option<u64>,
    ) -> Result<(u64, PathBuf), AttemptFailure> {
        let stage = request.stage;
        let log_dir = absolute(request.store.root()).join("slurm-logs").join(sanitize(&request.pipeline.name));
        std::fs::create_dir_all(&log_dir).map_err(|e| AttemptFailure {
            message: format!("cannot create the Slurm log directory {}: {e}", log_dir.display()),
            hint: "the store must be writable (and on a file system the compute nodes share)".into(),
            retryable: false,
        })?;
        let file_stem = sanitize(&stage.name);
        // sbatch expands `%j` to the job id; a literal `%` in the store's path is `%%`.
        let log_pattern = PathBuf::from(format!("{}/{file_stem}-%j.txt", log_dir.to_string_lossy().replace('%', "%%")));
        let args = self.sbatch_args(request.pipeline, stage, &log_pattern, mem_mb, minutes);
        let script = self.script(request);
        let mut delay = Duration::from_secs(1);
        for attempt in 0..4 {
            let output = run_with_stdin("sbatch", &args, &script);
            let (ok, stdout, stderr) = match output {
                Ok(output) => output,
                Err(error) => {
                    return Err(AttemptFailure {
                        message: format!("cannot run sbatch: {error}"),
                        hint: "is Slurm installed here, and is this a login node of the cluster? (`--executor local` runs stages on this machine)".into(),
                        retryable: false,
                    })
                }
            };
            if ok {
                let text = stdout.trim();
                // `--parsable` prints `id` or `id;cluster`.
                let id = text.split(';').next().unwrap_or_default().trim();
                return match id.parse::<u64>() {
                    Ok(id) => {
                        self.live.insert(id);
                        let log = log_dir.join(format!("{file_stem}-{id}.txt"));
                        tracing::info!("stage `{}`: submitted as Slurm job {id} (log {})", stage.name, log.display());
                        Ok((id, log))
                    }
                    Err(_) => Err(AttemptFailure {
                        message: format!("sbatch answered `{text}`, not a job id"),
                        hint: "voxflow passes --parsable; check that `sbatch` is Slurm's".into(),
                        retryable: false,
                    }),
                };
            }
            let stderr = stderr.trim().to_string();
            // (sbatch itself retries for a while when the controller is down.)
            let transient =
                ["temporarily unavailable", "timed out", "try again"].iter().any(|needle| stderr.contains(needle));
            if transient && attempt < 3 && !request.cancel.load(Ordering::Relaxed) {
                tracing::warn!("stage `{}`: sbatch failed ({stderr}); trying again in {delay:?}", stage.name);
                std::thread::sleep(delay);
                delay *= 2;
                continue;
            }
            return Err(refusal(stage, &stderr, &self.options, mem_mb, minutes));
        }
        unreachable!("the loop returns")
    }
}

/// Puts sbatch's refusal in voxflow's words.
fn refusal(
    stage: &PlannedStage,
    stderr: &str,
    options: &SlurmSpec,
    mem_mb: Option<u64>,
    minutes: Option<u64>,
) -> AttemptFailure {
    let said = stderr
        .lines()
        .map(|line| line.trim().trim_start_matches("sbatch: ").trim_start_matches("error: "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let partition = options
        .partition
        .as_deref()
        .map(|p| format!("partition `{p}`"))
        .unwrap_or_else(|| "the default partition".into());
    let gpus = stage.resources.gpu.unwrap_or(0);
    let (message, hint) = if said.contains("Invalid generic resource") && gpus > 0 {
        (
            format!("stage `{}` asks for {gpus} GPU{} (`resources: {{gpu: {gpus}}}`), and Slurm refused the job: no node of {partition} has GPUs (sbatch: {said})", stage.name, if gpus == 1 { "" } else { "s" }),
            "submit to a partition with GPU nodes (`slurm: {partition: gpu}` or `--partition`), or remove `gpu:` from the stage's resources to run it on CPUs".to_string(),
        )
    } else if said.contains("Unable to contact slurm controller") {
        (
            format!("stage `{}`: the Slurm controller does not answer (sbatch: {said})", stage.name),
            "check that Slurm is up (`scontrol ping`) and that this machine can submit jobs; the stage was not submitted".to_string(),
        )
    } else if said.contains("Requested node configuration is not available")
        || said.contains("Memory required by task is not available")
    {
        (
            format!(
                "stage `{}` asks for more than any node of {partition} has (threads {}, mem {}, gpus {gpus}); Slurm refused the job (sbatch: {said})",
                stage.name,
                stage.resources.threads.unwrap_or(1),
                mem_mb.map(|mb| format!("{mb} MB")).unwrap_or_else(|| "default".into()),
            ),
            "lower the stage's `resources:`, or pick a partition with bigger nodes (`sinfo -o '%P %c %m %G'` lists them)".to_string(),
        )
    } else if said.contains("time limit") || said.contains("Requested time limit is invalid") {
        (
            format!(
                "stage `{}`: Slurm refused its time limit{} (sbatch: {said})",
                stage.name,
                minutes.map(|m| format!(" of {m} min")).unwrap_or_default()
            ),
            format!("{partition} allows less; lower `resources: {{time: ...}}` or pick another partition"),
        )
    } else if said.contains("account") || said.contains("qos") || said.contains("partition") {
        (
            format!("stage `{}`: Slurm refused the job (sbatch: {said})", stage.name),
            "check `partition`, `account` and `qos` in the `slurm:` block or on the command line (`sacctmgr show assoc user=$USER` lists yours)".to_string(),
        )
    } else {
        (
            format!("stage `{}`: Slurm refused the job (sbatch: {said})", stage.name),
            "the message above is sbatch's own; check the `slurm:` block and the stage's `resources:`".to_string(),
        )
    };
    AttemptFailure { message, hint, retryable: false }
}

/// Memory in megabytes from `4G`, `512M`, `1.5GB`, `4GiB`, `1T`, `100K`, or
/// a bare number of megabytes (Slurm's default unit).
pub fn parse_mem_mb(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a memory size"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.strip_suffix("IB").or_else(|| unit.strip_suffix('B')).unwrap_or(&unit);
    let factor = match unit {
        "" | "M" => 1.0,
        "K" => 1.0 / 1024.0,
        "G" => 1024.0,
        "T" => 1024.0 * 1024.0,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M, G or T)")),
    };
    let mb = (value * factor).ceil();
    if !mb.is_finite() || mb < 1.0 {
        return Err(format!("`{text}` is not a positive memory size"));
    }
    Ok(mb as u64)
}

/// A time limit in whole minutes (rounded up, at least 1). Takes Slurm's
/// forms (`30` minutes, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
/// `D-HH:MM:SS`) and durations with units (`90s`, `45m`, `2h`, `1h30m`, `1d`).
pub fn parse_time_minutes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || format!("`{text}` is not a time limit");
    let seconds: u64 = if trimmed.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '-') && !trimmed.is_empty() {
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let (days, rest) = match trimmed.split_once('-') {
            Some((days, rest)) => (Some(number(days)?), rest),
            None => (None, trimmed),
        };
        let parts: Vec<u64> = rest.split(':').map(number).collect::<Result<_, _>>()?;
        match (days, parts.as_slice()) {
            (None, [minutes]) => minutes * 60,
            (None, [minutes, seconds]) => minutes * 60 + seconds,
            (None, [hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
            (Some(days), [hours]) => days * 86400 + hours * 3600,
            (Some(days), [hours, minutes]) => days * 86400 + hours * 3600 + minutes * 60,
            (Some(days), [hours, minutes, seconds]) => days * 86400 + hours * 3600 + minutes * 60 + seconds,
            _ => return Err(bad()),
        }
    } else {
        humantime::parse_duration(trimmed).map_err(|_| bad())?.as_secs()
    };
    if seconds == 0 {
        return Err(format!("`{text}` is zero; a time limit must be at least a minute"));
    }
    Ok(seconds.div_ceil(60))
}

fn run_with_stdin(program: &str, args: &[String], input: &str) -> std::io::Result<(bool, String, String)> {
    let mut child =
        Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    ))
}

/// Single-quotes a word for /bin/sh.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
