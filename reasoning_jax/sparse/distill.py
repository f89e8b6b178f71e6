"""The role-learning forward: a frozen model's attention mixed per head by gate values.

LycheeDecode ("LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse
Decoding", Lin et al., arXiv:2602.04541; `shared/methods/inference.md` section 8.3) and
DuoAttention ("DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming
Heads", Xiao et al., arXiv:2410.10819; section 7.2) learn one gate per (layer, KV head) by
distilling the model's own full-attention hidden states into a forward where each head mixes
full attention with its sparse alternative:

  lychee: O = z * Attn_full + (1 - z) * Attn(mask_prev), z a HardKuma sample; `mask_prev` is
          the mask the PREVIOUS layer computed from the same query head's full-attention
          logits with the "ratio" selector (keep `ratio` of the causal prefix, sinks and
          recent included); layer 0 has no previous mask and is full (forced retrieval);
  duo:    O = alpha * Attn_full + (1 - alpha) * Attn(sinks + recent).

Train/inference differences kept deliberately (section 8.3): training masks are per QUERY head
from each head's own logits and are inherited by exactly one layer; at inference they are per
KV head (GQA-mean query) and inherited until the next retrieval head of that index.

`RoleDistillContext` plugs into `Transformer.forward(..., attention_context=...)` on the
no-cache path (positions must be `arange(T)` per row); `distill_loss` is the masked MSE on
final-norm hidden states.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ("lychee", "duo")


def causal_logits(q, k, scale):
  """`[B, N, T, T]` float32 scaled logits with GQA (`q [B, T, N, D]`, `k [B, T, K, D]`)."""
  b, t, n, d = q.shape
  kh = k.shape[2]
  qg = q.reshape(b, t, kh, n // kh, d)
  logits = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
  return logits.reshape(b, n, t, t)


def _softmax_attend(logits, mask, v, kh):
  """Softmax of `logits [B, N, T, T]` over `mask` (same shape or broadcastable) times v."""
  b, n, t, _ = logits.shape
  masked = jnp.where(mask, logits, -jnp.inf)
  probs = jax.nn.softmax(masked, axis=-1)
  probs = jnp.where(mask, probs, 0.0).reshape(b, kh, n // kh, t, t)
  out = jnp.einsum("bkgts,bskd->btkgd", probs, v.astype(jnp.float32))
  return out.reshape(b, t, n, v.shape[-1])


def anchor_mask(t: int, *, sink_tokens: int, recent_tokens: int):
  """`[T, T]` bool causal mask of the sinks and the recent window of every query row."""
  i = jnp.arange(t)[:, None]
  j = jnp.arange(t)[None, :]
  return (j <= i) & ((j < sink_tokens) | (i - j < recent_tokens))


def ratio_mask(logits, *, ratio: float, sink_tokens: int, recent_tokens: int):
  """LycheeDecode's "ratio" selector per query head and row: `[B, N, T, T]` bool.

  Row i keeps `max(ceil(ratio * (i + 1)), #anchors)` of its causal prefix: the sinks and the
  recent window first, then the highest logits (ties at the threshold may keep a few more).
  """
  t = logits.shape[-1]
  causal = jnp.tril(jnp.ones((t, t), bool))
  anchors = anchor_mask(t, sink_tokens=sink_tokens, recent_tokens=recent_tokens)
  ranked = jnp.where(anchors, jnp.inf, jnp.where(causal, logits, -jnp.inf))
  keep = jnp.ceil(ratio * (jnp.arange(t) + 1)).astype(jnp.int32)  # [T]
  keep = jnp.maximum(keep, jnp.sum(anchors, axis=-1))
  ordered = -jnp.sort(-ranked, axis=-1)  # Descending.
  threshold = jnp.take_along_axis(ordered, (keep - 1)[None, None, :, None], axis=-1)
  return (ranked >= threshold) & causal


class RoleDistillContext:
  """Mixes every attention layer's full and sparse outputs by per-(layer, KV head) gates.

  Args:
    gates: `[L, K]` gate values in [0, 1] (HardKuma samples z, or DuoAttention's alpha).
    mode: "lychee" or "duo".
    ratio: LycheeDecode's training selector share (paper: 0.3).
    sink_tokens, recent_tokens: anchors (paper: 128 and 256).
    scale: softmax scale (default `D ** -0.5`).
  """

  def __init__(
    self,
    gates,
    *,
    mode: str = "lychee",
    ratio: float = 0.3,
    sink_tokens: int = 128,
    recent_tokens: int = 256,
    scale: float | None = None,
  ):
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0.0 < ratio <= 1.0:
      raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    self.gates = gates
    self.mode = mode
    self.ratio = ratio
    self.sink_tokens, self.recent_tokens = sink_tokens, recent_tokens
    self.scale = scale
    self.prev_mask = None

  def attend(self, layer: int, q, k, v, q_positions):
    del q_positions  # Positions are arange(T): the masks are on indices.
    if q.shape[1] != k.shape[1]:
      raise ValueError("RoleDistillContext runs on the no-cache path (full sequences)")
    b, t, n, d = q.shape
    kh = k.shape[2]
    if self.gates.shape[1] != kh or layer >= self.gates.shape[0]:
      raise ValueError(
        f"gates must be [num_layers, num_kv_heads]; got {tuple(self.gates.shape)} at layer "
        f"{layer} with {kh} KV heads"
      )
    scale = d**-0.5 if self.scale is None else self.scale
    logits = causal_logits(q, k, scale)
    causal = jnp.tril(jnp.ones((t, t), bool))
    full = _softmax_attend(logits, causal, v, kh)
    if self.mode == "duo":
      anchors = anchor_mask(t, sink_tokens=self.sink_tokens, recent_tokens=self.recent_tokens)
      alternative = _softmax_attend(logits, anchors, v, kh)
    elif self.prev_mask is None:
      alternative = full  # Layer 0: nothing to inherit; forced retrieval.
    else:
      alternative = _softmax_attend(logits, self.prev_mask, v, kh)
    if self.mode == "lychee":
      self.prev_mask = jax.lax.stop_gradient(
        ratio_mask(
          logits,
          ratio=self.ratio,
          sink_tokens=self.sink_tokens,
          recent_tokens=self.recent_tokens,
        )
      )
    z = jnp.repeat(self.gates[layer].astype(jnp.float32), n // kh)[None, None, :, None]
    out = z * full + (1.0 - z) * alternative
    return out.astype(q.dtype)


def distill_loss(teacher, student, loss_mask):
  """`(1 / T_ans) sum_t mean_d (h_full - h_mix)^2` over `loss_mask [B, T]` positions."""
  diff = jnp.square(teacher.astype(jnp.float32) - student.astype(jnp.float32))
  per_token = jnp.mean(diff, axis=-1)
  weights = loss_mask.astype(jnp.float32)
  return jnp.sum(per_token * weights) / jnp.maximum(jnp.sum(weights), 1.0)
