//! Helpers for the unit tests (the integration tests have tests/common/).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::numeric::Matrix;

/// An RNG with a fresh seed per run, or `VOXFLOW_TEST_SEED`'s; the seed is
/// printed so that a failure can be replayed.
pub fn fresh_rng(test: &str) -> ChaCha8Rng {
    let seed = match std::env::var("VOXFLOW_TEST_SEED") {
        Ok(seed) => seed.parse().expect("VOXFLOW_TEST_SEED must be an integer"),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.expect("clock after 1970").as_nanos() as u64
        }
    };
    println!("{test}: seed {seed} (rerun with VOXFLOW_TEST_SEED={seed})");
    ChaCha8Rng::seed_from_u64(seed)
}

/// A rows x cols matrix of standard normal draws.
pub fn random_matrix(rng: &mut impl Rng, rows: usize, cols: usize) -> Matrix {
    let data = (0..rows * cols).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Matrix::from_vec(rows, cols, data)
}

/// A fresh directory under the system temp dir, removed on drop, for tests
/// that load pipeline files.
pub struct Scratch {
    pub path: std::path::PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!("voxflow-unit-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `yaml` as `pipeline.yaml` and loads it with `--set` `overrides`.
    pub fn pipeline(&self, yaml: &str, overrides: &[&str]) -> Result<crate::plan::Pipeline, crate::spec::Diagnostics> {
        let file = self.write("pipeline.yaml", yaml);
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        crate::load_pipeline(&file, &overrides, None)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
