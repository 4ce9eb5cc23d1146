//! The design: X with its Gram matrices (`X^T X` for the SVD path, one
//! kernel `X_b X_b^T` per band for the kernel path), computed once in f64
//! and reused by every fold, alpha and band weighting; the blocks that a
//! fold takes of them; their spectral scales; and the eigendecompositions of
//! a fold's and of the whole design.
//!
//! # Two paths
//! The SVD path (`n >= p`) works with `X^T X` (p x p), the kernel path
//! (`p > n`) with `K = X X^T` (n x n), so that every matrix decomposed is
//! `min(n, p)` wide; both give the same weights. Which one each solve takes
//! is part of the [`RoutePlan`] (its
//! [`GramChoice`](super::plan::GramChoice)).

use std::ops::Range;
use std::sync::OnceLock;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use rayon::prelude::*;

use super::folds::splits_all_rows;
use super::linalg::{eigh_descending, gram_of_rows, product_f32, scale_rows, scale_symmetric, to_f32};
use super::plan::{Path, RoutePlan};
use super::precision::SpectralScale;
use super::{Fold, RidgeError};
use crate::numeric::Matrix;

/// One fold's training design in the form `L diag(lambda) R^T`, with the
/// validation rows already projected: predictions at `alpha` are
/// `validation_design diag(1 / (lambda + alpha)) left^T y_train`.
pub(super) struct FoldSpectrum {
    pub(super) lambdas: Vec<f64>,
    /// n_train x rank.
    pub(super) left: Mat<f32>,
    /// n_val x rank: `X_val R`.
    pub(super) validation_design: Mat<f32>,
}

/// The whole design: weights at `alpha` are `right diag(1 / (lambda + alpha)) left^T y`.
pub(super) struct FullSpectrum {
    pub(super) lambdas: Vec<f64>,
    /// n x rank.
    pub(super) left: Mat<f32>,
    /// p x rank, for the unscaled features.
    pub(super) right: Mat<f32>,
}

/// X with its Gram matrices, computed once in f64 and reused by every fold
/// and every band weighting.
pub(super) struct Design<'a> {
    pub(super) x: &'a Matrix,
    /// How the call runs; every route reads it from here.
    pub(super) plan: &'a RoutePlan,
    band_ranges: Vec<Range<usize>>,
    /// `X^T X`, when some solve takes the SVD path.
    pub(super) feature_gram: Option<Mat<f64>>,
    /// `X_b X_b^T` per band, when some solve takes the kernel path.
    pub(super) band_kernels: Vec<Mat<f64>>,
    /// The spectral scale of each band kernel and of the feature Gram
    /// matrix, computed when first needed.
    kernel_scales: OnceLock<Vec<SpectralScale>>,
    feature_scale: OnceLock<SpectralScale>,
}

impl<'a> Design<'a> {
    /// `band_widths`: the columns of X, band after band. `row_counts`: the
    /// number of rows of every design that will be solved, which decides the
    /// Gram matrices needed.
    pub(super) fn new(
        x: &'a Matrix,
        band_widths: &[usize],
        row_counts: impl Iterator<Item = usize>,
        plan: &'a RoutePlan,
    ) -> Self {
        let mut start = 0;
        let band_ranges: Vec<Range<usize>> = band_widths
            .iter()
            .map(|&width| {
                start += width;
                start - width..start
            })
            .collect();
        let paths: Vec<Path> = row_counts.map(|n| plan.gram.path(n, x.cols)).collect();
        // X^T in f64, column-major: each of its columns is a row of X, so the
        // copy reads and writes contiguously (rows in parallel).
        let mut x64_t = Mat::<f64>::zeros(x.cols, x.rows);
        x64_t.par_col_chunks_mut(1).enumerate().for_each(|(i, mut column)| {
            for (j, &value) in x.row(i).iter().enumerate() {
                column[(j, 0)] = value as f64;
            }
        });
        let feature_gram = paths.contains(&Path::Svd).then(|| gram_of_rows(x64_t.as_ref()));
        let band_kernels = if paths.contains(&Path::Kernel) {
            band_ranges.iter().map(|range| gram_of_rows(x64_t.subrows(range.start, range.len()).transpose())).collect()
        } else {
            Vec::new()
        };
        Design {
            x,
            band_ranges,
            feature_gram,
            band_kernels,
            kernel_scales: OnceLock::new(),
            feature_scale: OnceLock::new(),
            plan,
        }
    }

    /// The Gram matrix that a solve with `n_rows` rows works with.
    pub(super) fn path(&self, n_rows: usize) -> Path {
        self.plan.gram.path(n_rows, self.x.cols)
    }

    /// The spectral scale of `sum_b gamma_b K_b`: the weighted sums of each
    /// band kernel's largest eigenvalue (an estimate from above, by Weyl's
    /// inequality) and mean eigenvalue.
    pub(super) fn kernel_scale(&self, gamma: &[f64]) -> SpectralScale {
        let scales = self
            .kernel_scales
            .get_or_init(|| self.band_kernels.iter().map(|k| SpectralScale::of(k.as_ref())).collect());
        scales.iter().zip(gamma).fold(SpectralScale { largest: 0.0, mean: 0.0 }, |sum, (scale, g)| SpectralScale {
            largest: sum.largest + g * scale.largest,
            mean: sum.mean + g * scale.mean,
        })
    }

    /// The same for [`Design::full_gram`].
    pub(super) fn gram_scale(&self) -> SpectralScale {
        match self.path(self.x.rows) {
            Path::Svd => *self.feature_scale.get_or_init(|| {
                self.feature_gram.as_ref().map_or(SpectralScale::UNKNOWN, |gram| SpectralScale::of(gram.as_ref()))
            }),
            Path::Kernel => self.kernel_scale(&[1.0]),
        }
    }

    /// `sqrt(gamma_b)` for every feature column.
    pub(super) fn feature_scales(&self, gamma: &[f64]) -> Vec<f64> {
        let mut scales = vec![0.0; self.x.cols];
        for (range, g) in self.band_ranges.iter().zip(gamma) {
            scales[range.clone()].iter_mut().for_each(|s| *s = g.sqrt());
        }
        scales
    }

    /// A fold's training Gram matrix `X_T^T X_T` (SVD path): the whole one
    /// less the validation rows' (`validation`: `X_V` in f64) when the fold
    /// splits all rows, else from the training rows themselves.
    pub(super) fn train_gram(&self, fold: &Fold, validation: &Mat<f64>, par: Par) -> Mat<f64> {
        if !splits_all_rows(fold, self.x.rows) {
            return gram_of_rows(self.rows64(&fold.train).transpose());
        }
        let mut gram = self.feature_gram.clone().expect("feature Gram computed for the SVD path");
        matmul(gram.as_mut(), Accum::Add, validation.transpose(), validation.as_ref(), -1.0, par);
        gram
    }

    pub(super) fn rows64(&self, rows: &[usize]) -> Mat<f64> {
        Mat::from_fn(rows.len(), self.x.cols, |i, j| self.x.get(rows[i], j) as f64)
    }

    /// `sum_b gamma_b K_b[rows, cols]`.
    pub(super) fn kernel_block(&self, gamma: &[f64], rows: &[usize], cols: &[usize]) -> Mat<f64> {
        let mut block = Mat::<f64>::zeros(rows.len(), cols.len());
        for (kernel, &g) in self.band_kernels.iter().zip(gamma) {
            for (j, &c) in cols.iter().enumerate() {
                let source = kernel.col_as_slice(c);
                for (value, &r) in block.col_as_slice_mut(j).iter_mut().zip(rows) {
                    *value += g * source[r];
                }
            }
        }
        block
    }

    /// The Gram matrix of all rows the refit solves with (unit band weights):
    /// `X^T X` on the SVD path, the kernel on the kernel path.
    pub(super) fn full_gram(&self) -> Option<&Mat<f64>> {
        match self.path(self.x.rows) {
            Path::Svd => self.feature_gram.as_ref(),
            Path::Kernel => self.band_kernels.first(),
        }
    }

    pub(super) fn decompose_fold(&self, gamma: &[f64], fold: &Fold, par: Par) -> Result<FoldSpectrum, RidgeError> {
        let what = || format!("the eigensolver did not converge on a fold ({} rows)", fold.train.len());
        match self.path(fold.train.len()) {
            Path::Svd => {
                let scales = self.feature_scales(gamma);
                let validation = self.rows64(&fold.validation);
                let mut gram = self.train_gram(fold, &validation, par);
                scale_symmetric(&mut gram, &scales);
                let (lambdas, mut vectors) = eigh_descending(gram.as_ref(), fold.train.len(), par, what)?;
                drop(gram);
                scale_rows(&mut vectors, &scales);
                let train = self.rows64(&fold.train);
                let left = product_f32(train.as_ref(), vectors.as_ref(), par);
                let validation_design = product_f32(validation.as_ref(), vectors.as_ref(), par);
                Ok(FoldSpectrum { lambdas, left, validation_design })
            }
            Path::Kernel => {
                let kernel = self.kernel_block(gamma, &fold.train, &fold.train);
                let (lambdas, vectors) = eigh_descending(kernel.as_ref(), self.x.cols, par, what)?;
                drop(kernel);
                let cross = self.kernel_block(gamma, &fold.validation, &fold.train);
                let validation_design = product_f32(cross.as_ref(), vectors.as_ref(), par);
                Ok(FoldSpectrum { lambdas, left: to_f32(vectors.as_ref()), validation_design })
            }
        }
    }

    /// The refit's decomposition. The products with X (`X V` on the SVD
    /// path, `X^T U` on the kernel path) run in f32 on the f32 data.
    pub(super) fn decompose_full(&self, gamma: &[f64], par: Par) -> Result<FullSpectrum, RidgeError> {
        let started = std::time::Instant::now();
        let full = self.decompose_full_untimed(gamma, par);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: refit decomposition");
        full
    }

    fn decompose_full_untimed(&self, gamma: &[f64], par: Par) -> Result<FullSpectrum, RidgeError> {
        let what = || format!("the eigensolver did not converge on X ({} x {})", self.x.rows, self.x.cols);
        let scales = self.feature_scales(gamma);
        match self.path(self.x.rows) {
            Path::Svd => {
                let gram = self.feature_gram.as_ref().expect("feature Gram computed for the SVD path");
                // Unit band weights decompose the Gram matrix in place of a copy.
                let (lambdas, mut vectors) = if scales.iter().all(|&s| s == 1.0) {
                    eigh_descending(gram.as_ref(), self.x.rows, par, what)?
                } else {
                    let mut scaled = gram.clone();
                    scale_symmetric(&mut scaled, &scales);
                    eigh_descending(scaled.as_ref(), self.x.rows, par, what)?
                };
                scale_rows(&mut vectors, &scales);
                let right = to_f32(vectors.as_ref());
                let mut left = Mat::<f32>::zeros(self.x.rows, right.ncols());
                matmul(left.as_mut(), Accum::Replace, self.x.as_faer(), right.as_ref(), 1.0, par);
                Ok(FullSpectrum { lambdas, left, right })
            }
            Path::Kernel => {
                let (lambdas, vectors) = if let ([kernel], [1.0]) = (self.band_kernels.as_slice(), gamma) {
                    eigh_descending(kernel.as_ref(), self.x.cols, par, what)?
                } else {
                    let all: Vec<usize> = (0..self.x.rows).collect();
                    let kernel = self.kernel_block(gamma, &all, &all);
                    eigh_descending(kernel.as_ref(), self.x.cols, par, what)?
                };
                let left = to_f32(vectors.as_ref());
                // w = D b with b = (X D)^T U ..., so R = D^2 X^T U.
                let mut right = Mat::<f32>::zeros(self.x.cols, left.ncols());
                matmul(right.as_mut(), Accum::Replace, self.x.as_faer().transpose(), left.as_ref(), 1.0, par);
                if scales.iter().any(|&s| s != 1.0) {
                    for k in 0..right.ncols() {
                        for (f, scale) in scales.iter().enumerate() {
                            right[(f, k)] *= (scale * scale) as f32;
                        }
                    }
                }
                Ok(FullSpectrum { lambdas, left, right })
            }
        }
    }
}
