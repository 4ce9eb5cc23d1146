//! Where a stage computes: `device: auto | cpu | cuda | cuda:N`.
//!
//! The scheduler gives a stage that wants a GPU one slot per visible GPU and
//! hands it `cuda:<slot>` (see `exec/`); `auto` then means that GPU, and the
//! CPU when the stage got no GPU slot (no GPU on the machine). `cuda` and `cuda:N` insist: validation fails
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

impl Device {
    /// Reads back what `Display` writes (`cpu`, `cuda:N`).
    pub fn parse(text: &str) -> Option<Device> {
        match text {
            "cpu" => Some(Device::Cpu),
            other => other.strip_prefix("cuda:")?.parse().ok().map(Device::Cuda),
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
        let count = if matches!(self, DeviceRequest::Cuda(_)) { gpu_count() } else { 0 };
        match self {
            DeviceRequest::Cuda(_) if count == 0 => Err((
                format!("device `{self}` asked for, but no NVIDIA GPU is visible on this machine (CUDA_VISIBLE_DEVICES, /proc/driver/nvidia/gpus)"),
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
                None if gpu_count() > 0 => Device::Cuda(0),
                None => Device::Cpu,
            },
            DeviceRequest::Cuda(Some(i)) => Device::Cuda(i),
            DeviceRequest::Cuda(None) => Device::Cuda(assigned_gpu.unwrap_or(0)),
        }
    }
}

/// NVIDIA GPUs visible to this process, found without loading libtorch (the
/// CLI never maps it; see ARCHITECTURE.md "Worker processes"): the entries
/// of `CUDA_VISIBLE_DEVICES` when it is set (empty, or starting with `-1`:
/// none), else the GPUs the NVIDIA driver lists in /proc/driver/nvidia/gpus.
/// The worker checks again with libtorch when a stage starts; a GPU that the
/// driver lists but CUDA cannot use fails that stage with libtorch's error.
pub fn gpu_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        let driver = std::fs::read_dir("/proc/driver/nvidia/gpus").map(|entries| entries.count()).unwrap_or(0);
        visible_gpus(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(), driver)
    })
}

/// The GPUs a process sees, given `CUDA_VISIBLE_DEVICES` and the number the
/// driver lists. CUDA stops reading the list at the first entry that is not
/// a valid device.
fn visible_gpus(visible: Option<&str>, driver: usize) -> usize {
    let Some(list) = visible else { return driver };
    let mut count = 0;
    for entry in list.split(',').map(str::trim) {
        let valid = match entry.parse::<i64>() {
            Ok(index) => index >= 0 && (index as usize) < driver,
            // A GPU UUID (GPU-..., MIG-...) names a device the driver has.
            Err(_) => (entry.starts_with("GPU-") || entry.starts_with("MIG-")) && driver > 0,
        };
        if !valid {
            break;
        }
        count += 1;
    }
    count.min(driver)
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
        if gpu_count() == 0 {
            assert_eq!(DeviceRequest::Auto.resolve(Device::Cpu), Device::Cpu);
            let (message, hint) = DeviceRequest::Cuda(None).validate().unwrap_err();
            assert!(message.contains("device `cuda`"), "{message}");
            assert!(hint.contains("device: auto"), "{hint}");
        }
    }

    #[test]
    fn visible_gpus_follow_cuda_visible_devices() {
        assert_eq!(visible_gpus(None, 2), 2);
        assert_eq!(visible_gpus(Some(""), 2), 0);
        assert_eq!(visible_gpus(Some("-1"), 2), 0);
        assert_eq!(visible_gpus(Some("1"), 2), 1);
        assert_eq!(visible_gpus(Some("0,1"), 2), 2);
        // CUDA stops at the first invalid entry.
        assert_eq!(visible_gpus(Some("0,5,1"), 2), 1);
        assert_eq!(visible_gpus(Some("GPU-8a1b,GPU-77c2"), 4), 2);
        assert_eq!(visible_gpus(Some("0"), 0), 0);
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
