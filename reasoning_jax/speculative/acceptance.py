"""The accept/reject step of token-level speculative sampling (pure; batched; static shapes).

"Fast Inference from Transformers via Speculative Decoding" (Leviathan, Kalman, Matias;
ICML 2023, arXiv:2211.17192) and "Accelerating Large Language Model Decoding with
Speculative Sampling" (Chen, Borgeaud, Irving, Lespiau, Sifre, Jumper; arXiv:2302.01318),
spec `inference.md` section 1.1. Per row, with draft tokens `d_1..d_k` sampled from the
draft's distributions `q_1..q_k` and the target's distributions `p_1..p_{k+1}` from one
verify pass:

  accept d_i   iff  u_i < min(1, p_i(d_i) / q_i(d_i)),  u_i ~ U[0, 1), left to right;
  at the first rejection n:  x ~ norm(max(0, p_n - q_n))  (the residual);
  when all k pass:           x ~ p_{k+1}                   (the bonus token).

The emitted tokens `d_1..d_n, x` are distributed exactly as the target's own samples
(spec 1.2). `p` and `q` are the *warped* distributions (temperature, top-k, top-p applied
identically to both, `reasoning_jax.generate.truncated_log_probs`), so the output is exact
for the warped target. Greedy decoding is the same rule on point masses: with `q_i` and
`p_i` one-hot at their argmaxes a draft is accepted iff it equals the target's argmax and the
residual is the one-hot of the target's argmax, whatever the random draws.

`k` may vary per call below the static buffer length K (`num_draft`, a traced scalar): drafts
at `i >= num_draft` are never accepted and the bonus comes from `p_{num_draft+1}`, so one
compiled verify step serves every `k <= K`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from reasoning_jax.generate.sampling import categorical_sample

# A residual whose mass is below this is treated as empty (then p == q up to rounding, and
# the rejection that led here had probability ~0): the token is drawn from p instead.
RESIDUAL_FLOOR = 1e-12


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Acceptance:
  """Result of `accept_drafts` for a batch.

  Attributes:
    num_accepted: `[B]` int32 in `[0, num_draft]`: leading drafts accepted.
    next_token: `[B]` int32: the residual sample after a rejection, else the bonus token.
    accept_prob: `[B, K]` float32 `min(1, p_i(d_i) / q_i(d_i))` per draft position (0 at
      positions `>= num_draft`); its mean over proposed drafts estimates the acceptance
      rate `alpha = E[sum_x min(p, q)]`.
  """

  num_accepted: jax.Array
  next_token: jax.Array
  accept_prob: jax.Array


def _check(draft_tokens, draft_log_probs, target_log_probs) -> tuple[int, int, int]:
  if draft_tokens.ndim != 2:
    raise ValueError(f"draft_tokens must be [B, K], got shape {tuple(draft_tokens.shape)}")
  b, k = draft_tokens.shape
  if draft_log_probs.ndim != 3 or tuple(draft_log_probs.shape[:2]) != (b, k):
    raise ValueError(
      f"draft_log_probs must be [B, K, V] = [{b}, {k}, V], got {tuple(draft_log_probs.shape)}"
    )
  v = draft_log_probs.shape[2]
  if tuple(target_log_probs.shape) != (b, k + 1, v):
    raise ValueError(
      f"target_log_probs must be [B, K + 1, V] = [{b}, {k + 1}, {v}] (one more position than "
      f"the drafts: the bonus token's), got {tuple(target_log_probs.shape)}"
    )
  return b, k, v


def accept_drafts(
  key: jax.Array,
  draft_tokens: jax.Array,
  draft_log_probs: jax.Array,
  target_log_probs: jax.Array,
  num_draft: jax.Array | int | None = None,
) -> Acceptance:
  """Speculative sampling's acceptance test, residual and bonus draw for a batch.

  Args:
    key: PRNG key (the uniforms and the residual/bonus draw use independent sub-keys).
    draft_tokens: `[B, K]` int drafts `d_1..d_K`, each sampled from `q_i`.
    draft_log_probs: `[B, K, V]` normalised log `q_i` (warped; `-inf` where truncated).
    target_log_probs: `[B, K + 1, V]` normalised log `p_i` (warped identically).
    num_draft: drafts proposed this step, a scalar in `[0, K]` (default K; may be traced).
      With 0 the step is plain sampling from `p_1`.

  Returns:
    An `Acceptance` (`num_accepted`, `next_token`, `accept_prob`).
  """
  b, k, v = _check(draft_tokens, draft_log_probs, target_log_probs)
  num_draft = jnp.asarray(k if num_draft is None else num_draft, jnp.int32)
  tokens = draft_tokens.astype(jnp.int32)
  log_q = draft_log_probs.astype(jnp.float32)
  log_p = target_log_probs.astype(jnp.float32)
  take = lambda lp: jnp.take_along_axis(lp, tokens[..., None], axis=-1)[..., 0]
  log_ratio = take(log_p[:, :k]) - take(log_q)  # [B, K]; NaN only at unproposed slots.
  proposed = jnp.arange(k) < num_draft
  key_u, key_x = jax.random.split(key)
  u = jax.random.uniform(key_u, (b, k), jnp.float32)
  # u < p/q in log space: log(0) = -inf accepts when p/q > 0, as u = 0 < p/q does.
  accepted = proposed & (jnp.log(u) < log_ratio)
  num_accepted = jnp.sum(jnp.cumprod(accepted.astype(jnp.int32), axis=-1), axis=-1)
  accept_prob = jnp.where(proposed, jnp.exp(jnp.minimum(log_ratio, 0.0)), 0.0)

  rows = jnp.arange(b)
  p_n = jnp.exp(log_p[rows, num_accepted])  # [B, V]: p_{n+1} in the 1-based notation.
  q_n = jnp.exp(log_q[rows, jnp.minimum(num_accepted, k - 1)]) if k else jnp.zeros_like(p_n)
  rejected = num_accepted < num_draft
  residual = jnp.maximum(p_n - q_n, 0.0)
  mass = jnp.sum(residual, axis=-1, keepdims=True)
  use_residual = rejected[:, None] & (mass > RESIDUAL_FLOOR)
  weights = jnp.where(use_residual, residual / jnp.where(use_residual, mass, 1.0), p_n)
  next_token = categorical_sample(key_x, jnp.log(weights))
  return Acceptance(num_accepted=num_accepted, next_token=next_token, accept_prob=accept_prob)


def expected_tokens_per_call(alpha: float, num_draft: int) -> float:
  """`(1 - alpha^(k+1)) / (1 - alpha)`: tokens per target call under i.i.d. acceptance.

  Spec 1.2's cost model (Leviathan et al., eq. 1); `k + 1` when alpha = 1.
  """
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha must be in [0, 1], got {alpha}")
  if alpha == 1.0:
    return float(num_draft + 1)
  return (1.0 - alpha ** (num_draft + 1)) / (1.0 - alpha)


def expected_speedup(alpha: float, num_draft: int, cost_ratio: float) -> float:
  """`(1 - alpha^(k+1)) / ((1 - alpha)(k c + 1))`: wall-clock gain, c = draft/target cost."""
  if cost_ratio < 0:
    raise ValueError(f"cost_ratio must be >= 0, got {cost_ratio}")
  return expected_tokens_per_call(alpha, num_draft) / (num_draft * cost_ratio + 1.0)
