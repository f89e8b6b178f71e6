"""OVQ attention, the write: growth schedules, seeding rules, update rules and `absorb`.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
spec section 3.2 of /shared/methods/memory_attention.md, steps 1-4 of the write, done after a
full chunk of L keys has been read:

  1. growth: open `m = clip(N_target(tau) - N_active, 0, L)` slots, `tau` the tokens absorbed
     once this chunk is (`OVQ_SCHEDULES`; the target depends on tau only, not on the data);
  2. seeding: pick m chunk keys one at a time (`OVQ_SEEDINGS` scores each key from its distance
     to the nearest centre so far; the argmax is picked) and seed the lowest free slots with
     them, in pick order, with count 0;
  3. assignment: every chunk key goes to its nearest active or seeded slot (ties to the lowest
     index), a constant for autodiff;
  4. update: each touched slot moves towards the mean of its assigned keys and values
     (`OVQ_UPDATES`: the exact running mean, learning rate 1/count, by default); untouched
     slots are bit-identical; counts add the assigned tokens.

The paper's ablations (spread init > random assignment, plateauing > linear growth, adaptive
lr > constant lr; SECONDARY, spec 3.1) name the alternatives registered here. The naive form
(`reasoning_jax.ops.ovq.naive`) writes the same steps per sequence with explicit distances and
scatter-adds; it shares the schedules, the scores, the noise and the update formulas.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from reasoning_jax import registry
from reasoning_jax.ops.ovq import common


# ------------------------------------------------------------------------ growth schedules

# fn(tokens_absorbed int32 [...], num_slots int, **params) -> target active slots, int32 [...].
# `params` are the schedule's own flags (see `OVQOptions.schedule_params`).
OVQ_SCHEDULES: registry.Registry[Callable[..., jax.Array]] = registry.Registry(
  "ovq growth schedule"
)


@OVQ_SCHEDULES.register("saturating")
def saturating_schedule(tau: jax.Array, num_slots: int) -> jax.Array:
  """`min(N, ceil(N tau / (tau + N)))`, the saturating curve (KVM paper's OVQ baseline).

  Evaluated exactly in int32 as `N - floor(N^2 / (tau + N))` (needs N <= `common.MAX_SLOTS`).
  """
  n = num_slots
  return n - (n * n) // (jnp.asarray(tau).astype(jnp.int32) + n)


@OVQ_SCHEDULES.register("every_token")
def every_token_schedule(tau: jax.Array, num_slots: int) -> jax.Array:
  """`min(N, tau)`: every absorbed token may open a slot until the dictionary is full."""
  return jnp.minimum(jnp.asarray(tau).astype(jnp.int32), num_slots)


@OVQ_SCHEDULES.register("linear")
def linear_schedule(tau: jax.Array, num_slots: int, *, tokens: int) -> jax.Array:
  """`min(N, ceil(N tau / tokens))`: linear growth, the dictionary full after `tokens` tokens.

  The ablation's "linear growth" (paper: plateauing > linear). Exact in int32 as
  `ceil(N min(tau, tokens) / tokens)` (needs `N * tokens < 2^31`).
  """
  tau = jnp.minimum(jnp.asarray(tau).astype(jnp.int32), tokens)
  return (num_slots * tau + tokens - 1) // tokens


@OVQ_SCHEDULES.register("dirichlet")
def dirichlet_schedule(tau: jax.Array, num_slots: int, *, alpha: float) -> jax.Array:
  """`min(N, ceil(alpha log(1 + tau / alpha)))`: the expected number of tables of a Chinese
  restaurant process with concentration alpha after tau customers (its large-tau form).

  OUR READING of the paper's "Dirichlet-process-inspired" plateauing schedule (its Eq. 17 was
  not public): slots open like new CRP tables, fast at first, then logarithmically. float32.
  """
  tau = jnp.asarray(tau).astype(jnp.float32)
  target = jnp.ceil(alpha * jnp.log1p(tau / alpha)).astype(jnp.int32)
  return jnp.minimum(target, num_slots)


def growth(counts, tokens_seen, chunk_size: int, options) -> jax.Array:
  """Slots to open in this write, `m = clip(target(tau) - N_active, 0, L)` `[...]` int32.

  Args:
    counts: `[..., N]` (the slots of one or more sequences and heads).
    tokens_seen: tokens absorbed before this chunk, broadcastable to `counts.shape[:-1]`.
    chunk_size: L; `tau = tokens_seen + L` counts the tokens absorbed once this chunk is.
    options: the flags (`reasoning_jax.ops.ovq.options.OVQOptions`; untyped here because
      options.py validates its names against this module's registries).
  """
  n = counts.shape[-1]
  fn = OVQ_SCHEDULES.get(options.schedule)
  target = fn(tokens_seen + chunk_size, n, **options.schedule_params())
  active = jnp.sum(counts > 0, axis=-1, dtype=jnp.int32)
  return jnp.clip(target - active, 0, chunk_size)


# --------------------------------------------------------------------------- seeding rules

# fn(min_d [..., L], picked [..., L] bool, noise [..., L]) -> score [..., L]; the next seed is
# the first argmax of the score. min_d: squared distance of each chunk key to its nearest centre
# so far (existing slots and earlier picks; +inf when there is none); noise: standard Gumbel
# draws for this pick (`seeding_noise`), unused by the deterministic rule.
OVQ_SEEDINGS: registry.Registry[Callable[..., jax.Array]] = registry.Registry("ovq seeding rule")

# Squared distances below this count as 0 for k-means++ (the fp32 rounding of the matmul
# expansion `||k||^2 - 2 k.c + ||c||^2` of unit vectors; the naive form's differences give 0).
KMEANS_PP_ZERO = 1e-5


@OVQ_SEEDINGS.register("farthest")
def farthest_score(min_d, picked, noise):
  """Farthest-first traversal (the default, deterministic): the key farthest from every centre.
  With no centre at all every distance is inf and the first key is picked."""
  del picked, noise
  return min_d


@OVQ_SEEDINGS.register("kmeans++")
def kmeans_pp_score(min_d, picked, noise):
  """k-means++ D^2 sampling by the Gumbel-max trick: key j with probability `min_d_j / sum`;
  uniform when no centre exists yet. Keys at distance 0 (earlier picks, duplicates of a centre)
  are never picked unless every key is at distance 0."""
  del picked
  d = jnp.where(min_d > KMEANS_PP_ZERO, min_d, 0.0)
  log_w = jnp.where(jnp.isinf(d), 0.0, jnp.log(d))
  return log_w + noise


@OVQ_SEEDINGS.register("random")
def random_score(min_d, picked, noise):
  """Random initialisation (the ablation's "random assignment"): m distinct chunk keys drawn
  uniformly without replacement, whatever their distances."""
  del min_d
  return jnp.where(picked, -jnp.inf, noise)


def seeding_noise(keys, tokens_seen, head, seed: int) -> jax.Array:
  """Gumbel noise of one sequence and head for the stochastic seeding rules, `[L picks, L keys]`.

  Deterministic, so that every form makes the same picks: `jax.random` from `key(seed)`
  folded with the head, the tokens absorbed before this chunk and a hash of the chunk's keys
  (the int32 sum of `round(1024 k)`: exact and independent of summation order), so the draws
  change from chunk to chunk and from batch to batch without threading an RNG key. The batch
  row is left out so that a packed segment draws what it draws run alone.

  Args:
    keys: the chunk's unit keys `[L, D]` (no gradient needed).
    tokens_seen, head: int32 scalars.
    seed: a Python int (the `seed` flag).
  """
  l = keys.shape[0]
  content = jnp.sum(jnp.round(keys * 1024.0).astype(jnp.int32))
  rng = jax.random.key(seed)
  for x in (head, tokens_seen, content):
    rng = jax.random.fold_in(rng, x)
  return jax.random.gumbel(rng, (l, l), jnp.float32)


def batched_seeding_noise(keys, tokens_seen, seed: int) -> jax.Array:
  """`seeding_noise` for `keys [B, H, L, D]`, `tokens_seen [B]` -> `[B, H, L, L]`."""
  h = keys.shape[1]
  per_head = jax.vmap(seeding_noise, in_axes=(0, None, 0, None))
  per_row = jax.vmap(per_head, in_axes=(0, 0, None, None))
  return per_row(keys, tokens_seen, jnp.arange(h), seed)


# ---------------------------------------------------------------------------- update rules

# fn(counts [..., N], base [..., N, X], sums [..., N, X], hits [..., N], *, lr) -> new centres
# [..., N, X] for the touched slots (hits > 0; other rows are discarded). base: the current
# centre (a seeded slot's seed); sums: the sum of the assigned keys (or values); hits: how many.
OVQ_UPDATES: registry.Registry[Callable[..., jax.Array]] = registry.Registry("ovq update rule")


@OVQ_UPDATES.register("adaptive")
def adaptive_update(counts, base, sums, hits, *, lr):
  """The exact running mean `(n D + sum) / (n + m)` (learning rate 1/count, the Newton step of
  the paper's GMR view). A new slot (n = 0) becomes the mean of its assigned tokens."""
  del lr
  n = counts[..., None]
  return (n * base + sums) / jnp.where(hits > 0, counts + hits, 1.0)[..., None]


@OVQ_UPDATES.register("constant")
def constant_update(counts, base, sums, hits, *, lr):
  """`D + lr (mean of assigned - D)`, a constant learning rate (the ablation's "constant lr").
  A new slot starts at its seed (the chunk key and value that seeded it)."""
  del counts
  mean = sums / jnp.where(hits > 0, hits, 1.0)[..., None]
  return base + lr * (mean - base)


# ---------------------------------------------------------------------------------- absorb


def absorb(
  dict_k,
  dict_v,
  counts,
  keys,
  values,
  tokens_seen,
  do_absorb,
  *,
  options,
  precision,
  assign=None,
):
  """Absorbs one full chunk into the dictionary (dense, vectorised; the chunk/decode write).

  Seeding of `m` free slots (lowest free slots in pick order, `options.seeding`), hard
  nearest-candidate assignment (ties -> lowest index), the update rule (`options.update`)
  from dense one-hot sums. Rows with `do_absorb` False are returned unchanged.

  Args:
    dict_k, dict_v, counts: `[B, H, N, D]`, `[B, H, N, Dv]`, `[B, H, N]` fp32.
    keys, values: the chunk, unit keys `[B, H, L, D]`, values `[B, H, L, Dv]` fp32.
    tokens_seen: `[B]` int32 tokens absorbed before this chunk.
    do_absorb: `[B]` bool.
    options: the flags (`reasoning_jax.ops.ovq.options.OVQOptions`).
    assign: `common.nearest_candidate`'s signature without `precision` (e.g. the Pallas
      kernel); None uses `common.nearest_candidate`.

  Returns:
    `(dict_k, dict_v, counts)`.
  """
  n_slots = counts.shape[-1]
  l = keys.shape[-2]
  m = growth(counts, tokens_seen[:, None], l, options)  # [B, H]
  active = counts > 0
  sk = jax.lax.stop_gradient(keys)
  score = OVQ_SEEDINGS.get(options.seeding)
  stochastic = options.seeding != "farthest"
  noise = batched_seeding_noise(sk, tokens_seen, options.seed) if stochastic else None

  # Greedy picks: distance of every chunk key to its nearest centre so far.
  d_exist = jnp.where(
    active[..., None, :],
    common.sq_dist(sk, jax.lax.stop_gradient(dict_k), precision),
    jnp.inf,
  )
  picks = jnp.arange(l)

  def pick(r, carry):
    min_d, picked, chosen = carry
    noise_r = None if noise is None else noise[..., r, :]
    j = jnp.argmax(score(min_d, picked, noise_r), axis=-1)  # [B, H]; first max
    on = r < m  # [B, H]
    seed = jnp.take_along_axis(sk, j[..., None, None], axis=-2)  # [B, H, 1, D]
    chosen = jnp.where((picks == r) & on[..., None], j[..., None], chosen)
    picked = picked | ((picks == j[..., None]) & on[..., None])
    d_new = jnp.sum((sk - seed) ** 2, axis=-1)
    return jnp.where(on[..., None], jnp.minimum(min_d, d_new), min_d), picked, chosen

  init = (
    jnp.min(d_exist, axis=-1),
    jnp.zeros(sk.shape[:-1], bool),
    jnp.zeros(m.shape + (l,), jnp.int32),
  )
  _, _, chosen = jax.lax.fori_loop(0, l, pick, init)  # chosen [B, H, L]: key of pick r
  # Pick r goes to the r-th lowest free slot.
  free = jnp.logical_not(active)
  rank = jnp.cumsum(free, axis=-1) - 1  # [B, H, N]
  place = (
    free[..., None, :]
    & (rank[..., None, :] == picks[:, None])
    & (picks[:, None] < m[..., None, None])
  ).astype(jnp.float32)  # [B, H, L picks, N]
  seeded = jnp.any(place > 0, axis=-2)
  hp = jax.lax.Precision.HIGHEST

  def seed_slots(x):  # the picked rows of x placed in their slots: [B, H, N, X]
    rows = jnp.take_along_axis(x, chosen[..., None], axis=-2)  # [B, H, L picks, X]
    return jnp.einsum("bhln,bhlx->bhnx", place, rows, precision=hp)

  centres = jnp.where(seeded[..., None], seed_slots(sk), jax.lax.stop_gradient(dict_k))
  candidate = active | seeded
  if assign is None:
    nearest = common.nearest_candidate(sk, centres, candidate, precision)
  else:
    nearest = assign(sk, centres, candidate)
  onehot = jax.nn.one_hot(nearest, n_slots, dtype=jnp.float32)  # [B, H, L, N]
  hits = jnp.sum(onehot, axis=-2)  # [B, H, N]
  touched = (hits > 0) & do_absorb[:, None, None]
  update = OVQ_UPDATES.get(options.update)

  def new_centres(old, x):
    # Where a slot starts from: its seed for a new slot. The running mean weighs the start by
    # n = 0 there, so the seed rows are gathered only for the rules that use them.
    if options.update == "adaptive":
      base = old
    else:
      base = jnp.where(seeded[..., None], seed_slots(x), old)
    sums = jnp.einsum("bhln,bhlx->bhnx", onehot, x, precision=precision)
    return update(counts, base, sums, hits, lr=options.update_lr)

  new_k = new_centres(dict_k, keys)
  if options.renormalize:
    new_k = common.l2_normalize(new_k)
  new_v = new_centres(dict_v, values)
  return (
    jnp.where(touched[..., None], new_k, dict_k),
    jnp.where(touched[..., None], new_v, dict_v),
    jnp.where(do_absorb[:, None, None], counts + hits, counts),
  )
