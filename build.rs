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
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=VOXFLOW_LIBTORCH_LIB={dir}");
    }
}
