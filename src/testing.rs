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

/// A fresh, empty directory under the system's temporary directory, named
/// after the test and unique to this process.
pub fn temp_dir(test: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("voxflow-unit-{test}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
