"""OVQ attention: naive / chunk / recurrent forms and one dispatcher.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
as specified in /shared/methods/memory_attention.md section 3 (a reconstruction:
the paper's exact equations were not public). Per head, queries and keys are
L2-normalised; a dictionary of N_max key/value slots with counts is learned
online during the forward pass (online k-means, hard assignments, exact running
means), and each query reads a joint softmax over the active slots
(`-(beta/2)||q - dk_i||^2 + log n_i`) and the exact keys of its own chunk up to
itself (`-(beta/2)||q - k_j||^2`). Each full chunk of L tokens is absorbed after
its reads. Memory is constant in T (`OVQState`).

Three forms with one signature, each returning `(o, final_state)`:
  * `ovq_naive`: loop over chunks with explicit distances and scatter-adds (the spec);
  * `ovq_chunk`: `lax.scan` over chunks, dense one-hot updates, checkpointed body;
  * `ovq_recurrent`: scan of `ovq_step`, the single-token decode step.
The Pallas chunk readout (`pallas_kernels.ovq`) is reached through
`ovq_attention(..., implementation="pallas")`.

Packed sequences: with `segment_ids [B, T]` the whole state (dictionary, counts, chunk
buffer, the schedule's token count) restarts at every valid position whose id differs
from the previous token's, so each segment gives what it gives run alone (its chunks and
its growth schedule count its own tokens); see `reasoning_jax.ops.ovq.segments`.

Shapes: q, k `[B, T, H, D]`; v `[B, T, H, Dv]`; beta scalar or `[H]`;
lengths `[B]` or None; segment_ids `[B, T]` or None; state fields in `OVQState`.
"""

from __future__ import annotations

import jax

from reasoning_jax import registry
from reasoning_jax.ops.backends import IMPLEMENTATIONS, chunk_kernel
from reasoning_jax.ops.ovq.chunk import ovq_chunk, ovq_chunk_scan, xla_chunk_readout
from reasoning_jax.ops.ovq.common import (
  OVQ_SCHEDULES,
  OVQState,
  check_ovq_inputs,
  init_state,
  saturating_schedule,
  every_token_schedule,
)
from reasoning_jax.ops.ovq.naive import ovq_naive
from reasoning_jax.ops.ovq.recurrent import ovq_recurrent, ovq_step

# Forms of the XLA implementation, by name (a config can validate `mode` against it).
OVQ_MODES: registry.Registry = registry.Registry("ovq mode")
OVQ_MODES.register("naive")(ovq_naive)
OVQ_MODES.register("chunk")(ovq_chunk)
OVQ_MODES.register("recurrent")(ovq_recurrent)


def ovq_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  beta,
  initial_state: OVQState | None = None,
  lengths: jax.Array | None = None,
  mode: str = "chunk",
  chunk_size: int = 64,
  num_slots: int = 1024,
  schedule: str = "saturating",
  renormalize: bool = False,
  implementation: str | None = None,
  segment_ids: jax.Array | None = None,
) -> tuple[jax.Array, OVQState]:
  """OVQ attention with a choice of form and backend.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922).

  Args:
    q: queries `[B, T, H, D]` (L2-normalised inside the op).
    k: keys `[B, T, H, D]`, q's dtype (L2-normalised inside the op).
    v: values `[B, T, H, Dv]`, q's dtype.
    beta: inverse temperature > 0, a scalar or `[H]` (DESIGN CHOICE of the layer:
      `exp(b)`, b a per-head parameter initialised at `log sqrt(D)`). Positivity of
      an array is the caller's contract (not checkable under jit).
    initial_state: `OVQState` to continue from (its buffer may be partly filled),
      or None (empty). Its N and L must equal num_slots and chunk_size.
    lengths: `[B]` ints or None: right padding, tokens at `>= lengths[b]` are
      neither read nor absorbed (the final state is that of the valid prefix)
      and output 0.
    mode: "chunk" (default, training), "naive" (spec) or "recurrent" (decode-style
      scan). All give the same result up to float rounding.
    chunk_size: L, tokens per chunk (DESIGN CHOICE, default 64; T need not divide).
    num_slots: N_max slots per head (DESIGN CHOICE, default 1024).
    schedule: growth schedule, a name in `OVQ_SCHEDULES` (DESIGN CHOICE, default
      "saturating": `min(N, ceil(N tau / (tau + N)))`; "every_token": `min(N, tau)`).
    renormalize: DESIGN CHOICE, default False (keep running means and the
      `-(beta/2)||dk||^2` term); True re-normalises updated key slots.
    implementation: None (currently "xla": the kernel is opt-in until validated on
      hardware), "xla", or "pallas" (the Pallas chunk readout and assignment kernels,
      the readout with a fused Pallas backward; mode must be "chunk"; interpret mode on
      CPU). An explicitly requested backend that cannot run raises.
    segment_ids: `[B, T]` ints or None: packed sequences. The state restarts at every
      valid position whose id differs from the previous token's (padding never starts a
      segment). Cannot be combined with `initial_state` (ValueError).

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state OVQState)`; with segment_ids the final
    state is that of each row's last segment.
  """
  check_ovq_inputs(
    q,
    k,
    v,
    beta,
    initial_state,
    lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    schedule=schedule,
    renormalize=renormalize,
    segment_ids=segment_ids,
  )
  mode = OVQ_MODES.validate(mode, argument="mode")
  kernel = chunk_kernel("OVQ", implementation, mode, kernels=registry.OVQ_CHUNK_KERNELS)
  kwargs = dict(
    beta=beta,
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    schedule=schedule,
    renormalize=renormalize,
    segment_ids=segment_ids,
  )
  if kernel is not None:
    return kernel(q, k, v, **kwargs)
  return OVQ_MODES.get(mode)(q, k, v, **kwargs)


__all__ = [
  "IMPLEMENTATIONS",
  "OVQ_MODES",
  "OVQ_SCHEDULES",
  "OVQState",
  "every_token_schedule",
  "init_state",
  "ovq_attention",
  "ovq_chunk",
  "ovq_chunk_scan",
  "ovq_naive",
  "ovq_recurrent",
  "ovq_step",
  "saturating_schedule",
  "xla_chunk_readout",
]
