"""Incremental sine regression (OML / FLP protocol) as an Avalanche benchmark.

A problem is ``num_functions`` sine functions ``y = A sin(z + phi)`` (A in [0.1, 5], phi in [0, pi],
z in [-5, 5]) drawn from an evaluation pool disjoint from the meta-training pool. Experience ``i`` is
function ``i`` seen as a block of ``batches_per_function`` minibatches; the input is
``[onehot(i), z]``. The test stream has fresh points of each function.
"""

from __future__ import annotations

import torch
from avalanche.benchmarks.scenarios import benchmark_from_datasets
from avalanche.benchmarks.utils import AvalancheDataset

from avalanche_plasticity.tasks import sample_sine_functions, sine_samples

META_TRAIN_POOL_SEED = 0  # SineTaskSource's default pool
EVAL_POOL_SEED = 1


def IncrementalSine(
    *,
    num_functions: int = 10,
    batches_per_function: int = 40,
    batch_size: int = 8,
    test_points_per_function: int = 320,
    pool_size: int = 1000,
    seed: int = 0,
    pool_seed: int = EVAL_POOL_SEED,
):
    """Build the benchmark. Use ``train_mb_size=batch_size`` so each experience is
    ``batches_per_function`` online minibatches.

    :param seed: picks the functions from the pool and the sample points (one seed = one problem).
    :param pool_seed: the function pool (the default is disjoint from meta-training's pool 0).
    :returns: an Avalanche benchmark with ``train_stream`` and ``test_stream`` of ``num_functions``
        experiences, targets of shape (1,).
    """
    for name, v in (
        ("num_functions", num_functions),
        ("batches_per_function", batches_per_function),
        ("batch_size", batch_size),
        ("test_points_per_function", test_points_per_function),
    ):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not num_functions <= pool_size:
        raise ValueError(f"num_functions ({num_functions}) must be <= pool_size ({pool_size})")
    amp_pool, ph_pool = sample_sine_functions(pool_size, torch.Generator().manual_seed(pool_seed))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(pool_size, generator=g)[:num_functions]
    amp, ph, slot = amp_pool[idx], ph_pool[idx], torch.arange(num_functions)
    n_train = batches_per_function * batch_size
    tx, ty = sine_samples(amp, ph, slot, num_functions, (num_functions, n_train), g)
    vx, vy = sine_samples(amp, ph, slot, num_functions, (num_functions, test_points_per_function), g)
    train = [AvalancheDataset([torch.utils.data.TensorDataset(tx[i], ty[i])]) for i in range(num_functions)]
    test = [AvalancheDataset([torch.utils.data.TensorDataset(vx[i], vy[i])]) for i in range(num_functions)]
    bm = benchmark_from_datasets(train=train, test=test)
    bm.functions = {"amplitude": amp, "phase": ph}  # type: ignore[attr-defined]
    bm.input_size = num_functions + 1  # type: ignore[attr-defined]
    return bm
