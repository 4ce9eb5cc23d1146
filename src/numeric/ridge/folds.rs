//! Cross-validation splits: [`Fold`] (rows to fit on, rows to score on), the
//! helpers that build the usual ones ([`folds_by_group`], leave one group
//! out; [`folds_contiguous`], unshuffled k-fold; [`folds_chunked`], shuffled
//! chunks of a time series), and [`splits_all_rows`], the property that the
//! shared-inverse and downdate routes and the shared projection need.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One cross-validation split: row indices of X and Y used to fit, and the
/// disjoint rows used to score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

/// Leave-one-group-out: one fold per distinct group (in increasing group
/// order), validating on that group's rows and training on all others.
pub fn folds_by_group(groups: &[usize]) -> Vec<Fold> {
    let mut distinct: Vec<usize> = groups.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
        .into_iter()
        .map(|g| {
            let (validation, train): (Vec<usize>, Vec<usize>) = (0..groups.len()).partition(|&i| groups[i] == g);
            Fold { train, validation }
        })
        .collect()
}

/// `k` contiguous validation blocks, like scikit-learn's unshuffled `KFold`:
/// the first `n % k` blocks hold one row more. A `k` larger than `n` gives
/// folds with empty validation sets, which [`ridge_cv`](super::ridge_cv) rejects.
pub fn folds_contiguous(n: usize, k: usize) -> Vec<Fold> {
    let mut start = 0;
    (0..k)
        .map(|f| {
            let len = n / k + usize::from(f < n % k);
            let validation: Vec<usize> = (start..start + len).collect();
            start += len;
            complement_fold(n, validation)
        })
        .collect()
}

/// Rows cut into chunks of `chunk_len` (the last may be shorter), the chunks
/// shuffled by a `ChaCha8Rng` seeded with `seed`, and dealt round-robin into
/// `k` validation sets: contiguous pieces of time series stay together and
/// the same seed always gives the same folds.
pub fn folds_chunked(n: usize, k: usize, chunk_len: usize, seed: u64) -> Vec<Fold> {
    let chunk_len = chunk_len.max(1);
    let mut chunks: Vec<usize> = (0..n.div_ceil(chunk_len)).collect();
    chunks.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut validation_sets = vec![Vec::new(); k];
    for (position, chunk) in chunks.into_iter().enumerate() {
        let rows = chunk * chunk_len..((chunk + 1) * chunk_len).min(n);
        if k > 0 {
            validation_sets[position % k].extend(rows);
        }
    }
    validation_sets
        .into_iter()
        .map(|mut validation| {
            validation.sort_unstable();
            complement_fold(n, validation)
        })
        .collect()
}

/// The fold that validates on `validation` and trains on every other of the
/// `n` rows.
pub(super) fn complement_fold(n: usize, validation: Vec<usize>) -> Fold {
    let mut in_validation = vec![false; n];
    validation.iter().for_each(|&i| in_validation[i] = true);
    let train = (0..n).filter(|&i| !in_validation[i]).collect();
    Fold { train, validation }
}

/// Whether a fold's training and validation rows together are all `n` rows,
/// each once.
pub(super) fn splits_all_rows(fold: &Fold, n: usize) -> bool {
    let mut seen = vec![false; n];
    fold.train.len() + fold.validation.len() == n
        && fold.train.iter().chain(&fold.validation).all(|&r| r < n && !std::mem::replace(&mut seen[r], true))
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::testing::fresh_rng;

    fn assert_partition(folds: &[Fold], n: usize) {
        let mut count = vec![0; n];
        for fold in folds {
            fold.validation.iter().for_each(|&i| count[i] += 1);
            let mut all: Vec<usize> = fold.train.iter().chain(&fold.validation).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "train and validation must split the rows");
        }
        assert!(count.iter().all(|&c| c == 1), "every row validates exactly once: {count:?}");
    }

    #[test]
    fn fold_helpers_partition_the_rows() {
        let mut rng = fresh_rng("fold_helpers_partition_the_rows");
        let n = rng.random_range(50..200);
        let k = rng.random_range(2..8);
        let contiguous = folds_contiguous(n, k);
        assert_eq!(contiguous.len(), k);
        assert_partition(&contiguous, n);
        for fold in &contiguous {
            let v = &fold.validation;
            assert_eq!(v.last().unwrap() - v[0] + 1, v.len(), "contiguous blocks");
            assert!(v.len() == n / k || v.len() == n / k + 1);
        }

        let seed: u64 = rng.random();
        let chunked = folds_chunked(n, k, 6, seed);
        assert_eq!(chunked.len(), k);
        assert_partition(&chunked, n);
        assert_eq!(chunked, folds_chunked(n, k, 6, seed), "same seed, same folds");
        // Two seeds can shuffle the chunks into the same folds (1 in 126 with
        // 9 chunks and k = 2), so one of eight other seeds must differ.
        assert!(
            (1..=8u64).any(|d| folds_chunked(n, k, 6, seed.wrapping_add(d.wrapping_mul(0x9e37_79b9))) != chunked),
            "other seeds, other folds"
        );
        for fold in &chunked {
            for piece in fold.validation.chunk_by(|a, b| b == &(a + 1)) {
                assert!(piece[0] % 6 == 0, "chunks start on multiples of chunk_len: {piece:?}");
            }
        }

        let groups: Vec<usize> = (0..n).map(|_| rng.random_range(0..5) * 10).collect();
        let by_group = folds_by_group(&groups);
        let mut distinct = groups.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(by_group.len(), distinct.len());
        assert_partition(&by_group, n);
        for (fold, g) in by_group.iter().zip(&distinct) {
            assert!(fold.validation.iter().all(|&i| groups[i] == *g));
            assert!(fold.train.iter().all(|&i| groups[i] != *g));
        }
    }
}
