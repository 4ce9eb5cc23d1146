//! `voxflow-worker`: runs one libtorch stage for the scheduler. Not meant to
//! be started by hand: `voxflow run` (and `voxflow exec` in a Slurm job)
//! start it, send the stage on stdin and read JSON lines from stdout
//! (`voxflow::worker::protocol`).

fn main() {
    voxflow::worker::serve(&voxflow_torch::Runtime)
}
