//! The scheduler's side: starts `voxflow-worker` for one stage, streams its
//! progress into the stage's context, and turns how it ended into the
//! stage's result.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{Input, Message, Request};
use crate::device::Device;
use crate::stage::{StageContext, StageError};

/// Lines of the worker's stderr kept for the error of a worker that died.
const STDERR_TAIL: usize = 20;
/// How long a cancelled worker gets to stop at its next check before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The worker binary: `$VOXFLOW_WORKER`, else `voxflow-worker` beside this
/// executable (or one directory up, where cargo puts test binaries).
pub fn worker_binary() -> Result<PathBuf, StageError> {
    if let Some(path) = std::env::var_os("VOXFLOW_WORKER") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(StageError::failed(format!("VOXFLOW_WORKER={} is not a file", path.display()))
                .with_hint("point VOXFLOW_WORKER at the voxflow-worker binary, or unset it"))
        };
    }
    let exe = std::env::current_exe().map_err(|e| StageError::failed(format!("cannot find this executable: {e}")))?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let candidates = [dir.join("voxflow-worker"), dir.join("..").join("voxflow-worker")];
    candidates.iter().find(|path| path.is_file()).cloned().ok_or_else(|| {
        StageError::failed(format!(
            "this stage calls libtorch and runs in voxflow-worker, which is not beside {}",
            exe.display()
        ))
        .with_hint(
            "build the whole workspace (`cargo build --release`, or `bash scripts/demo.sh`), \
             or set VOXFLOW_WORKER to the worker binary",
        )
    })
}

/// Runs the stage of `ctx` (of kind `kind`) in a worker process and fills
/// `ctx` with what it wrote, as if it had run here.
pub fn run_in_worker(ctx: &mut StageContext, kind: &str) -> Result<(), StageError> {
    let binary = worker_binary()?;
    let request = Request {
        kind: kind.to_string(),
        name: ctx.name.to_string(),
        params: ctx.params.clone(),
        key: ctx.key.to_string(),
        keyed_params: ctx.keyed_params.clone(),
        base_dir: ctx.base_dir.to_path_buf(),
        out_dir: ctx.out_dir.to_path_buf(),
        work_dir: ctx.work_dir.map(PathBuf::from),
        threads: ctx.threads,
        device: ctx.device.to_string(),
        inputs: ctx
            .inputs
            .iter()
            .map(|(role, input)| {
                let wire = Input {
                    stage: input.stage.clone(),
                    dir: input.dir.clone(),
                    manifest: (*input.manifest).clone(),
                    output: input.output.clone(),
                };
                (role.clone(), wire)
            })
            .collect(),
    };
    let threads = ctx.threads.max(1).to_string();
    let mut command = Command::new(&binary);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Numerical libraries in the worker size their pools from the stage's `threads`.
        .env("RAYON_NUM_THREADS", &threads)
        .env("OMP_NUM_THREADS", &threads);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // Die with the thread that started the worker (a killed run),
            // and stay out of the terminal's process group: Ctrl-C reaches
            // the scheduler, which cancels the worker through its stdin.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        StageError::failed(format!("cannot start the worker {}: {e}", binary.display()))
            .with_hint("rebuild the workspace (`cargo build --release`)")
    })?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let line = serde_json::to_string(&request).map_err(|e| StageError::failed(format!("worker request: {e}")))?;
    if let Some(pipe) = stdin.as_mut() {
        // A worker that died at once is reported below, from its exit status.
        let _ = pipe.write_all(line.as_bytes()).and_then(|_| pipe.write_all(b"\n")).and_then(|_| pipe.flush());
    }

    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
    let stderr = child.stderr.take().map(|pipe| {
        let tail = Arc::clone(&tail);
        let name = ctx.name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                tracing::debug!(stage = name, "worker: {line}");
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        })
    });
    let (sender, receiver) = mpsc::channel::<Result<Message, String>>();
    let stdout = child.stdout.take().map(|pipe| {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let message = serde_json::from_str::<Message>(&line).map_err(|e| format!("{e}: {line}"));
                if sender.send(message).is_err() {
                    break;
                }
            }
        })
    });

    let mut last: Option<Message> = None;
    let mut protocol_error: Option<String> = None;
    let mut cancelled_at: Option<Instant> = None;
    loop {
        match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Message::Progress { done, total })) => ctx.progress(done, total),
            Ok(Ok(Message::Note { text })) => ctx.note(&text),
            Ok(Ok(Message::Phase { text })) => ctx.phase(&text),
            Ok(Ok(Message::Unit { unit })) => ctx.progress_unit(&unit),
            Ok(Ok(message)) => last = Some(message),
            Ok(Err(error)) => {
                protocol_error.get_or_insert(error);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if ctx.is_cancelled() {
            match cancelled_at {
                None => {
                    // Closing stdin is the worker's signal to stop.
                    drop(stdin.take());
                    cancelled_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() > CANCEL_GRACE => {
                    let _ = child.kill();
                }
                Some(_) => {}
            }
        }
    }
    let status = child.wait().map_err(|e| StageError::failed(format!("waiting for the worker (pid {pid}): {e}")))?;
    drop(stdin);
    if let Some(thread) = stdout {
        let _ = thread.join();
    }
    if let Some(thread) = stderr {
        let _ = thread.join();
    }
    let tail: Vec<String> = tail.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
    match last {
        Some(Message::Done { outputs, warnings, logs, figures, nondeterministic, device }) if status.success() => {
            ctx.outputs = outputs;
            ctx.nondeterministic = nondeterministic;
            ctx.warnings.extend(warnings);
            ctx.logs.extend(logs);
            ctx.figures.extend(figures);
            if let Some(device) = Device::parse(&device) {
                ctx.device = device;
            }
            Ok(())
        }
        Some(Message::Failed { message, hint }) => Err(StageError::Failed { message, hint }),
        Some(Message::Cancelled) => Err(StageError::Cancelled),
        _ if ctx.is_cancelled() => Err(StageError::Cancelled),
        _ => Err(died(pid, status, &tail, protocol_error)),
    }
}

/// The error of a worker that ended without saying how the stage went.
fn died(pid: u32, status: ExitStatus, tail: &[String], protocol_error: Option<String>) -> StageError {
    let how = match (status.signal(), status.code()) {
        (Some(signal), _) => format!("was killed by signal {signal} ({})", signal_name(signal)),
        (None, Some(code)) => format!("exited with code {code}"),
        (None, None) => "ended".to_string(),
    };
    let mut message = format!("the worker process (pid {pid}) {how} before the stage finished");
    if let Some(error) = protocol_error {
        message.push_str(&format!("; it wrote a line that is not the protocol: {error}"));
    }
    if tail.is_empty() {
        message.push_str("; it wrote nothing to stderr");
    } else {
        message.push_str(&format!("; the last lines of its stderr:\n  {}", tail.join("\n  ")));
    }
    let hint = match status.signal() {
        Some(libc::SIGKILL) => "SIGKILL is often the kernel's out-of-memory killer (see `dmesg`): lower the stage's batch size, or give it more memory; a resumable stage continues from its last checkpoint when run again",
        Some(libc::SIGABRT) | Some(libc::SIGSEGV) => "libtorch aborted (a CUDA error, or a failed check in a kernel): its message is above; set VOXFLOW_LOG=debug for the worker's whole log",
        _ => "set VOXFLOW_LOG=debug to see the worker's whole log",
    };
    StageError::failed(message).with_hint(hint)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        _ => "signal",
    }
}
