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
