"""Gated linear attention (GLA): naive / chunk / recurrent forms and one dispatcher.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635). Per head, with a fp32 state `S` `[Dk, Dv]` and a
log-space gate `g_t = log(alpha_t) <= 0`:

    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale * q_t)

Three forms with one signature, each returning `(o, final_state)` (the
flash-linear-attention layout, fla/ops/gla/):
  * `gla_naive`: fp32 scan over time, the readable spec;
  * `gla_chunk`: chunkwise-parallel training form (secondary chunking,
    numerically safe for any decay strength);
  * `gla_recurrent`: scan of `gla_step`, the single-token decode step used by
    the generation cache.
The Pallas kernel (`pallas_kernels.gla`: chunked forward and a fused chunked
backward) is reached through `gated_linear_attention(..., implementation="pallas")`.

Shapes: q, k `[B, T, H, Dk]`; v `[B, T, H, Dv]`; g `[B, T, H, Dk]` (vector gate),
`[B, T, H]` (scalar gate per head, broadcast over Dk) or None (vanilla linear
attention); initial_state `[B, H, Dk, Dv]` float32 or None; segment_ids `[B, T]`
ints or None (packed sequences: the state restarts from zero where the id changes,
`initial_state` reaches each row's first sequence only, and the final state is that of
the row's last sequence; see `reasoning_jax.ops.gla.naive`).
"""

from __future__ import annotations

import jax

from reasoning_jax import registry
from reasoning_jax.ops.backends import IMPLEMENTATIONS, chunk_kernel
from reasoning_jax.ops.gla.chunk import check_chunk_size, gla_chunk
from reasoning_jax.ops.gla.naive import check_gla_inputs, gla_naive
from reasoning_jax.ops.gla.recurrent import gla_recurrent, gla_step

# Forms of the XLA implementation, by name (a config can validate `mode` against it).
GLA_MODES: registry.Registry = registry.Registry("gla mode")
GLA_MODES.register("naive")(gla_naive)
GLA_MODES.register("chunk")(gla_chunk)
GLA_MODES.register("recurrent")(gla_recurrent)


def gated_linear_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array | None = None,
  *,
  initial_state: jax.Array | None = None,
  scale: float | None = None,
  segment_ids: jax.Array | None = None,
  mode: str = "chunk",
  chunk_size: int = 64,
  implementation: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Gated linear attention with a choice of form and backend.

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635).

  Args:
    q: queries `[B, T, H, Dk]`.
    k: keys `[B, T, H, Dk]`, same dtype as q.
    v: values `[B, T, H, Dv]`, same dtype as q.
    g: log-gates `[B, T, H, Dk]` or `[B, T, H]` in q's dtype or float32, or None
      (alpha = 1). DESIGN CHOICE: `g <= 0` is the caller's contract and is not
      checked (a value check cannot run under `jax.jit`); produce it as e.g.
      `jax.nn.log_sigmoid(x) / 16` as in the paper.
    initial_state: `[B, H, Dk, Dv]` float32, or None (zeros).
    scale: multiplies q; defaults to `Dk ** -0.5`.
    segment_ids: `[B, T]` ints or None. Packed sequences: the state restarts from zero at
      every position whose id differs from the previous one, so each sequence is computed
      as if it ran alone. DESIGN CHOICE: `initial_state` applies to the first sequence of
      each row only, and `final_state` is the state at the end of the last sequence.
    mode: "chunk" (default, training), "naive" (spec) or "recurrent" (decode-style
      scan). All give the same result up to float rounding.
    chunk_size: chunk length for mode="chunk" (positive int; T need not divide).
    implementation: None (currently "xla" everywhere: the Pallas kernel is
      opt-in until it is validated on hardware), "xla", or "pallas" (the Pallas
      chunked forward and fused chunked backward; mode must be "chunk"; on CPU it
      runs in interpret mode). An explicitly requested backend that
      cannot run raises.

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32)`.
  """
  check_gla_inputs(q, k, v, g, initial_state, segment_ids)
  mode = GLA_MODES.validate(mode, argument="mode")
  if mode == "chunk":
    check_chunk_size(chunk_size)
  kernel = chunk_kernel("GLA", implementation, mode, kernels=registry.GLA_CHUNK_KERNELS)
  if kernel is not None:
    return kernel(
      q,
      k,
      v,
      g,
      initial_state=initial_state,
      scale=scale,
      chunk_size=chunk_size,
      segment_ids=segment_ids,
    )
  kwargs = {"chunk_size": chunk_size} if mode == "chunk" else {}
  return GLA_MODES.get(mode)(
    q, k, v, g, initial_state=initial_state, scale=scale, segment_ids=segment_ids, **kwargs
  )


__all__ = [
  "GLA_MODES",
  "IMPLEMENTATIONS",
  "gated_linear_attention",
  "gla_chunk",
  "gla_naive",
  "gla_recurrent",
  "gla_step",
]
