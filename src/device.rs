//! Where a stage computes: `device: auto | cpu | cuda | cuda:N`.
//!
//! The scheduler gives a stage that wants a GPU one slot per visible GPU and
//! hands it `cuda:<slot>` (see `exec.rs`); `auto` then means that GPU, and the
//! CPU when the stage got no GPU slot (no GPU on the machine, or a build
//! without the `torch` feature). `cuda` and `cuda:N` insist: validation fails
//! where no CUDA device is visible. The device used goes into the manifest;
//! `device` is never part of a cache key.

use std::fmt;

/// A `device:` param as written: `auto`, `cpu`, `cuda` (or its alias `gpu`)
/// or `cuda:N`. It deserialises from those spellings and serialises to the
/// same ones (`gpu` as `cuda`); `device` never enters a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    /// `cuda` (None: the GPU the scheduler assigned, or 0) or `cuda:N`.
    Cuda(Option<usize>),
}

/// The device a stage computes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => write!(f, "auto"),
            DeviceRequest::Cpu => write!(f, "cpu"),
            DeviceRequest::Cuda(None) => write!(f, "cuda"),
            DeviceRequest::Cuda(Some(i)) => write!(f, "cuda:{i}"),
        }
    }
}

/// The spellings a `device:` param takes, for error messages.
const DEVICE_SPELLINGS: &[&str] = &["auto", "cpu", "cuda", "cuda:N"];

impl serde::Serialize for DeviceRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<DeviceRequest, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DeviceRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a device: auto, cpu, cuda or cuda:N")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DeviceRequest, E> {
                // Reported like an enum's unknown value (see `stages::parse_params`).
                DeviceRequest::parse(text).map_err(|_| E::unknown_variant(text, DEVICE_SPELLINGS))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl DeviceRequest {
    pub fn parse(text: &str) -> Result<DeviceRequest, String> {
        match text {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(None)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(DeviceRequest::Cuda(Some(index))),
                _ => Err(format!("unknown device `{other}`: use auto, cpu, cuda or cuda:N")),
            },
        }
    }

    /// Whether the stage should ask the scheduler for a GPU slot.
    pub fn wants_gpu(self) -> bool {
        !matches!(self, DeviceRequest::Cpu)
    }

    /// Checks the request against this machine at validation time: a CUDA
    /// request where no CUDA device is visible is an error with the fix.
    pub fn validate(self) -> Result<(), (String, String)> {
        // Only a CUDA request needs the count (its first call initialises CUDA).
        let count = if matches!(self, DeviceRequest::Cuda(_)) { cuda_device_count() } else { 0 };
        match self {
            DeviceRequest::Cuda(_) if count == 0 => Err((
                format!(
                    "device `{self}` asked for, but {}",
                    if cfg!(feature = "torch") {
                        "no CUDA device is visible to libtorch on this machine"
                    } else {
                        "this voxflow was built without the `torch` feature"
                    }
                ),
                "use `device: auto` to run on the GPU when there is one and on the CPU otherwise, or `device: cpu`"
                    .into(),
            )),
            DeviceRequest::Cuda(Some(index)) if index >= count => Err((
                format!("device `cuda:{index}` asked for, but this machine shows {count} CUDA device(s)"),
                format!("use cuda:0..cuda:{} or `device: auto`", count - 1),
            )),
            _ => Ok(()),
        }
    }

    /// The device to compute on, given the one the scheduler assigned
    /// (`StageContext::device`: the CPU, or the GPU slot it got).
    pub fn resolve(self, assigned: Device) -> Device {
        let assigned_gpu = match assigned {
            Device::Cuda(i) => Some(i),
            Device::Cpu => None,
        };
        match self {
            DeviceRequest::Cpu => Device::Cpu,
            DeviceRequest::Auto => match assigned_gpu {
                Some(i) => Device::Cuda(i),
                None if cuda_device_count() > 0 => Device::Cuda(0),
                None => Device::Cpu,
            },
            DeviceRequest::Cuda(Some(i)) => Device::Cuda(i),
            DeviceRequest::Cuda(None) => Device::Cuda(assigned_gpu.unwrap_or(0)),
        }
    }
}

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
#[cfg(feature = "torch")]
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
#[cfg(feature = "torch")]
fn dlopen_global(path: &std::path::Path) -> Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading runs the library's initialisers; libtorch_cuda's only
    // register its CUDA backend with libtorch, which is what is wanted here.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| e.to_string())?;
    // Never unloaded: dropping the handle would dlclose it.
    std::mem::forget(library);
    Ok(())
}

/// CUDA devices libtorch sees (0 without the `torch` feature). Cached: the
/// first call initialises CUDA.
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "torch")]
    {
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
    #[cfg(not(feature = "torch"))]
    {
        0
    }
}

#[cfg(feature = "torch")]
impl From<Device> for tch::Device {
    fn from(device: Device) -> tch::Device {
        init_torch();
        match device {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(i) => tch::Device::Cuda(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        assert_eq!(DeviceRequest::parse("cuda:1").unwrap(), DeviceRequest::Cuda(Some(1)));
        assert!(DeviceRequest::parse("tpu").unwrap_err().contains("auto, cpu, cuda"));
        assert_eq!(DeviceRequest::Cpu.resolve(Device::Cuda(0)), Device::Cpu);
        assert_eq!(DeviceRequest::Auto.resolve(Device::Cuda(2)), Device::Cuda(2));
        assert_eq!(DeviceRequest::Cuda(None).resolve(Device::Cuda(3)), Device::Cuda(3));
        assert_eq!(DeviceRequest::Cuda(Some(1)).resolve(Device::Cpu), Device::Cuda(1));
        if cuda_device_count() == 0 {
            assert_eq!(DeviceRequest::Auto.resolve(Device::Cpu), Device::Cpu);
            let (message, hint) = DeviceRequest::Cuda(None).validate().unwrap_err();
            assert!(message.contains("device `cuda`"), "{message}");
            assert!(hint.contains("device: auto"), "{hint}");
        }
    }

    /// The param spellings round-trip through serde as canonical params
    /// wrote them (`gpu` is `cuda`); anything else is an unknown value.
    #[test]
    fn deserialises_and_serialises_the_param_spellings() {
        for (text, request) in [
            ("auto", DeviceRequest::Auto),
            ("cpu", DeviceRequest::Cpu),
            ("cuda", DeviceRequest::Cuda(None)),
            ("gpu", DeviceRequest::Cuda(None)),
            ("cuda:2", DeviceRequest::Cuda(Some(2))),
        ] {
            let parsed: DeviceRequest = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, request, "{text}");
            let written = serde_json::to_value(parsed).unwrap();
            assert_eq!(written, serde_json::json!(if text == "gpu" { "cuda" } else { text }));
        }
        let error = serde_json::from_value::<DeviceRequest>(serde_json::json!("tpu")).unwrap_err().to_string();
        assert!(error.contains("unknown variant `tpu`, expected one of `auto`, `cpu`, `cuda`, `cuda:N`"), "{error}");
        assert!(serde_json::from_value::<DeviceRequest>(serde_json::json!(0)).is_err());
    }
}
