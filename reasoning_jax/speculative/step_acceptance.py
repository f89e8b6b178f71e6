"""SemanticSpec's step-level acceptance test (pure; batched over rows).

"Beyond Tokens: Semantic-Aware Speculative Decoding for Efficient Inference by Probing Internal
States" (Dong et al., arXiv:2602.03708), spec `inference.md` section 2.3. A draft step `d` with
probe outputs `p_T = probe_T(pool(H_T))` (the target's states over the teacher-forced step) and
`p_D = probe_D(pool(H_D))` is accepted

  * at once by the FAST PATH when every step token is among the target's top-`fast_path_topk`
    raw logits at the position that predicted it (`fast_path_topk` 0 disables it; DESIGN
    CHOICE default 2, the released script);
  * else with probability `min(1, p_T / p_D)`: `u * p_D < p_T` with `u ~ U[0, 1)` drawn from
    the acceptance stream (never the sampling stream); `p_D = 0` rejects;
  * never when `p_T / p_D < tau_min` (DESIGN CHOICE `tau_min`, default 0 = the final code;
    0.5 = the earlier HF variant).

On rejection the target writes the step from its full distribution (not a residual), so the
method is not lossless. For one-token steps with exact probabilities as probes the output is
`step_output_distribution(P_T, P_D) = P_D min(1, P_T / P_D) + (1 - beta) P_T`,
`beta = sum_x min(P_T, P_D)` (spec 2.7 c).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

FAST_PATH_TOPK = (0, 2)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class StepAcceptance:
  """Result of `accept_steps` for a batch of `[B]` steps.

  Attributes:
    accepted: `[B]` bool, the step is kept.
    fast: `[B]` bool, accepted by the fast path (no probe needed).
    ratio: `[B]` float32 `p_T / p_D` (inf where `p_D = 0 < p_T`, 0 where both are 0).
  """

  accepted: jax.Array
  fast: jax.Array
  ratio: jax.Array


def check_fast_path_topk(fast_path_topk: int) -> int:
  if isinstance(fast_path_topk, bool) or fast_path_topk not in FAST_PATH_TOPK:
    raise ValueError(
      f"fast_path_topk must be one of {FAST_PATH_TOPK} (0 disables the top-2 fast path), "
      f"got {fast_path_topk!r}"
    )
  return int(fast_path_topk)


def check_tau_min(tau_min: float) -> float:
  tau_min = float(tau_min)
  if not (np.isfinite(tau_min) and 0.0 <= tau_min <= 1.0):
    raise ValueError(
      f"tau_min must be in [0, 1] (0 = no floor, 0.5 = the HF variant), got {tau_min}"
    )
  return tau_min


def fast_path_ok(
  logits: jax.Array, step_tokens: jax.Array, step_lengths: jax.Array, topk: int
) -> jax.Array:
  """`[B]` bool: every real step token is in the top-`topk` of the logits predicting it.

  Args:
    logits: `[B, T, V]` target logits at the predicting positions (index i predicts token i).
    step_tokens: `[B, T]` int step tokens (entries at `>= step_lengths` are ignored).
    step_lengths: `[B]` int real tokens per row.
    topk: 0 (always False) or k.
  """
  b, t = step_tokens.shape
  if topk == 0:
    return jnp.zeros((b,), bool)
  _, top = jax.lax.top_k(logits, topk)  # [B, T, k]
  hit = jnp.any(top == step_tokens[..., None], axis=-1)
  real = jnp.arange(t)[None, :] < step_lengths[:, None]
  return jnp.all(hit | ~real, axis=-1)


def accept_steps(
  key: jax.Array,
  p_target: jax.Array,
  p_draft: jax.Array,
  fast: jax.Array | None = None,
  tau_min: float = 0.0,
) -> StepAcceptance:
  """The step test for `[B]` steps: fast path, then `u < min(1, p_T / p_D)` with a floor.

  Args:
    key: the ACCEPTANCE stream's key (independent of the sampling stream).
    p_target: `[B]` target-probe outputs in [0, 1].
    p_draft: `[B]` draft-probe outputs in [0, 1].
    fast: `[B]` bool fast-path verdicts (`fast_path_ok`), or None (no fast path).
    tau_min: reject whenever `p_T / p_D < tau_min`.
  """
  p_t = jnp.asarray(p_target, jnp.float32)
  p_d = jnp.asarray(p_draft, jnp.float32)
  u = jax.random.uniform(key, p_t.shape, jnp.float32)
  ratio = jnp.where(p_d > 0, p_t / jnp.where(p_d > 0, p_d, 1.0), jnp.where(p_t > 0, jnp.inf, 0.0))
  # u < p_T / p_D without dividing; p_D = 0 never passes (0 < p_T would be a 0/0 ratio test).
  probe_pass = (p_d > 0) & (u * p_d < p_t) & (ratio >= tau_min)
  fast = jnp.zeros(p_t.shape, bool) if fast is None else jnp.asarray(fast, bool)
  return StepAcceptance(accepted=fast | probe_pass, fast=fast, ratio=ratio)


def step_output_distribution(p_target: np.ndarray, p_draft: np.ndarray) -> np.ndarray:
  """One-token steps, exact probabilities as probes, target regeneration on reject:
  `P_D min(1, P_T / P_D) + (1 - beta) P_T` (spec 2.7 c; NOT `P_T`)."""
  p_t = np.asarray(p_target, np.float64)
  p_d = np.asarray(p_draft, np.float64)
  kept = np.minimum(p_t, p_d)
  return kept + (1.0 - kept.sum()) * p_t


def expected_semantic_speedup(acceptance: float, overhead: float) -> float:
  """Spec 2.4's `1 / (eps + 1 - a)`: `a` the step acceptance rate, `eps` the draft cost plus
  the target's prefill per step token, as a fraction of the target's decode cost."""
  if not 0.0 <= acceptance <= 1.0:
    raise ValueError(f"acceptance must be in [0, 1], got {acceptance}")
  if overhead < 0:
    raise ValueError(f"overhead must be >= 0, got {overhead}")
  return 1.0 / (overhead + 1.0 - acceptance)
