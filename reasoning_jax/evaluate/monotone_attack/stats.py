"""Bootstrap confidence intervals and seed summaries for the attack results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
  values: Sequence[float] | np.ndarray,
  *,
  num_resamples: int = 1000,
  confidence: float = 0.95,
  seed: int = 0,
) -> tuple[float, float]:
  """Percentile bootstrap interval of the mean of `values` `[N]` (examples resampled).

  The paper reports 1000-resample bootstrap CIs (spec §5.2); the same `seed` gives the same
  interval. For a success indicator (0/1 values) it is the interval of the success rate.
  """
  values = np.asarray(values, np.float64)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f"values must be a non-empty 1-D array, got shape {values.shape}")
  if int(num_resamples) != num_resamples or num_resamples < 1:
    raise ValueError(f"num_resamples must be an integer >= 1, got {num_resamples!r}")
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
  rng = np.random.default_rng(seed)
  means = values[rng.integers(0, values.size, size=(int(num_resamples), values.size))].mean(1)
  alpha = (1 - confidence) / 2
  low, high = np.quantile(means, [alpha, 1 - alpha])
  return float(low), float(high)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and (population) standard deviation over seeds."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std())
