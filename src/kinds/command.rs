//! `command`: runs an external program, like a Snakemake rule or a DVC stage.
//!
//! ```yaml
//! stages:
//!   features:
//!     kind: command
//!     inputs: [words]
//!     run: python scripts/embed.py {inputs.words} {outputs.vectors} --dim {params.dim}
//!     outputs: {vectors: vectors.parquet}
//!     params: {dim: 64, files: [scripts/embed.py]}
//! ```
//!
//! Placeholders: `{inputs.ROLE}` (the input's file, or its directory when the
//! upstream has several outputs), `{outputs.NAME}`, `{params.KEY}`,
//! `{threads}`, `{out_dir}`. The command runs under `bash -c` in the pipeline
//! file's directory with `VOXFLOW_OUT` and `VOXFLOW_THREADS` set. Its text,
//! params and the content of the files listed in `files` are in the key;
//! stdout and stderr are kept as logs beside the outputs.
//!
//! The command runs in a process group of its own: when it ends, what it
//! left running in that group is killed. One small reaper process per run
//! (forked once, at the first command stage; [`Reaper`]) is told each
//! command's group: when the run dies (even by `kill -9`), its pipe from the
//! run reaches end-of-file and it kills every group still running,
//! grandchildren included. Every command also carries the run's token in
//! its environment (`VOXFLOW_RUN_TOKEN_<token>=1`): at end-of-file the reaper also
//! kills every process whose environment holds that token, which covers a
//! command spawned but not yet registered when the runner died, and
//! processes that left the group (`setsid`, double forks). Only a process
//! that clears or replaces its environment (`env -i`) escapes both.
//!
//! An output is a file or a directory of files; a symbolic link is refused
//! by the scheduler (a link's target can change after the result is stored).
//!
//! Its params are open by design (any `{params.KEY}` may be used), so they
//! stay a JSON mapping, checked by [`Kind::validate`].

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::stage::{Kind, ParamError, StageContext, StageError};

pub struct Command;

impl Kind for Command {
    /// `run`, `outputs`, `files`, `shell` and any params the command line uses.
    type Params = Map<String, Value>;
    const NAME: &'static str = "command";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "run an external program; its declared output files are hashed and stored";

    fn outputs(&self, params: &Map<String, Value>) -> Vec<String> {
        output_files(params).into_iter().map(|(name, _)| name).collect()
    }

    fn validate(&self, map: &Map<String, Value>) -> Vec<ParamError> {
        let mut errors = Vec::new();
        let params = map;
        match map.get("run") {
            Some(Value::String(run)) if !run.trim().is_empty() => {
                let outputs: Vec<String> = output_files(params).into_iter().map(|(n, _)| n).collect();
                let param_names: Vec<String> = map
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "run" | "outputs" | "files" | "shell"))
                    .cloned()
                    .collect();
                for placeholder in placeholders(run) {
                    let (scope, name) = placeholder.split_once('.').unwrap_or((placeholder.as_str(), ""));
                    let declared = |what: &str, names: &[String]| {
                        let listed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
                        ParamError::new(
                            "run",
                            format!("`{{{placeholder}}}` names no declared {what}; declared: {listed}"),
                        )
                    };
                    match scope {
                        // Input roles are checked against `inputs:` in `input_problems`.
                        "inputs" if !name.is_empty() => {}
                        "outputs" if outputs.iter().any(|n| n == name) => {}
                        "outputs" => errors.push(declared("output", &outputs).hint("declare it under `outputs:`")),
                        "params" if map.contains_key(name) => {}
                        "params" => errors.push(declared("param", &param_names).hint("declare it under `params:`")),
                        "threads" | "out_dir" if name.is_empty() => {}
                        _ => errors.push(
                            ParamError::new("run", format!("unknown placeholder `{{{placeholder}}}`"))
                                .hint("use {inputs.ROLE}, {outputs.NAME}, {params.KEY}, {threads} or {out_dir}; write {{ for a literal brace"),
                        ),
                    }
                }
            }
            _ => errors.push(ParamError::new("run", "a command stage needs `run:` with a command line")),
        }
        match map.get("outputs") {
            None | Some(Value::Object(_)) | Some(Value::Array(_)) => {}
            Some(_) => {
                errors.push(ParamError::new("outputs", "`outputs` must map names to file names, or list file names"))
            }
        }
        for (name, file) in output_files(params) {
            if file.is_empty() || file.contains("..") || file.starts_with('/') || file.starts_with("logs/") {
                errors.push(ParamError::new(
                    &format!("outputs.{name}"),
                    format!("output file `{file}` must be a relative name inside the stage's directory"),
                ));
            }
        }
        if let Some(files) = map.get("files") {
            if !files.as_array().is_some_and(|items| items.iter().all(Value::is_string)) {
                errors.push(ParamError::new(
                    "files",
                    "`files` must be a list of paths (scripts and data the command reads)",
                ));
            }
        }
        if let Some(shell) = map.get("shell") {
            if !shell.is_string() {
                errors.push(ParamError::new("shell", "`shell` must be a program name such as bash"));
            }
        }
        errors
    }

    /// Every `{inputs.ROLE}` of `run:` must name a role under `inputs:`.
    fn input_problems(&self, params: &Map<String, Value>, roles: &[&str]) -> Vec<(String, String)> {
        let run = params.get("run").and_then(Value::as_str).unwrap_or_default();
        let listed = if roles.is_empty() { "none".to_string() } else { roles.join(", ") };
        placeholders(run)
            .iter()
            .filter_map(|placeholder| placeholder.strip_prefix("inputs."))
            .filter(|role| !role.is_empty() && !roles.contains(role))
            .map(|role| {
                (
                    format!("`{{inputs.{role}}}` in `run:` names no declared input; declared: {listed}"),
                    format!("add `{role}` to the stage's `inputs:`, or use one of the declared roles"),
                )
            })
            .collect()
    }

    fn file_params(&self, params: &Map<String, Value>) -> Vec<(String, String)> {
        params
            .get("files")
            .and_then(Value::as_array)
            .map(|files| {
                files
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| f.as_str().map(|f| (format!("files.{i}"), f.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn run(&self, params: &Map<String, Value>, ctx: &mut StageContext) -> Result<(), StageError> {
        let template = params.get("run").and_then(Value::as_str).unwrap_or_default();
        let outputs = output_files(params);
        let mut text = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            if rest[start..].starts_with("{{") {
                text.push_str(&rest[..start].replace("}}", "}"));
                text.push('{');
                rest = &rest[start + 2..];
                continue;
            }
            let Some(end) = rest[start..].find('}') else { break };
            text.push_str(&rest[..start].replace("}}", "}"));
            let placeholder = &rest[start + 1..start + end];
            text.push_str(&expand(ctx, params, placeholder, &outputs)?);
            rest = &rest[start + end + 1..];
        }
        text.push_str(&rest.replace("}}", "}"));

        let logs = ctx.out_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| StageError::failed(format!("{}: {e}", logs.display())))?;
        let stdout_path = logs.join("stdout.txt");
        let stderr_path = logs.join("stderr.txt");
        let open = |path: &std::path::Path| {
            File::create(path).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))
        };
        let shell = params.get("shell").and_then(Value::as_str).unwrap_or("bash");
        // The shell's path, looked up in PATH once per process rather than
        // by every child (eight failed execve calls each with this
        // project's PATH, while the stage thread waits on the vfork).
        let program = resolved_program(shell);
        let mut child = Process::new(program.as_deref().unwrap_or(std::path::Path::new(shell)));
        child
            .arg0(shell)
            .arg("-c")
            .arg(&text)
            .current_dir(ctx.base_dir)
            .env("VOXFLOW_OUT", ctx.out_dir)
            .env("VOXFLOW_THREADS", ctx.threads.to_string())
            .env("VOXFLOW_STAGE", ctx.name)
            .stdin(Stdio::null())
            .stdout(open(&stdout_path)?)
            .stderr(open(&stderr_path)?)
            .process_group(0);
        #[cfg(target_os = "linux")]
        let reaper = reaper()?;
        // The run's token, which the reaper looks for in every process's
        // environment once the runner is gone: it covers a kill -9 of the
        // runner between spawn returning and the registration below. No
        // pre-exec hook (a parent-death signal would need one): with a hook
        // the standard library forks the whole runner for each command
        // instead of using posix_spawn, which cost 1000 trivial stages at
        // -j 2 1.6 times their time (benches/engine.sh).
        #[cfg(target_os = "linux")]
        child.env(&reaper.variable, "1");
        let child = child.spawn().map_err(|e| StageError::failed(format!("cannot start `{shell}`: {e}")))?;
        #[cfg(target_os = "linux")]
        reaper.tell(b'+', child.id() as libc::pid_t);
        ctx.add_log("logs/stdout.txt");
        ctx.add_log("logs/stderr.txt");
        let status = wait_or_cancel(child, ctx)?;
        if !status.success() {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
            let code = match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".into(),
            };
            let mut message = format!("command failed ({code}): {text}");
            if !tail.is_empty() {
                message.push_str("\n  last lines of stderr:\n    ");
                message.push_str(&tail.join("\n    "));
            }
            return Err(StageError::failed(message).with_hint(format!("the full log is {}", stderr_path.display())));
        }
        for (name, file) in &outputs {
            match std::fs::symlink_metadata(ctx.out_dir.join(file)) {
                Ok(meta) if meta.is_dir() => ctx.add_dir(name, file),
                // A file, or a link the scheduler refuses with its reason.
                Ok(_) => ctx.add_file(name, file),
                Err(_) => {
                    return Err(StageError::failed(format!(
                        "the command did not write its declared output `{name}` ({file})"
                    ))
                    .with_hint(format!(
                        "write it to {{outputs.{name}}}, which expands to {}",
                        ctx.out_dir.join(file).display()
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Waits for the command, or on Ctrl-C stops it (SIGTERM to its process
/// group, SIGKILL 500 ms later, and again after 2 s if it has not ended)
/// and returns [`StageError::Cancelled`]. Either way what the command left
/// running in its group is killed, and the group is struck from the
/// reaper's list, while the command is still a zombie (so its id, and the
/// group's, cannot have been reused).
///
/// On Linux the stage's own thread polls a pidfd of the child (waking at its
/// exit, or every 50 ms to look at the cancel flag); elsewhere, or where
/// `pidfd_open` is refused, a waiter thread reports the exit over a channel.
fn wait_or_cancel(mut child: Child, ctx: &StageContext<'_>) -> Result<ExitStatus, StageError> {
    let pid = child.id() as i32;
    let stop = |wait_exit: &mut dyn FnMut(Duration) -> bool| {
        // SAFETY: kill(2) on the child's own process group.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        if !wait_exit(Duration::from_millis(500)) {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            if !wait_exit(Duration::from_millis(1500)) {
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
    };
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = PidFd::open(pid) {
        loop {
            if pidfd.exited_within(Duration::from_millis(50)) {
                end_group(pid);
                return child.wait().map_err(|e| StageError::failed(format!("waiting for the command: {e}")));
            }
            if ctx.is_cancelled() {
                stop(&mut |timeout| pidfd.exited_within(timeout));
                end_group(pid);
                let _ = child.wait();
                return Err(StageError::Cancelled);
            }
        }
    }
    // A waiter thread reports the exit at once; this thread watches for Ctrl-C.
    let (sender, receiver) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    let status = loop {
        match receiver.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(status)) => break status,
            Ok(Err(e)) => {
                end_group(pid);
                return Err(StageError::failed(format!("waiting for the command: {e}")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                end_group(pid);
                return Err(StageError::failed("lost track of the command's process"));
            }
        }
        if ctx.is_cancelled() {
            stop(&mut |timeout| receiver.recv_timeout(timeout).is_ok());
            end_group(pid);
            let _ = waiter.join();
            return Err(StageError::Cancelled);
        }
    };
    end_group(pid);
    let _ = waiter.join();
    Ok(status)
}

/// Kills what is left of the command's process group and strikes the
/// group from the reaper's list.
fn end_group(pid: i32) {
    // SAFETY: kill(2) on the command's own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    #[cfg(target_os = "linux")]
    if let Some(Ok(reaper)) = REAPER.get() {
        reaper.tell(b'-', pid);
    }
}

/// The run's reaper: one small process per run, forked from the runner at
/// its first command stage ([`reaper`]), that kills every command's process
/// group still registered when the runner dies.
///
/// The runner writes `+PGID\n` to the reaper's stdin (a pipe) right after it
/// spawns a command and `-PGID\n` once it has killed what was left of its
/// group. The write end is close-on-exec and the reaper closes its own copy,
/// so the pipe reaches end-of-file exactly when the runner is gone, however
/// it died (the kernel closes a killed process's descriptors): the reaper
/// then sends SIGKILL to every registered group, then to every process
/// whose environment holds the run's token ([`TOKEN_PREFIX`]), scanning
/// /proc until a scan finds none (at most [`SCANS`] scans), and exits.
///
/// The scan closes the window between a command's spawn and its
/// registration: a child holds its copy of the pipe's write end (the
/// runner's descriptors, copied by clone) until its `execve` closes it, so
/// end-of-file comes only after every command spawned has exec'd, with the
/// token in its environment, or exited. It also finds what a command
/// started outside its group (`setsid`, double forks), which inherits the
/// environment; a process that clears it (`env -i`) escapes.
#[cfg(target_os = "linux")]
struct Reaper {
    write: std::os::fd::OwnedFd,
    /// `VOXFLOW_RUN_TOKEN_` and 32 hex digits (128 random bits): set to 1
    /// in every command's environment.
    variable: String,
}

/// The start of the environment variable that carries the run's token to
/// its commands: `VOXFLOW_RUN_TOKEN_<token>=1`. The token is in the name, not
/// the value, so that a `voxflow run` inside a command adds its own token
/// beside the outer run's, and the outer reaper still finds the inner
/// run's commands.
pub const TOKEN_PREFIX: &str = "VOXFLOW_RUN_TOKEN_";

/// The most /proc scans the reaper makes (10 ms apart while a scan finds
/// processes to kill).
#[cfg(target_os = "linux")]
const SCANS: usize = 200;

/// The reaper's pause after each read of the registration pipe (20 ms): it
/// acts at most this late after the runner dies.
#[cfg(target_os = "linux")]
const BATCH_PAUSE_NS: libc::c_long = 20_000_000;

#[cfg(target_os = "linux")]
impl Reaper {
    /// Writes one line; lines under PIPE_BUF are written whole even when
    /// stage threads write at once. A failed write (the reaper was killed)
    /// only loses the guarantee.
    fn tell(&self, sign: u8, pgid: libc::pid_t) {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let mut line = [0u8; 24];
        let mut cursor = std::io::Cursor::new(&mut line[..]);
        let _ = write!(cursor, "{}{pgid}\n", sign as char);
        let len = cursor.position() as usize;
        // SAFETY: writes `len` bytes of `line` to our own descriptor.
        unsafe { libc::write(self.write.as_raw_fd(), line.as_ptr().cast(), len) };
    }
}

#[cfg(target_os = "linux")]
static REAPER: std::sync::OnceLock<Result<Reaper, String>> = std::sync::OnceLock::new();

/// The run's reaper, started at the first call.
#[cfg(target_os = "linux")]
fn reaper() -> Result<&'static Reaper, StageError> {
    REAPER
        .get_or_init(start_reaper)
        .as_ref()
        .map_err(|e| StageError::failed(format!("cannot start the run's reaper process: {e}")))
}

#[cfg(target_os = "linux")]
fn start_reaper() -> Result<Reaper, String> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let [read, write] = fds;
    let token = format!("{:032x}", rand::random::<u128>());
    // What the reaper looks for: the environment entry, NUL-terminated (the
    // child must not allocate).
    let variable = format!("{TOKEN_PREFIX}{token}");
    let entry = std::ffi::CString::new(format!("{variable}=1")).expect("hex digits");
    // SAFETY: the child makes only async-signal-safe calls (this process
    // has other threads) and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let error = std::io::Error::last_os_error();
        unsafe {
            libc::close(read);
            libc::close(write);
        }
        return Err(error.to_string());
    }
    if pid == 0 {
        unsafe { reap(read, entry.as_bytes()) }
    }
    // SAFETY: `read` is ours and no longer needed here; `write` is owned.
    unsafe { libc::close(read) };
    Ok(Reaper { write: unsafe { std::os::fd::OwnedFd::from_raw_fd(write) }, variable })
}

/// The reaper's body, in the child of `fork`: only async-signal-safe calls
/// and no allocation. It leaves the run's process group (Ctrl-C is the
/// run's to handle), keeps only the pipe's read end (as stdin) and
/// /dev/null, reads registrations until end-of-file, then kills the
/// registered groups and the processes that carry `entry`
/// (`VOXFLOW_RUN_TOKEN_<token>=1`) in their environment.
#[cfg(target_os = "linux")]
unsafe fn reap(read: libc::c_int, entry: &[u8]) -> ! {
    const MAX: usize = 1 << 16;
    static mut GROUPS: [libc::pid_t; MAX] = [0; MAX];
    let groups = &mut *std::ptr::addr_of_mut!(GROUPS);
    let mut count = 0usize;
    libc::setpgid(0, 0);
    for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
        libc::signal(signal, libc::SIG_IGN);
    }
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    libc::dup2(read, 0);
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        libc::dup2(null, 1);
        libc::dup2(null, 2);
    }
    // The run's other descriptors (the pipe's write end, key locks, the
    // store's files) must not live on here.
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
        for fd in 3..4096 {
            libc::close(fd);
        }
    }
    let mut buffer = [0u8; 4096];
    let mut sign = 0u8;
    let mut value: libc::pid_t = 0;
    loop {
        let n = libc::read(0, buffer.as_mut_ptr().cast(), buffer.len());
        if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        for &byte in &buffer[..n as usize] {
            match byte {
                b'+' | b'-' => {
                    sign = byte;
                    value = 0;
                }
                b'0'..=b'9' => value = value.saturating_mul(10).saturating_add((byte - b'0') as libc::pid_t),
                b'\n' if value > 0 => {
                    if sign == b'+' && count < MAX {
                        groups[count] = value;
                        count += 1;
                    } else if sign == b'-' {
                        if let Some(i) = groups[..count].iter().position(|&g| g == value) {
                            count -= 1;
                            groups[i] = groups[count];
                        }
                    }
                    sign = 0;
                    value = 0;
                }
                _ => {
                    sign = 0;
                    value = 0;
                }
            }
        }
        // Read in batches: what is registered matters only at end-of-file,
        // and a wake-up per line (two per command) kept a core busy
        // switching on runs of many short commands. The pipe (64 KiB) holds
        // thousands of lines; a writer that fills it waits for this pause.
        let pause = libc::timespec { tv_sec: 0, tv_nsec: BATCH_PAUSE_NS };
        libc::nanosleep(&pause, std::ptr::null_mut());
    }
    for &group in &groups[..count] {
        libc::kill(-group, libc::SIGKILL);
    }
    // A killed process keeps its environment until it is gone; one that
    // was forking may leave a child: scan again until a scan kills nothing.
    for _ in 0..SCANS {
        if kill_carriers(entry) == 0 {
            break;
        }
        let pause = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
        libc::nanosleep(&pause, std::ptr::null_mut());
    }
    libc::_exit(0)
}

/// Sends SIGKILL to every process (that this one may read) whose
/// environment holds `entry` as a whole entry; returns how many. Raw
/// system calls and static buffers only: it runs in the reaper, a fork of
/// a threaded process.
#[cfg(target_os = "linux")]
unsafe fn kill_carriers(entry: &[u8]) -> usize {
    static mut DIRENTS: [u8; 32768] = [0; 32768];
    let dirents = &mut *std::ptr::addr_of_mut!(DIRENTS);
    let me = libc::getpid();
    let proc_fd = libc::open(c"/proc".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
    if proc_fd < 0 {
        return 0;
    }
    let mut killed = 0;
    loop {
        let n = libc::syscall(libc::SYS_getdents64, proc_fd, dirents.as_mut_ptr(), dirents.len());
        if n <= 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
            let record = &dirents[at..];
            let length = u16::from_ne_bytes([record[16], record[17]]) as usize;
            let name = &record[19..length];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            at += length.max(1);
            let mut pid: libc::pid_t = 0;
            if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
                continue;
            }
            for &digit in name {
                pid = pid.saturating_mul(10).saturating_add((digit - b'0') as libc::pid_t);
            }
            if pid == me {
                continue;
            }
            // A pidfd first: if the process ends and its id is reused while
            // we read, the signal goes to no one rather than to the new one.
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int;
            if environment_holds(proc_fd, name, entry) {
                let sent = if pidfd >= 0 {
                    libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, std::ptr::null::<u8>(), 0)
                } else {
                    libc::kill(pid, libc::SIGKILL) as libc::c_long
                };
                if sent == 0 {
                    killed += 1;
                }
            }
            if pidfd >= 0 {
                libc::close(pidfd);
            }
        }
    }
    libc::close(proc_fd);
    killed
}

/// Whether /proc/`pid`/environ holds `entry` as one whole NUL-separated
/// entry; read in chunks without allocating.
#[cfg(target_os = "linux")]
unsafe fn environment_holds(proc_fd: libc::c_int, pid: &[u8], entry: &[u8]) -> bool {
    static mut BUFFER: [u8; 16384] = [0; 16384];
    let buffer = &mut *std::ptr::addr_of_mut!(BUFFER);
    let mut path = [0u8; 40];
    let suffix = b"/environ\0";
    if pid.len() + suffix.len() > path.len() {
        return false;
    }
    path[..pid.len()].copy_from_slice(pid);
    path[pid.len()..pid.len() + suffix.len()].copy_from_slice(suffix);
    let fd = libc::openat(proc_fd, path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let mut matcher = EntryMatcher::new(entry);
    let mut found = false;
    loop {
        let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
        if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        if matcher.feed(&buffer[..n as usize]) {
            found = true;
            break;
        }
    }
    found = found || matcher.finish();
    libc::close(fd);
    found
}

/// Finds `entry` as a whole entry of a NUL-separated list fed in pieces.
struct EntryMatcher<'a> {
    entry: &'a [u8],
    /// How much of `entry` the current list entry has matched so far;
    /// `None` once it differs.
    matched: Option<usize>,
}

impl<'a> EntryMatcher<'a> {
    fn new(entry: &'a [u8]) -> EntryMatcher<'a> {
        EntryMatcher { entry, matched: Some(0) }
    }

    /// Whether an entry that ends in `bytes` is `entry`.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            if byte == 0 {
                if self.matched == Some(self.entry.len()) {
                    return true;
                }
                self.matched = Some(0);
            } else {
                self.matched = match self.matched {
                    Some(i) if i < self.entry.len() && self.entry[i] == byte => Some(i + 1),
                    _ => None,
                };
            }
        }
        false
    }

    /// Whether the last entry, unterminated, is `entry`.
    fn finish(&self) -> bool {
        self.matched == Some(self.entry.len())
    }
}

/// A process's pidfd (Linux 5.3 and later): readable once the process exits.
#[cfg(target_os = "linux")]
struct PidFd(std::os::fd::OwnedFd);

#[cfg(target_os = "linux")]
impl PidFd {
    fn open(pid: i32) -> Option<PidFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open(2) returns a new descriptor that we own, or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then(|| PidFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Whether the process has exited, waiting up to `timeout` for it.
    fn exited_within(&self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        let mut poll = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis() as libc::c_int) };
            match ready {
                0 => return false,
                1.. => return true,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
                    if left.is_zero() {
                        return false;
                    }
                }
                // Another poll error: the caller's child.wait() tells.
                _ => return true,
            }
        }
    }
}

/// `program` as `execvp` would find it in PATH, remembered for the process
/// (per PATH value). `None` (spawn by name) where the name has a `/`, PATH
/// has an empty or relative entry (the child runs in another directory), or
/// nothing executable is found.
fn resolved_program(program: &str) -> Option<std::path::PathBuf> {
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};
    type Found = HashMap<(String, OsString), Option<PathBuf>>;
    static FOUND: OnceLock<Mutex<Found>> = OnceLock::new();
    if program.is_empty() || program.contains('/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    let mut found = FOUND.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry((program.to_string(), path.clone()))
        .or_insert_with(|| {
            let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
            if dirs.iter().any(|dir| !dir.is_absolute()) {
                return None;
            }
            dirs.into_iter().map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
        })
        .clone()
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: a NUL-terminated path. access(X_OK) is execve's permission check.
    path.is_file() && unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } == 0
}

/// The text a placeholder of the command line stands for.
fn expand(
    ctx: &StageContext,
    params: &Map<String, Value>,
    placeholder: &str,
    outputs: &[(String, String)],
) -> Result<String, StageError> {
    let (scope, name) = placeholder.split_once('.').unwrap_or((placeholder, ""));
    let path = match scope {
        "inputs" => {
            let input = ctx.input(name)?;
            match input.single_output() {
                Ok((_, path)) => path,
                Err(_) => input.dir.clone(),
            }
        }
        "outputs" => {
            let file = outputs.iter().find(|(n, _)| n == name).map(|(_, f)| f.clone()).unwrap_or_default();
            ctx.out_dir.join(file)
        }
        "params" => {
            return Ok(match params.get(name) {
                Some(Value::String(s)) => quote(s),
                Some(other) => quote(&other.to_string()),
                None => String::new(),
            })
        }
        "threads" => return Ok(ctx.threads.to_string()),
        "out_dir" => ctx.out_dir.to_path_buf(),
        _ => return Err(StageError::failed(format!("unknown placeholder `{{{placeholder}}}`"))),
    };
    let absolute = std::path::absolute(&path).unwrap_or(path);
    Ok(quote(&absolute.to_string_lossy()))
}

/// Declared outputs as (name, file), from a mapping or a list of file names.
fn output_files(params: &Map<String, Value>) -> Vec<(String, String)> {
    match params.get("outputs") {
        Some(Value::Object(map)) => {
            map.iter().map(|(name, file)| (name.clone(), file.as_str().unwrap_or_default().to_string())).collect()
        }
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|file| {
                let name = std::path::Path::new(file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| file.to_string());
                (name, file.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        if rest[start..].starts_with("{{") {
            rest = &rest[start + 2..];
            continue;
        }
        match rest[start..].find('}') {
            Some(end) => {
                out.push(rest[start + 1..start + end].to_string());
                rest = &rest[start + end + 1..];
            }
            None => break,
        }
    }
    out
}

/// Single-quotes a word for the shell when it needs it.
fn quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
