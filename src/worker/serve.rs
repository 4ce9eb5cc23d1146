//! The worker's side: `voxflow-worker` reads one [`Request`], runs the stage
//! in this process and answers with [`Message`]s.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::fd::FromRawFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::protocol::{Message, Request};
use super::TorchRuntime;
use crate::device::Device;
use crate::stage::{InputArtifact, StageContext, StageError};

static CANCEL: AtomicBool = AtomicBool::new(false);

/// The `main` of a worker binary: installs `runtime`, serves one request and
/// exits (0 when the stage succeeded, 1 when it failed, 130 when cancelled,
/// 2 for a request it could not read).
pub fn serve(runtime: &'static dyn TorchRuntime) -> ! {
    super::install(runtime);
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOXFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().try_init();
    // The protocol gets its own copy of stdout; stdout itself becomes stderr,
    // so that anything a library prints cannot corrupt the protocol.
    // SAFETY: dup/dup2 on the process's own standard descriptors.
    let protocol_fd = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            eprintln!("voxflow-worker: cannot set up the protocol descriptor");
            std::process::exit(2);
        }
        fd
    };
    // SAFETY: `protocol_fd` is a fresh descriptor this process owns.
    let out = Arc::new(Mutex::new(std::io::LineWriter::new(unsafe { std::fs::File::from_raw_fd(protocol_fd) })));
    let send = |message: &Message| {
        let line = serde_json::to_string(message).expect("messages serialise");
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        // A scheduler that went away cannot be told anything more.
        let _ = writeln!(out, "{line}");
    };

    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let request: Request = match stdin.read_line(&mut line).map(|_| serde_json::from_str(&line)) {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            eprintln!("voxflow-worker: the request does not parse: {error}");
            std::process::exit(2);
        }
        Err(error) => {
            eprintln!("voxflow-worker: cannot read the request: {error}");
            std::process::exit(2);
        }
    };
    drop(stdin);
    // The scheduler closes stdin to cancel the stage (and the kernel closes
    // it when the scheduler dies).
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        CANCEL.store(true, Ordering::Relaxed);
    });

    let message = run(&request, &send);
    let code = match &message {
        Message::Done { .. } => 0,
        Message::Cancelled => 130,
        _ => 1,
    };
    send(&message);
    std::process::exit(code)
}

fn run(request: &Request, send: &(dyn Fn(&Message) + Sync)) -> Message {
    let Some(kind) = crate::stage::lookup(&request.kind) else {
        return Message::Failed { message: format!("this worker has no kind `{}`", request.kind), hint: None };
    };
    let Some(device) = Device::parse(&request.device) else {
        return Message::Failed { message: format!("unknown device `{}`", request.device), hint: None };
    };
    let inputs: BTreeMap<String, InputArtifact> = request
        .inputs
        .iter()
        .map(|(role, input)| {
            let artifact = InputArtifact {
                stage: input.stage.clone(),
                dir: input.dir.clone(),
                manifest: Arc::new(input.manifest.clone()),
                output: input.output.clone(),
            };
            (role.clone(), artifact)
        })
        .collect();
    let progress = |done: u64, total: u64| send(&Message::Progress { done, total });
    let note = |text: &str| send(&Message::Note { text: text.to_string() });
    let activity = |activity: crate::stage::Activity<'_>| match activity {
        crate::stage::Activity::Phase(text) => send(&Message::Phase { text: text.to_string() }),
        crate::stage::Activity::Unit(unit) => send(&Message::Unit { unit: unit.to_string() }),
    };
    let mut ctx = StageContext {
        name: &request.name,
        params: &request.params,
        key: &request.key,
        keyed_params: &request.keyed_params,
        base_dir: &request.base_dir,
        out_dir: &request.out_dir,
        threads: request.threads,
        device,
        inputs: &inputs,
        work_dir: request.work_dir.as_deref(),
        outputs: Vec::new(),
        warnings: Vec::new(),
        logs: Vec::new(),
        figures: Vec::new(),
        nondeterministic: None,
        cancel: &CANCEL,
        progress: &progress,
        note: &note,
        activity: &activity,
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| kind.run(&mut ctx)))
        .unwrap_or_else(|panic| Err(crate::exec::panic_error(panic)));
    match result {
        Ok(()) => Message::Done {
            outputs: ctx.outputs,
            warnings: ctx.warnings,
            logs: ctx.logs,
            figures: ctx.figures,
            nondeterministic: ctx.nondeterministic,
            device: ctx.device.to_string(),
        },
        Err(StageError::Cancelled) => Message::Cancelled,
        Err(StageError::Failed { message, hint }) => Message::Failed { message, hint },
    }
}
