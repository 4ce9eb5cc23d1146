//! The `voxflow` binary: parses the command line, owns the terminal (results
//! on stdout, progress and logs on stderr) and maps outcomes to exit codes:
//! 0 success, 1 a stage failed, 2 an invalid pipeline or usage, 130 interrupted.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
