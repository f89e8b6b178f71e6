"""OVQ attention: the state, validation, the readout and the stream layout the forms share.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
as reconstructed in /shared/methods/memory_attention.md section 3.2. Per batch row
and head the state holds a key dictionary `dk [N, D]`, a value dictionary
`dv [N, Dv]` and per-slot counts `n [N]` (0 = inactive), plus the current,
not-yet-absorbed chunk (`buf_k [L, D]`, `buf_v [L, Dv]`, `buf_len` tokens).

Readout for a query q (unit norm) in the current chunk: one softmax over

    l_i  = -(beta/2) ||q - dk_i||^2 + log n_i    active slots i (n_i > 0)
    l'_j = -(beta/2) ||q - k_j||^2                exact keys j <= t of the current chunk

with values `dv_i` and `v_j`. With ||q|| = ||k_j|| = 1 this is
`beta q.x - (beta/2)(||x||^2 + 1) + log n`, which is how it is computed here
(one matmul; the per-slot bias `log n - (beta/2)(||dk||^2 + 1)` is `-inf` for
inactive slots, never `log 0`). With the "vq" readout (`OVQ_READOUTS`) each exact key is
first replaced by its nearest active slot of the dictionary being read (Transformer-VQ style).

Write (after the chunk's reads, only for a full chunk of L tokens;
`reasoning_jax.ops.ovq.write`): grow to the schedule's target by seeding free slots,
assign every chunk key to its nearest candidate slot (ties -> lowest index, a constant
for autodiff), and move each touched slot towards its assigned keys and values (by
default the exact running mean `(n dk + sum k) / (n + m)`); untouched slots are
bit-identical. The flags are `reasoning_jax.ops.ovq.options`.

Chunk boundaries are absolute: a chunk is L consecutive tokens of the stream
counted from the first token ever absorbed, so a call continuing from a state
whose buffer holds p tokens first completes that chunk with L - p new tokens.
All forms map a call's tokens onto this "stream" layout (`to_stream`). On packed rows
(`segment_ids`) the state restarts at every segment and chunks are counted from each
segment's first token (`reasoning_jax.ops.ovq.segments`).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Callable

import jax
import jax.numpy as jnp

from reasoning_jax import registry

# Largest num_slots the saturating schedule can evaluate in int32 (it forms N^2).
MAX_SLOTS = 46340


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class OVQState:
  """Recurrent state of OVQ attention (a pytree; constant size in T).

  Attributes:
    dk: key dictionary `[B, H, N, D]` float32 (running means of unit keys).
    dv: value dictionary `[B, H, N, Dv]` float32.
    counts: tokens absorbed per slot `[B, H, N]` float32; 0 marks an inactive slot.
    buf_k: normalised keys of the current chunk `[B, H, L, D]` float32; rows at and
      past `buf_len` are zero.
    buf_v: values of the current chunk `[B, H, L, Dv]` float32.
    buf_len: tokens in the buffer `[B]` int32, in `[0, L)`.
    tokens_seen: tokens absorbed into the dictionary so far `[B]` int32 (a
      multiple of L when started from `init_state`).
  """

  dk: jax.Array
  dv: jax.Array
  counts: jax.Array
  buf_k: jax.Array
  buf_v: jax.Array
  buf_len: jax.Array
  tokens_seen: jax.Array

  @property
  def num_slots(self) -> int:
    return self.dk.shape[2]

  @property
  def chunk_size(self) -> int:
    return self.buf_k.shape[2]


def init_state(
  batch: int, heads: int, num_slots: int, chunk_size: int, dk: int, dv: int
) -> OVQState:
  """The empty state: no active slot, empty buffer.

  Args:
    batch, heads: B and H.
    num_slots: dictionary slots N (N_max of the paper's growth schedule).
    chunk_size: chunk length L (the buffer length).
    dk, dv: key and value head dims D and Dv.
  """
  for name, value in (
    ("batch", batch),
    ("heads", heads),
    ("num_slots", num_slots),
    ("chunk_size", chunk_size),
    ("dk", dk),
    ("dv", dv),
  ):
    check_positive_int(value, name)
  f32 = jnp.float32
  return OVQState(
    dk=jnp.zeros((batch, heads, num_slots, dk), f32),
    dv=jnp.zeros((batch, heads, num_slots, dv), f32),
    counts=jnp.zeros((batch, heads, num_slots), f32),
    buf_k=jnp.zeros((batch, heads, chunk_size, dk), f32),
    buf_v=jnp.zeros((batch, heads, chunk_size, dv), f32),
    buf_len=jnp.zeros((batch,), jnp.int32),
    tokens_seen=jnp.zeros((batch,), jnp.int32),
  )


# ------------------------------------------------------------------------------ validation


def check_positive_int(value, name: str) -> None:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
    raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_ovq_inputs(
  q,
  k,
  v,
  beta,
  initial_state,
  lengths,
  *,
  chunk_size,
  num_slots,
  segment_ids=None,
) -> None:
  """Raises ValueError naming the argument and the expected shape/dtype/range.

  Args:
    q: `[B, T, H, D]` floating.
    k: `[B, T, H, D]`, q's dtype.
    v: `[B, T, H, Dv]`, q's dtype.
    beta: a positive Python number, or a floating array of shape `()` or `[H]`.
    initial_state: an `OVQState` with fields shaped for (B, H, N=num_slots,
      L=chunk_size, D, Dv), or None.
    lengths: `[B]` integer array or None.
    chunk_size, num_slots: positive ints (num_slots <= 46340).
    segment_ids: `[B, T]` integer array or None; not together with `initial_state`.
  """
  if getattr(q, "ndim", None) != 4:
    raise ValueError(f"q must be [B, T, H, D], got shape {getattr(q, 'shape', None)}")
  b, t, h, d = q.shape
  if getattr(k, "shape", None) != q.shape:
    raise ValueError(
      f"k must be [B, T, H, D] = {q.shape} like q (same heads and head dim), got shape "
      f"{getattr(k, 'shape', None)}"
    )
  if getattr(v, "ndim", None) != 4 or v.shape[:3] != (b, t, h):
    raise ValueError(
      f"v must be [B, T, H, Dv] = {(b, t, h)} + (Dv,), got shape {getattr(v, 'shape', None)}"
    )
  dv = v.shape[3]
  if not jnp.issubdtype(q.dtype, jnp.floating):
    raise ValueError(f"q must have a floating dtype, got {q.dtype}")
  if not q.dtype == k.dtype == v.dtype:
    raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  check_positive_int(chunk_size, "chunk_size")
  check_positive_int(num_slots, "num_slots")
  if num_slots > MAX_SLOTS:
    raise ValueError(f"num_slots must be <= {MAX_SLOTS} (int32 schedule), got {num_slots}")
  if isinstance(beta, numbers.Real) and not isinstance(beta, bool):
    if not beta > 0:
      raise ValueError(f"beta must be positive (an inverse temperature), got {beta!r}")
  else:
    shape = getattr(beta, "shape", None)
    if shape not in ((), (h,)):
      raise ValueError(f"beta must be a positive scalar or [H] = ({h},), got shape {shape}")
    if not jnp.issubdtype(beta.dtype, jnp.floating):
      raise ValueError(f"beta must be floating, got {beta.dtype}")
  if lengths is not None:
    if getattr(lengths, "shape", None) != (b,):
      raise ValueError(f"lengths must be [B] = ({b},), got shape {getattr(lengths, 'shape', None)}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
      raise ValueError(f"lengths must be integers, got {lengths.dtype}")
  if segment_ids is not None:
    if getattr(segment_ids, "shape", None) != (b, t):
      raise ValueError(
        f"segment_ids must be [B, T] = ({b}, {t}), got shape {getattr(segment_ids, 'shape', None)}"
      )
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
      raise ValueError(f"segment_ids must be integers, got {segment_ids.dtype}")
    if initial_state is not None:
      raise ValueError(
        "segment_ids (packed sequences) cannot be combined with initial_state: every packed "
        "segment starts from the empty state"
      )
  if initial_state is not None:
    check_state(initial_state, b, h, num_slots, chunk_size, d, dv, name="initial_state")


def check_state(state, b, h, n, l, d, dv, *, name="state") -> None:
  """Raises ValueError unless `state` is an OVQState shaped for (B, H, N, L, D, Dv)."""
  if not isinstance(state, OVQState):
    raise ValueError(f"{name} must be an OVQState, got {type(state).__name__}")
  expected = {
    "dk": ((b, h, n, d), "[B, H, N, D]", jnp.float32),
    "dv": ((b, h, n, dv), "[B, H, N, Dv]", jnp.float32),
    "counts": ((b, h, n), "[B, H, N]", jnp.float32),
    "buf_k": ((b, h, l, d), "[B, H, L, D]", jnp.float32),
    "buf_v": ((b, h, l, dv), "[B, H, L, Dv]", jnp.float32),
    "buf_len": ((b,), "[B]", jnp.int32),
    "tokens_seen": ((b,), "[B]", jnp.int32),
  }
  for field, (shape, layout, dtype) in expected.items():
    x = getattr(state, field)
    if x.shape != shape:
      raise ValueError(
        f"{name}.{field} must be {layout} = {shape} (N = num_slots, L = chunk_size), "
        f"got shape {x.shape}"
      )
    if x.dtype != dtype:
      raise ValueError(f"{name}.{field} must be {jnp.dtype(dtype).name}, got {x.dtype}")


# -------------------------------------------------------------------------- shared blocks


def l2_normalize(x: jax.Array) -> jax.Array:
  """`x / ||x||` over the last axis in fp32 (a zero vector stays zero)."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


def beta_per_head(beta, heads: int) -> jax.Array:
  """beta as fp32 `[H]`."""
  return jnp.broadcast_to(jnp.asarray(beta, jnp.float32), (heads,))


def precision_for(dtype):
  """HIGHEST for fp32 inputs (an fp32 reference, also on TPU); backend default otherwise."""
  return jax.lax.Precision.HIGHEST if dtype == jnp.float32 else None


def log_counts(counts: jax.Array) -> jax.Array:
  """`log n` for active slots, `-inf` for inactive ones (log 0 is never evaluated)."""
  active = counts > 0
  return jnp.where(active, jnp.log(jnp.where(active, counts, 1.0)), -jnp.inf)


def dictionary_bias(dict_k, counts, beta_h, renormalize: bool) -> jax.Array:
  """Per-slot additive logit `log n - (beta/2)(||dk||^2 + 1)` `[B, H, N]` (-inf inactive).

  With `renormalize` the stored keys are unit vectors and `||dk||^2` is taken as 1.
  """
  beta = beta_h[:, None]
  sq = 1.0 if renormalize else jnp.sum(dict_k * dict_k, axis=-1)
  return log_counts(counts) - 0.5 * beta * (sq + 1.0)


def readout(
  q,
  keys,
  values,
  key_mask,
  dict_k,
  dict_v,
  counts,
  beta_h,
  *,
  renormalize,
  precision,
  dict_mask=None,
  key_sq=None,
) -> jax.Array:
  """Joint softmax over active slots and the visible exact keys (fp32, vectorised).

  Args:
    q: unit queries `[B, H, Lq, D]` fp32.
    keys: unit exact keys `[B, H, Lk, D]` (any norm with `key_sq`); values `[B, H, Lk, Dv]`.
    key_mask: `[B, Lq, Lk]` bool, True where query i may read key j.
    dict_k, dict_v, counts: the dictionary `[B, H, N, D]`, `[B, H, N, Dv]`, `[B, H, N]`.
    beta_h: `[H]` fp32.
    dict_mask: `[B, Lq]` bool or None (all True): False where a query does not read the
      dictionary (a packed segment that has not absorbed anything yet).
    key_sq: `[B, H, Lk]` squared key norms, or None: the keys are unit vectors (the logit
      `beta q.k - (beta/2)(||k||^2 + 1)` is then `beta (q.k - 1)`).

  Returns:
    `[B, H, Lq, Dv]` fp32; rows that see nothing are 0.
  """
  beta = beta_h[:, None, None]
  bias = dictionary_bias(dict_k, counts, beta_h, renormalize)
  logits_d = beta * jnp.einsum("bhid,bhnd->bhin", q, dict_k, precision=precision)
  logits_d = logits_d + bias[:, :, None, :]
  if dict_mask is not None:
    logits_d = jnp.where(dict_mask[:, None, :, None], logits_d, -jnp.inf)
  if key_sq is None:
    logits_c = beta * (jnp.einsum("bhid,bhjd->bhij", q, keys, precision=precision) - 1.0)
  else:
    logits_c = beta * jnp.einsum("bhid,bhjd->bhij", q, keys, precision=precision)
    logits_c = logits_c - 0.5 * beta * (key_sq[:, :, None, :] + 1.0)
  logits_c = jnp.where(key_mask[:, None], logits_c, -jnp.inf)
  m = jnp.maximum(
    jnp.max(logits_d, axis=-1, keepdims=True), jnp.max(logits_c, axis=-1, keepdims=True)
  )
  m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
  p_d, p_c = jnp.exp(logits_d - m), jnp.exp(logits_c - m)
  z = jnp.sum(p_d, axis=-1, keepdims=True) + jnp.sum(p_c, axis=-1, keepdims=True)
  o = jnp.einsum("bhin,bhnv->bhiv", p_d, dict_v, precision=precision) + jnp.einsum(
    "bhij,bhjv->bhiv", p_c, values, precision=precision
  )
  return o / jnp.where(z > 0, z, 1.0)


def sq_dist(x, c, precision):
  """`||x_j - c_i||^2` by the matmul expansion: `[..., Lx, D] x [..., Nc, D] -> [..., Lx, Nc]`."""
  return (
    jnp.sum(x * x, -1)[..., :, None]
    - 2.0 * jnp.einsum("...jd,...nd->...jn", x, c, precision=precision)
    + jnp.sum(c * c, -1)[..., None, :]
  )


def nearest_candidate(keys, centres, candidate, precision) -> jax.Array:
  """Index of each key's nearest candidate centre, `||k||^2 - 2 k.c + ||c||^2` then argmin
  (ties -> lowest index; no candidate -> 0): `[B, H, L, D] x [B, H, N, D] -> [B, H, L]` int32.

  The XLA assignment of `write.absorb`; `pallas_kernels.ovq.ovq_chunk_assign_pallas` is the
  kernel with the same signature and the same arithmetic."""
  dist = jnp.where(candidate[..., None, :], sq_dist(keys, centres, precision), jnp.inf)
  return jnp.argmin(dist, axis=-1).astype(jnp.int32)


# --------------------------------------------------------------------------- chunk readouts

# fn(keys [B, H, Lk, D] unit, dict_k [B, H, N, D], counts [B, H, N], precision)
#   -> (keys to read, key_sq [B, H, Lk] or None for unit keys): what the current chunk's
#   exact-key part of the joint softmax reads (the readout's DESIGN CHOICE, spec 3.2).
OVQ_READOUTS: registry.Registry[Callable[..., tuple]] = registry.Registry("ovq readout")


@OVQ_READOUTS.register("exact")
def exact_chunk_keys(keys, dict_k, counts, precision):
  """The current chunk's keys as they are (default): causal without quantising the tokens not
  yet absorbed, and the unbounded dictionary equals softmax attention (spec test 3.4a)."""
  del dict_k, counts, precision
  return keys, None


@OVQ_READOUTS.register("vq")
def vq_chunk_keys(keys, dict_k, counts, precision):
  """Transformer-VQ style (Lingle, arXiv:2309.16354): each key read exactly is replaced by its
  nearest active slot of the dictionary being read (the previous chunks'; ties -> lowest
  index), with a straight-through gradient `k + stop_gradient(dk[a] - k)` as Transformer-VQ's
  quantiser has (forward: the slot; backward: to the key). Values stay exact. With no active
  slot (the first chunk) the keys stay exact."""
  active = counts > 0
  sg = jax.lax.stop_gradient
  nearest = nearest_candidate(sg(keys), sg(dict_k), active, precision)  # [B, H, Lk]
  code = jnp.take_along_axis(sg(dict_k), nearest[..., None], axis=-2)
  has = jnp.any(active, axis=-1)[..., None, None]
  quantised = jnp.where(has, keys + sg(code - keys), keys)
  return quantised, jnp.sum(quantised * quantised, axis=-1)


def chunk_reader(readout, readout_name: str, beta_h, precision):
  """A chunk readout plugin (`chunk.ChunkReadout`) reading the chunk keys of `readout_name` in
  `OVQ_READOUTS`: `(q, keys, values, key_mask, dict_mask, dict_k, dict_v, counts) -> o`."""
  chunk_keys = OVQ_READOUTS.get(readout_name)

  def read(q, keys, values, key_mask, dict_mask, dict_k, dict_v, counts):
    keys, key_sq = chunk_keys(keys, dict_k, counts, precision)
    extra = {} if key_sq is None else {"key_sq": key_sq}
    return readout(q, keys, values, key_mask, dict_mask, dict_k, dict_v, counts, beta_h, **extra)

  return read


# ------------------------------------------------------------------------- stream layout


def num_stream_chunks(t: int, chunk_size: int, has_buffer: bool) -> int:
  """Chunks of the stream layout: T tokens after at most L - 1 buffered ones."""
  return -(-(t + (chunk_size - 1 if has_buffer else 0)) // chunk_size)


def to_stream(x, buf, offset, stream_len: int) -> jax.Array:
  """`[B, T, H, D]` tokens after `offset [B]` buffered rows -> `[B, H, P, D]` fp32 stream.

  Stream row s of batch b is `buf[b, :, s]` for `s < offset[b]`, token
  `s - offset[b]` for the next T rows, and zero after. `buf` None means offset 0
  (then the tokens are only padded).
  """
  t = x.shape[1]
  x = jnp.moveaxis(x.astype(jnp.float32), 1, 2)  # [B, H, T, D]
  if buf is None:
    return jnp.pad(x, ((0, 0), (0, 0), (0, stream_len - t), (0, 0)))
  s = jnp.arange(stream_len)
  src = s[None, :] - offset[:, None]  # [B, P]
  from_x = (src >= 0) & (src < t)
  tokens = jnp.take_along_axis(x, jnp.clip(src, 0, t - 1)[:, None, :, None], axis=2)
  l = buf.shape[2]
  buf = jnp.pad(buf, ((0, 0), (0, 0), (0, max(stream_len - l, 0)), (0, 0)))[:, :, :stream_len]
  from_buf = s[None, :] < offset[:, None]
  out = jnp.where(from_x[:, None, :, None], tokens, 0.0)
  return jnp.where(from_buf[:, None, :, None], buf, out)


def from_stream(o, offset, t: int) -> jax.Array:
  """Inverse of `to_stream` for outputs: `[B, H, P, Dv]` -> `[B, T, H, Dv]` (rows offset..)."""
  if offset is None:
    return jnp.moveaxis(o[:, :, :t], 1, 2)
  idx = offset[:, None] + jnp.arange(t)[None, :]  # [B, T]
  return jnp.moveaxis(jnp.take_along_axis(o, idx[:, None, :, None], axis=2), 1, 2)


def final_buffer(stream_k, stream_v, end, chunk_size: int, buf_len=None):
  """The partial chunk ending at stream position `end [B]`: `(buf_k, buf_v, buf_len)`.

  `end` is the number of valid stream rows; the buffer is rows `[end - buf_len, end)`,
  zero-padded to L, with `buf_len = end % L` unless given `[B]` (a packed row's last
  segment need not start at a multiple of L).
  """
  l = chunk_size
  buf_len = end % l if buf_len is None else buf_len
  start = end - buf_len  # [B]
  p = stream_k.shape[2]
  idx = start[:, None] + jnp.arange(l)[None, :]  # [B, L]
  keep = (jnp.arange(l)[None, :] < buf_len[:, None])[:, None, :, None]
  take = lambda x: jnp.where(
    keep, jnp.take_along_axis(x, jnp.clip(idx, 0, p - 1)[:, None, :, None], axis=2), 0.0
  )
  return take(stream_k), take(stream_v), buf_len.astype(jnp.int32)


def prepare(q, k, v, beta, initial_state, lengths, chunk_size: int, num_slots: int):
  """Everything the chunked forms need in the stream layout.

  Returns a dict with fp32 streams `q, k, v` `[B, H, P, *]` (q and k unit
  norm), `offset [B]` (buffered rows, None without a state), `end [B]` (valid
  stream rows), the starting dictionary and counters, `beta_h [H]` and the
  number of chunks.
  """
  b, t, h, d = q.shape
  dv = v.shape[-1]
  l = chunk_size
  state = initial_state
  has_buffer = state is not None
  if state is None:
    state = init_state(b, h, num_slots, l, d, dv)
  n_chunks = num_stream_chunks(t, l, has_buffer)
  p = n_chunks * l
  offset = state.buf_len if has_buffer else None
  n_valid = (
    jnp.full((b,), t, jnp.int32) if lengths is None else jnp.clip(lengths.astype(jnp.int32), 0, t)
  )
  buf_q, buf_k, buf_v = (
    (jnp.zeros_like(state.buf_k), state.buf_k, state.buf_v) if has_buffer else (None, None, None)
  )
  return dict(
    q=to_stream(l2_normalize(q), buf_q, offset, p),
    k=to_stream(l2_normalize(k), buf_k, offset, p),
    v=to_stream(v, buf_v, offset, p),
    offset=offset,
    end=n_valid + (state.buf_len if has_buffer else 0),
    state=state,
    beta_h=beta_per_head(beta, h),
    num_chunks=n_chunks,
    t=t,
  )
