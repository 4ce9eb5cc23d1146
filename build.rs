// Runtime path to libtorch. torch-sys (`links = "tch"`) hands the directory of
// the libtorch it linked to this build script as DEP_TCH_LIBTORCH_LIB; baking
// it into the binaries' rpath lets `voxflow` run without LD_LIBRARY_PATH.
// libtorch_cuda is linked with --no-as-needed: nothing references its symbols
// directly (its kernels register themselves when it loads), so the linker
// would otherwise drop it and libtorch would see no CUDA device.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        if std::path::Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-L{dir}");
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
