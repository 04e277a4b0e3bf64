"""The ``parla`` commands, one module per family, each with its parser beside its body: ``run`` (demo, animate,
face), ``stream``, ``bench``, ``train`` (prepare, train, distill), ``export``, ``evaluate`` (eval), ``verify``.
``parla.cli`` assembles the parser and turns errors into one line."""

from __future__ import annotations

import os

# The per-frame host work (a 95x95 spline solve, small matrix products) gains nothing from BLAS threads and, on a
# small CPU, their spinning competes with the runtime's own threads (seen: warp p95 45 ms instead of 4 ms on 2
# cores). Set before numpy is imported (the CLI imports it lazily); an explicit environment wins.
SINGLE_THREAD_BLAS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def quiet_blas() -> None:
    for k, v in SINGLE_THREAD_BLAS.items():
        os.environ.setdefault(k, v)
