//! libtorch in a worker process: loading its CUDA backend, counting the
//! devices libtorch sees, and mapping voxflow's [`Device`] to tch's.

pub use voxflow::device::{Device, DeviceRequest};

/// Loads libtorch's CUDA backend (libtorch_cuda.so) into the process, once.
/// Every code path that calls into libtorch calls this first: libtorch looks
/// its CUDA backend up the first time anything asks about CUDA and keeps the
/// answer, so a backend loaded after that would never be seen (and the
/// autograd engine sizes its device threads on the first backward pass).
///
/// The binary does not link libtorch_cuda (see build.rs): a process that never
/// touches libtorch, such as a CPU ridge fit, is spared its ~0.27 GB of
/// relocated pages and CUDA libraries. Returns whether the CUDA backend is
/// loaded; false with a CPU-only libtorch (no libtorch_cuda.so beside
/// libtorch_cpu.so), and with a warning if the library is there but does not
/// load.
pub fn init_torch() -> bool {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| {
        let baked = option_env!("VOXFLOW_LIBTORCH_LIB").map(|dir| std::path::Path::new(dir).join("libtorch_cuda.so"));
        // The directory libtorch was linked from, else the rpath and
        // LD_LIBRARY_PATH (a libtorch moved after the build).
        let candidate = match baked {
            Some(path) if path.exists() => path,
            _ => std::path::PathBuf::from("libtorch_cuda.so"),
        };
        match dlopen_global(&candidate) {
            Ok(()) => {
                tracing::debug!("loaded {}", candidate.display());
                true
            }
            Err(error) if candidate.is_absolute() => {
                tracing::warn!("libtorch's CUDA backend did not load, torch stages run on the CPU only: {error}");
                false
            }
            Err(error) => {
                tracing::debug!("no libtorch CUDA backend (CPU-only libtorch): {error}");
                false
            }
        }
    })
}

/// `dlopen(path, RTLD_NOW | RTLD_GLOBAL)`, never closed: the library's
/// symbols must stay visible to libtorch for the life of the process.
fn dlopen_global(path: &std::path::Path) -> Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading runs the library's initialisers; libtorch_cuda's only
    // register its CUDA backend with libtorch, which is what is wanted here.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| e.to_string())?;
    // Never unloaded: dropping the handle would dlclose it.
    std::mem::forget(library);
    Ok(())
}

/// CUDA devices libtorch sees. Cached: the first call initialises CUDA.
pub fn cuda_device_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        init_torch();
        if tch::Cuda::is_available() {
            tch::Cuda::device_count().max(0) as usize
        } else {
            0
        }
    })
}

/// The libtorch device for a voxflow [`Device`] (loading the CUDA backend first).
pub fn to_tch(device: Device) -> tch::Device {
    init_torch();
    match device {
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(i) => tch::Device::Cuda(i),
    }
}
