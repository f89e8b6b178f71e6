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

Every DESIGN CHOICE of the spec is a flag (`reasoning_jax.ops.ovq.options`): growth
schedule, seeding rule, update rule, chunk readout, re-normalisation; the write lives in
`reasoning_jax.ops.ovq.write`.

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
from reasoning_jax.ops.ovq.common import OVQ_READOUTS, OVQState, check_ovq_inputs, init_state
from reasoning_jax.ops.ovq.naive import ovq_naive
from reasoning_jax.ops.ovq.options import DEFAULT_FLAGS, OVQOptions, make_options
from reasoning_jax.ops.ovq.recurrent import ovq_recurrent, ovq_step
from reasoning_jax.ops.ovq.write import (
  OVQ_SCHEDULES,
  OVQ_SEEDINGS,
  OVQ_UPDATES,
  dirichlet_schedule,
  every_token_schedule,
  linear_schedule,
  saturating_schedule,
)

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
  seeding: str = "farthest",
  seed: int = 0,
  update: str = "adaptive",
  update_lr: float = 0.1,
  readout: str = "exact",
  linear_tokens: int | None = None,
  dirichlet_alpha: float | None = None,
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
      "saturating": `min(N, ceil(N tau / (tau + N)))`; "every_token": `min(N, tau)`;
      "linear": `min(N, ceil(N tau / linear_tokens))`; "dirichlet":
      `min(N, ceil(alpha log(1 + tau / alpha)))`, alpha = `dirichlet_alpha`, our reading
      of the paper's Dirichlet-process-inspired schedule). tau counts absorbed tokens.
    renormalize: DESIGN CHOICE, default False (keep running means and the
      `-(beta/2)||dk||^2` term); True re-normalises updated key slots.
    seeding: new-slot initialisation, a name in `OVQ_SEEDINGS` (DESIGN CHOICE, default
      "farthest": farthest-first traversal of the chunk's keys; "kmeans++": D^2 sampling;
      "random": keys drawn uniformly, the paper's ablation).
    seed: int in [0, 2^31) for the stochastic seeding rules (default 0); their draws are a
      deterministic function of it, the batch row, the head, the tokens absorbed and the
      chunk's keys (`write.seeding_noise`), so every form picks the same seeds.
    update: dictionary update, a name in `OVQ_UPDATES` (DESIGN CHOICE, default "adaptive":
      the exact running mean, learning rate 1/count; "constant": `D + update_lr (mean of
      assigned - D)`, a new slot starting at its seed, the paper's ablation).
    update_lr: the constant rule's learning rate in (0, 1] (default 0.1, our choice).
    readout: chunk readout, a name in `OVQ_READOUTS` (DESIGN CHOICE, default "exact": the
      joint softmax reads the chunk's exact keys; "vq": each is replaced by its nearest
      active slot of the previous dictionary, straight-through, Transformer-VQ style).
    linear_tokens: "linear" fills the dictionary after this many tokens (default None:
      4 num_slots).
    dirichlet_alpha: the concentration of "dirichlet" (default None: num_slots / 4).
    implementation: None (currently "xla": the kernel is opt-in until validated on
      hardware), "xla", or "pallas" (the Pallas chunk readout and assignment kernels,
      the readout with a fused Pallas backward; mode must be "chunk"; interpret mode on
      CPU; readout "vq" is not supported and raises). An explicitly requested backend
      that cannot run raises.
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
    segment_ids=segment_ids,
  )
  flags = dict(
    schedule=schedule,
    renormalize=renormalize,
    seeding=seeding,
    seed=seed,
    update=update,
    update_lr=update_lr,
    readout=readout,
    linear_tokens=linear_tokens,
    dirichlet_alpha=dirichlet_alpha,
  )
  make_options(num_slots, **flags)  # ValueError naming a bad flag before any backend runs
  mode = OVQ_MODES.validate(mode, argument="mode")
  kernel = chunk_kernel("OVQ", implementation, mode, kernels=registry.OVQ_CHUNK_KERNELS)
  kwargs = dict(
    beta=beta,
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    segment_ids=segment_ids,
    **flags,
  )
  if kernel is not None:
    return kernel(q, k, v, **kwargs)
  return OVQ_MODES.get(mode)(q, k, v, **kwargs)


__all__ = [
  "DEFAULT_FLAGS",
  "IMPLEMENTATIONS",
  "OVQ_MODES",
  "OVQ_READOUTS",
  "OVQ_SCHEDULES",
  "OVQ_SEEDINGS",
  "OVQ_UPDATES",
  "OVQOptions",
  "OVQState",
  "dirichlet_schedule",
  "every_token_schedule",
  "init_state",
  "linear_schedule",
  "make_options",
  "ovq_attention",
  "ovq_chunk",
  "ovq_chunk_scan",
  "ovq_naive",
  "ovq_recurrent",
  "ovq_step",
  "saturating_schedule",
  "xla_chunk_readout",
]
