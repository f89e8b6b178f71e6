"""LoRA adapter on one projection kernel ("LoRA: Low-Rank Adaptation of Large Language Models",
Hu et al., arXiv:2106.09685).

A `LoRAKernel` replaces a raw `nnx.Param` kernel `W` (e.g. `Attention.q_proj` `[H, N, D]`,
`Attention.o_proj` `[N, D, H]`, `SwiGLU.gate` `[H, I]`) in place and holds

  base    `nnx.Param`     `W` (frozen by the trainers' `trainable=` filter; any dtype, e.g. bf16)
  lora_a  `nnx.LoRAParam` `[*in_shape, r]`  normal(0, 1/sqrt(fan_in))      (trainable)
  lora_b  `nnx.LoRAParam` `[r, *out_shape]` zeros                          (trainable)

and computes `x W + (alpha / r) * dropout(x) A B`, where `in_shape` are the kernel's leading
`in_dims` (contracted) axes. Because B starts at zero, a freshly adapted model gives exactly
the base logits (the delta adds exact zeros).

Two ways a layer sees the adapter:
  * `layers.projection.project(x, kernel, dtype, in_dims)` calls `apply`: the factored path
    `x W + s (x A) B` (no `[in, out]` delta is formed, dropout applies). `Attention` and the FFNs call it for their kernels.
  * `kernel[...]`: the effective weight `W + s A B` (merged on the fly, no dropout), so any
    other layer that indexes its kernel keeps working unchanged.

DESIGN CHOICE: adapters switch off per model through a static module attribute
(`adapters_off(model)`), not a global flag: the flag is part of the nnx graph, so `nnx.jit`
retraces when it changes and a traced `nnx.merge`d model can be toggled inside the trace. The
RL reference log-probs then come from the very same base weights (no second model copy).

DESIGN CHOICE: dropout is off unless a key is installed with `dropout_rng(key)` (default:
deterministic, so evaluation and reference passes never drop). Enter it inside the traced
function (the key is read at trace time); each kernel folds its own index into the key.

Why not `qwix` (0.1.8, `LoraProvider` + `apply_lora_to_model`), tried on our `Transformer`:
zero adapters gave exact base logits, but (1) it intercepts only the methods named at apply
time (`__call__`): `Transformer.forward`, which `generate` and the chunked log-probs use,
silently ran without adapters (0.0 vs 0.61 logit change after perturbing B); (2) it intercepts
`jnp.einsum` / `lax.dot_general` / `jnp.dot` but not `@`, so the SwiGLU kernels got no
adapters; (3) rules match module paths (`layers/0/mixer`), so q_proj cannot be adapted without
o_proj (same module); (4) it works by swapping `jax.numpy` functions during the call (global
interception) and creates params lazily in a first call. Here adapters are explicit modules
found by a regex over parameter paths (`reasoning_jax.lora.apply_lora`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax.layers.projection import contract as _contract

_DROPOUT_KEY: contextvars.ContextVar[jax.Array | None] = contextvars.ContextVar(
  "lora_dropout_key", default=None
)


@contextlib.contextmanager
def dropout_rng(key: jax.Array | None) -> Iterator[None]:
  """Turns on adapter dropout (each kernel's `dropout` rate) with `key` for calls inside.

  Enter it inside the function that is traced (e.g. the loss), since the key is read when
  the forward pass is traced. `None` leaves dropout off.
  """
  token = _DROPOUT_KEY.set(key)
  try:
    yield
  finally:
    _DROPOUT_KEY.reset(token)


def lora_delta(a: jax.Array, b: jax.Array, scale: float, shape, dtype=jnp.float32) -> jax.Array:
  """`scale * A B` for A `[*in, r]` and B `[r, *out]`, reshaped to `shape`, in `dtype`."""
  rank = a.shape[-1]
  a = a.astype(dtype).reshape(-1, rank)
  b = b.astype(dtype).reshape(rank, -1)
  return (scale * (a @ b)).reshape(shape)


def merged_kernel(w: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
  """`W + scale * A B`, summed in float32 and cast to W's dtype (what merging stores)."""
  return (w.astype(jnp.float32) + lora_delta(a, b, scale, w.shape, jnp.float32)).astype(w.dtype)


class LoRAKernel(nnx.Module):
  """A frozen kernel `W` plus a rank-`r` update `(alpha / r) A B` (see the module docstring).

  Args:
    base: the kernel's `nnx.Param` (kept as is: its dtype and value are the base weights).
    in_dims: how many leading axes of `W` are contracted with the input (1 for `[H, N, D]`
      and `[H, I]`, 2 for `o_proj` `[N, D, H]`).
    rank, alpha, dropout: the LoRA hyper-parameters (validated by `apply_lora`).
    index: a distinct int per kernel, folded into the dropout key.
    rngs: draws A.
    adapter_dtype: dtype of A and B (default float32, whatever the base dtype).
  """

  def __init__(
    self,
    base: nnx.Param,
    *,
    in_dims: int,
    rank: int,
    alpha: float,
    dropout: float = 0.0,
    index: int = 0,
    rngs: nnx.Rngs,
    adapter_dtype=jnp.float32,
  ):
    shape = tuple(base[...].shape)
    if not 0 < in_dims < len(shape):
      raise ValueError(f"in_dims={in_dims} must split kernel shape {shape} into in and out axes")
    self.in_dims, self.rank = in_dims, rank
    self.scale = float(alpha) / rank
    self.dropout, self.index = float(dropout), index
    self.enabled = True
    in_shape, out_shape = shape[:in_dims], shape[in_dims:]
    fan_in = math.prod(in_shape)
    # Kaiming-style A (PEFT uses kaiming_uniform(a=sqrt(5))); B = 0 makes the delta exactly 0.
    self.base = base
    self.lora_a = nnx.LoRAParam(
      jax.random.normal(rngs.params(), in_shape + (rank,), adapter_dtype) / math.sqrt(fan_in)
    )
    self.lora_b = nnx.LoRAParam(jnp.zeros((rank,) + out_shape, adapter_dtype))

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(self.base[...].shape)

  def delta(self, dtype=jnp.float32) -> jax.Array:
    """`(alpha / r) A B` reshaped to the kernel's shape, computed in `dtype`."""
    return lora_delta(self.lora_a[...], self.lora_b[...], self.scale, self.shape, dtype)

  def merged(self) -> jax.Array:
    """`W + (alpha / r) A B` in float32, cast to the base dtype (what merging stores)."""
    return merged_kernel(self.base[...], self.lora_a[...], self.lora_b[...], self.scale)

  def __getitem__(self, index):
    """The effective kernel (base only when disabled); lets any layer index it like a Param."""
    w = self.base[...]
    if not self.enabled:
      return w[index]
    return (w + self.delta(jnp.promote_types(w.dtype, self.lora_a[...].dtype)))[index]

  def apply(self, x: jax.Array, dtype) -> jax.Array:
    """`x W + s (drop(x) A) B` for `x` `[..., *in_shape]` -> `[..., *out_shape]` in `dtype`."""
    x = x.astype(dtype)
    y = _contract(x, self.base[...].astype(dtype), self.in_dims)
    if not self.enabled:
      return y
    key = _DROPOUT_KEY.get()
    if key is not None and self.dropout > 0:
      keep = jax.random.bernoulli(jax.random.fold_in(key, self.index), 1.0 - self.dropout, x.shape)
      x = jnp.where(keep, x / (1.0 - self.dropout), 0).astype(dtype)
    h = _contract(x, self.lora_a[...].astype(dtype), self.in_dims)
    return y + self.scale * _contract(h, self.lora_b[...].astype(dtype), 1)


def lora_kernels(model: nnx.Module) -> list[tuple[str, LoRAKernel]]:
  """`(dotted path, kernel)` for every `LoRAKernel` in `model`, in graph order."""
  return [
    (".".join(map(str, path)), node)
    for path, node in nnx.iter_graph(model)
    if isinstance(node, LoRAKernel)
  ]


@contextlib.contextmanager
def adapters_off(model: nnx.Module) -> Iterator[nnx.Module]:
  """Runs `model` as its base (every `LoRAKernel` disabled) inside the block; restores after.

  Same weights, no copy: `with adapters_off(model): ref_logits = model(ids)`. Works eagerly,
  under `nnx.jit` (the flag is static graph data) and inside a traced function on a model
  from `nnx.merge`.
  """
  kernels = [k for _, k in lora_kernels(model)]
  before = [k.enabled for k in kernels]
  for k in kernels:
    k.enabled = False
  try:
    yield model
  finally:
    for k, was in zip(kernels, before):
      k.enabled = was
