// Runtime path to libtorch. torch-sys (`links = "tch"`) hands the directory of
// the libtorch it linked to this build script as DEP_TCH_LIBTORCH_LIB; baking
// it into the binaries' rpath lets `voxflow` run without LD_LIBRARY_PATH.
//
// libtorch_cuda is not linked: nothing references its symbols directly (its
// kernels register themselves when it loads), so the linker drops it, and a
// process that never touches libtorch does not pay its ~0.27 GB of relocated
// pages and CUDA libraries. `device::init_torch` loads it with dlopen before
// the first libtorch call, from the directory baked in here as
// VOXFLOW_LIBTORCH_LIB.
//
// The clone being built (VOXFLOW_ROOT, exported by scripts/env.sh) is part of
// the build's identity. Several clones share one target directory, and cargo
// keys a workspace member's build by paths relative to the workspace and by
// file modification times: a clone whose files are older than another
// clone's last build would reuse that build, whose tests and examples read
// files through the other clone's CARGO_MANIFEST_DIR. Rerunning this script
// when VOXFLOW_ROOT changes rebuilds the crate for the clone at hand.
fn main() {
    println!("cargo:rerun-if-env-changed=VOXFLOW_ROOT");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=VOXFLOW_LIBTORCH_LIB={dir}");
    }
}
