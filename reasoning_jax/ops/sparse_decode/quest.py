"""Quest page selection: per-page key bounds and the upper bound of the query-key score.

"Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al., ICML 2024,
arXiv:2406.10774); `shared/methods/inference.md` section 7.1. The cache is split into pages of
`page_size` slots; each page keeps the elementwise minimum `m_j` and maximum `M_j` of its keys
(`[D]` per KV head). For a query q,

  u_j = sum_d max(q_d m_{j,d}, q_d M_{j,d})  >=  max_{k in page j} q . k,

so the top pages by `u_j` contain the keys that can score highest. The bounds are kept
incrementally: `page_bounds` builds them from a prefilled cache (ignoring slots at or beyond a
row's length: the empty bound is `(+inf, -inf)`), `update_page_bounds` folds one new key in.

DESIGN CHOICE (GQA): Quest scores pages per query head; a KV head serves G query heads and
the pages it reads must serve all of them, so a page's score is the maximum of the G query
heads' bounds (still an upper bound for every one of them).
"""

from __future__ import annotations

import jax.numpy as jnp


def page_bounds(k, lengths, *, page_size: int):
  """`(kmin, kmax)`, each `[B, S / page_size, K, D]` float32, of the visible keys of each page."""
  b, s, kh, d = k.shape
  if s % page_size:
    raise ValueError(f"page_size={page_size} must divide the cache length S={s}")
  visible = (jnp.arange(s)[None, :] < lengths[:, None])[:, :, None, None]
  kf = k.astype(jnp.float32)
  lo = jnp.where(visible, kf, jnp.inf).reshape(b, s // page_size, page_size, kh, d)
  hi = jnp.where(visible, kf, -jnp.inf).reshape(b, s // page_size, page_size, kh, d)
  return jnp.min(lo, axis=2), jnp.max(hi, axis=2)


def update_page_bounds(kmin, kmax, k_new, positions, *, page_size: int):
  """Folds the new keys `k_new [B, K, D]` at `positions [B]` into their pages' bounds."""
  page = positions // page_size
  rows = jnp.arange(kmin.shape[0])
  kf = k_new.astype(jnp.float32)
  kmin = kmin.at[rows, page].set(jnp.minimum(kmin[rows, page], kf))
  kmax = kmax.at[rows, page].set(jnp.maximum(kmax[rows, page], kf))
  return kmin, kmax


def page_upper_bounds(q, kmin, kmax):
  """`u [B, K, G, n_pages]` float32: the Quest bound of every query row on every page.

  Args:
    q: `[B, K, G, D]` queries grouped by KV head.
    kmin, kmax: `[B, n_pages, K, D]` page bounds (empty pages hold `(+inf, -inf)`).
  """
  qf = q.astype(jnp.float32)[:, :, :, None, :]  # [B, K, G, 1, D]
  lo = jnp.moveaxis(kmin, 1, 2)[:, :, None]  # [B, K, 1, P, D]
  hi = jnp.moveaxis(kmax, 1, 2)[:, :, None]
  # max(q m, q M) per dimension; an empty page (m = +inf, M = -inf) gives -inf or nan: mask it.
  both = jnp.maximum(qf * lo, qf * hi)
  empty = jnp.isposinf(lo[..., :1])  # [B, K, 1, P, 1]
  bound = jnp.sum(jnp.where(empty, 0.0, both), axis=-1)
  return jnp.where(empty[..., 0], -jnp.inf, bound)


def quest_page_scores(q, kmin, kmax):
  """`[B, K, n_pages]`: each KV head's page score, the max over its G query heads' bounds."""
  return jnp.max(page_upper_bounds(q, kmin, kmax), axis=2)
