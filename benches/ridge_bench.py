"""himalaya on generated float32 data, and the f32 matrix products of
voxflow's ridge_cv algorithm timed alone with numpy, at the sizes that
examples/ridge_bench.rs uses. benches/ridge_vs_himalaya.sh runs both. The
last line printed is JSON for scripts.

    python benches/ridge_bench.py --n 3000 --p 3072 --v 20000
    python benches/ridge_bench.py --himalaya kernel-torch --skip-gemm

--himalaya picks the configuration: `ridge-numpy` (RidgeCV on the numpy
backend, the default and what earlier runs used) or `kernel-torch`
(KernelRidgeCV with a linear kernel on the torch CPU backend: himalaya's
fastest configuration at the bench's size on this machine, 28.3 s against
66.3 s for ridge-numpy when the design card measured them in one run).
"""

import argparse
import json
import time
import warnings

import numpy as np


def generate(n, p, v, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p), dtype=np.float32)
    k = min(p, 32)
    y = rng.standard_normal((n, v), dtype=np.float32)
    y += 0.2 * (x[:, :k] @ rng.standard_normal((k, v), dtype=np.float32))
    return x, y


def time_himalaya(x, y, n_alphas, n_folds, config):
    from himalaya.backend import set_backend
    from sklearn.model_selection import KFold

    alphas = np.logspace(-2, 7, n_alphas)
    if config == "kernel-torch":
        from himalaya.kernel_ridge import KernelRidgeCV

        backend = set_backend("torch", on_error="raise")
        x, y = backend.asarray(x), backend.asarray(y)
        model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=KFold(n_folds),
                              fit_intercept=False, warn=False)
    else:
        from himalaya.ridge import RidgeCV

        set_backend("numpy", on_error="raise")
        model = RidgeCV(alphas=alphas, cv=KFold(n_folds), fit_intercept=False,
                        solver_params=dict(warn=False))
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return time.perf_counter() - start, time.process_time() - cpu_start


def time_products(n, p, v, n_alphas, n_folds, seed):
    """The f32 products of voxflow's algorithm (see examples/ridge_bench.rs)."""
    rng = np.random.default_rng(seed + 1)
    y = rng.random((n, v), dtype=np.float32)
    seconds, cpu, flops = 0.0, 0.0, 0.0
    for fold in range(n_folds):
        n_val = n // n_folds + (1 if fold < n % n_folds else 0)
        n_train = n - n_val
        rank = min(n_train, p)
        stacked = rng.random((n_alphas * n_val, rank), dtype=np.float32)
        left = rng.random((n_train, rank), dtype=np.float32) if n_train >= p else None
        y_train = y[:n_train]
        start, cpu_start = time.perf_counter(), time.process_time()
        if left is not None:
            stacked @ (left.T @ y_train)
            flops += 2.0 * rank * n_train * v
        else:
            stacked @ y_train
        seconds += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        flops += 2.0 * n_alphas * n_val * rank * v
    operator = rng.random((p, n), dtype=np.float32)
    start, cpu_start = time.perf_counter(), time.process_time()
    operator @ y
    seconds += time.perf_counter() - start
    cpu += time.process_time() - cpu_start
    flops += 2.0 * p * n * v
    return seconds, cpu, flops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--p", type=int, default=3072)
    parser.add_argument("--v", type=int, default=20000)
    parser.add_argument("--alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--himalaya", choices=["ridge-numpy", "kernel-torch"],
                        default="ridge-numpy")
    parser.add_argument("--skip-himalaya", action="store_true")
    parser.add_argument("--skip-gemm", action="store_true")
    args = parser.parse_args()

    result = {"himalaya_seconds": None, "himalaya_cpu_seconds": None, "gemm_seconds": None,
              "gemm_cpu_seconds": None, "gemm_gflop": None}
    if not args.skip_himalaya:
        x, y = generate(args.n, args.p, args.v, args.seed)
        seconds, cpu = time_himalaya(x, y, args.alphas, args.folds, args.himalaya)
        result.update(himalaya_seconds=seconds, himalaya_cpu_seconds=cpu,
                      himalaya_config=args.himalaya, input_bytes=x.nbytes + y.nbytes)
        del x, y
        print(f"himalaya {args.himalaya} n={args.n} p={args.p} v={args.v} alphas={args.alphas} "
              f"folds={args.folds}: {seconds:.2f} s, {cpu:.1f} s CPU")
    if not args.skip_gemm:
        seconds, cpu, flops = time_products(args.n, args.p, args.v, args.alphas, args.folds,
                                            args.seed)
        result.update(gemm_seconds=seconds, gemm_cpu_seconds=cpu, gemm_gflop=flops / 1e9)
        print(f"numpy products alone: {seconds:.2f} s ({flops / 1e9:.0f} GFLOP, "
              f"{flops / seconds / 1e9:.0f} GFLOP/s), {cpu:.1f} s CPU")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
