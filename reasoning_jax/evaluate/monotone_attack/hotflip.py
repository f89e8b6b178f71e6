"""HotFlip, one shot, as in the monotone-FFN paper: pure functions of a loss and an embedding table.

"HotFlip: White-Box Adversarial Examples for Text Classification" (Ebrahimi, Rao, Lowd, Dou;
arXiv:1712.06751), in the form of "Monotonicity as an Architectural Bias for Robust Language
Models" (Cooper et al., arXiv:2602.02686) §5.2 / spec `memory_attention.md` §5.2:

  1. g = d loss / d e, the gradient of the example's loss w.r.t. its input embeddings `[T, H]`;
  2. the `num_flips` attackable positions with the largest ||g_t|| are chosen;
  3. each is replaced, all at once, by the allowed token c != current maximising g_t . e_c.

The paper's wording is "gradient . candidate embedding", g_t . e_c. The first-order loss
change of the swap is g_t . (e_c - e_current); at a fixed position g_t . e_current is one
constant, so both rank candidates identically (`first_order_gains` is the difference form,
used by the tests as an independent check). The current token itself is never a candidate,
so every chosen position changes.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def candidate_scores(grads: jax.Array, table: jax.Array) -> jax.Array:
  """g . e_c for every candidate: grads `[..., H]`, table `[V, H]` -> `[..., V]`."""
  return jnp.einsum("...h,vh->...v", grads, table.astype(grads.dtype))


def first_order_gains(grads: jax.Array, table: jax.Array, current: jax.Array) -> jax.Array:
  """g . (e_c - e_current), the linearised loss increase of each swap: `[..., V]`."""
  scores = candidate_scores(grads, table)
  return scores - jnp.take_along_axis(scores, current[..., None], axis=-1)


def hotflip(
  loss_fn: Callable[[jax.Array], jax.Array],
  table: jax.Array,
  inputs: jax.Array,
  position_mask: jax.Array,
  candidate_mask: jax.Array,
  *,
  num_flips: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One HotFlip step on a batch: `num_flips` simultaneous first-order substitutions.

  Args:
    loss_fn: input embeddings `[B, T, H]` -> per-example losses `[B]`; examples must be
      independent (the gradient of the sum is then each example's own gradient).
    table: the embedding table `[V, H]`.
    inputs: token ids `[B, T]`.
    position_mask: `[B, T]` bool, the positions that may be flipped.
    candidate_mask: `[V]` bool, the tokens that may be written.
    num_flips: flips per example (fewer where fewer positions are attackable).

  Returns:
    (adversarial ids `[B, T]`, chosen positions `[B, num_flips]`, whether each chosen position
    was flipped `[B, num_flips]`).
  """
  if num_flips < 1:
    raise ValueError(f"num_flips must be >= 1, got {num_flips}")
  if num_flips > inputs.shape[1]:
    raise ValueError(f"num_flips={num_flips} exceeds the sequence length {inputs.shape[1]}")
  embeds = jnp.take(table, inputs, axis=0)
  grads = jax.grad(lambda e: loss_fn(e).sum())(embeds)
  norms = jnp.where(position_mask, jnp.linalg.norm(grads, axis=-1), -jnp.inf)
  _, where = jax.lax.top_k(norms, num_flips)  # [B, k]
  g = jnp.take_along_axis(grads, where[..., None], axis=1)  # [B, k, H]
  current = jnp.take_along_axis(inputs, where, axis=1)
  vocab = jnp.arange(table.shape[0])
  allowed = candidate_mask[None, None, :] & (vocab != current[..., None])
  best = jnp.argmax(jnp.where(allowed, candidate_scores(g, table), -jnp.inf), axis=-1)
  valid = jnp.take_along_axis(position_mask, where, axis=1) & allowed.any(-1)
  rows = jnp.arange(inputs.shape[0])[:, None]
  adv = inputs.at[rows, where].set(jnp.where(valid, best.astype(inputs.dtype), current))
  return adv, where, valid
