//! libtorch's CUDA backend is loaded with dlopen at the first libtorch call
//! (`device::init_torch`), not linked: a process that never touches libtorch
//! does not carry it. One test in its own binary, since it looks at what the
//! process has mapped before and after the first call.

use std::path::PathBuf;

/// Paths of the libraries this process has mapped.
fn mapped() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines().filter_map(|line| line.split_whitespace().nth(5)).map(PathBuf::from).collect()
}

fn is_mapped(name: &str) -> bool {
    mapped().iter().any(|path| path.file_name().is_some_and(|f| f == name))
}

#[test]
fn libtorch_cuda_loads_at_the_first_libtorch_call_and_registers_its_backend() {
    let cpu = mapped()
        .into_iter()
        .find(|path| path.file_name().is_some_and(|f| f == "libtorch_cpu.so"))
        .expect("libtorch_cpu.so is linked");
    // A CUDA build of libtorch ships libtorch_cuda.so beside libtorch_cpu.so.
    let cuda_build = cpu.with_file_name("libtorch_cuda.so").exists();
    assert!(!is_mapped("libtorch_cuda.so"), "libtorch_cuda.so is mapped before any libtorch call: is it linked again?");

    assert_eq!(voxflow_torch::device::init_torch(), cuda_build);
    assert_eq!(is_mapped("libtorch_cuda.so"), cuda_build);
    assert_eq!(voxflow_torch::device::init_torch(), cuda_build, "a second call changes nothing");

    // With the backend registered, a CUDA tensor either is made (a GPU is
    // there) or fails for want of a device or driver, not for want of
    // libtorch's CUDA library.
    let count = voxflow_torch::device::cuda_device_count();
    match tch::Tensor::f_ones([3], (tch::Kind::Float, tch::Device::Cuda(0))) {
        Ok(ones) => {
            assert!(count > 0);
            assert_eq!(ones.sum(tch::Kind::Float).double_value(&[]), 3.0);
        }
        Err(error) => {
            assert_eq!(count, 0, "{error}");
            let message = error.to_string();
            // Without the backend the dispatcher has no CUDA kernels ("Could
            // not run 'aten::empty.memory_format' ... from the 'CUDA'
            // backend"), or libtorch asks for "the ATen_cuda library".
            let unregistered = message.contains("Could not run") || message.contains("ATen_cuda");
            assert!(!cuda_build || !unregistered, "the CUDA backend did not register: {message}");
            println!("no CUDA device here: {}", message.lines().next().unwrap_or(""));
        }
    }
}
