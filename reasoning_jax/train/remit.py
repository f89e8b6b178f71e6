"""ReMiT: a next-token loss with per-token weights from an RL model vs learner log-prob gap.

"ReMiT: RL-Guided Mid-Training for Iterative LLM Evolution", Junjie Huang, Jiarui Qin, Di Yin,
Weiwen Liu, Yong Yu, Xing Sun, Weinan Zhang, arXiv 2602.03075 (2026).

Not RL: mid-training (annealing) on a corpus with a reweighted NTP loss. For every target
token x_t of a training sequence (`[B, T]` arrays throughout),

  D_t  = log p_guide(x_t | x_<t) - log p_ref(x_t | x_<t)       ref: `delta_reference`
  Dc_t = D_t - mean_{s in the same sequence (segment), valid} D_s
  w_t  = clip(2 * sigmoid(Dc_t / tau), 1 - eps, 1 + eps)     ("sigmoid_clip")
       | 1 + eps * tanh(Dc_t / (2 tau))                      ("tanh")
  L    = sum_t m_t * sg(w_t) * (-log p_theta(x_t | x_<t)) / sum_t m_t

where the guide is the frozen RL-tuned model of the same family (same tokenizer). Dc = 0 gives
w = 1 exactly, and the denominator is the token count (not the sum of weights), so w = 1 is
exactly NTP (`sft_loss`); a constant offset of D is removed by the centring.

DESIGN CHOICES (the paper's constants were not recovered; `ReMiTConfig` fields, defaults):
  delta_reference = "current"     the learner itself, same forward pass, detached;
                    "frozen_base" a frozen copy of the model mid-training starts from
                    (`batch["base_logp"]`)
  weight_map      = "sigmoid_clip" (or "tanh", the smooth alternative; `WEIGHT_MAPS`)
  tau = 1.0, eps = 0.2            (the paper sweeps eps in {0.1, 0.2, 0.5})
  centre          = "segment"     per packed document segment when `segment_ids` are given,
                                  else per row; "sequence": always per row
The weights are detached (stop-gradient), so the update stays a weighted NTP gradient.

Pure ops: `remit_weights` (D -> w) and `remit_token_loss` (log-probs -> (sum, count, aux));
`remit_loss(model, batch, config=...)` is the `sft_loss`-shaped wrapper the SFT trainer's
step runs (`reasoning_jax.train.remit_setup` wires it into `run_sft`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from reasoning_jax.logprobs import sequence_logprobs
from reasoning_jax.registry import Registry
from reasoning_jax.validation import as_array, as_mask, check_choice, check_float_in

__all__ = [
  "CENTRES",
  "DELTA_REFERENCES",
  "ReMiTConfig",
  "WEIGHT_MAPS",
  "remit_aux_finalize",
  "remit_loss",
  "remit_token_loss",
  "remit_weights",
]

DELTA_REFERENCES = ("current", "frozen_base")
CENTRES = ("segment", "sequence")

# Weight maps `fn(dc, tau, eps) -> w` (float32 arrays); each maps dc = 0 to exactly 1.
WEIGHT_MAPS: Registry[Callable[[jax.Array, float, float], jax.Array]] = Registry("ReMiT weight map")


@WEIGHT_MAPS.register("sigmoid_clip")
def sigmoid_clip(dc: jax.Array, tau: float, eps: float) -> jax.Array:
  """`clip(2 sigmoid(dc / tau), 1 - eps, 1 + eps)` (the spec's DESIGN CHOICE)."""
  return jnp.clip(2.0 * jax.nn.sigmoid(dc / tau), 1.0 - eps, 1.0 + eps)


@WEIGHT_MAPS.register("tanh")
def tanh(dc: jax.Array, tau: float, eps: float) -> jax.Array:
  """`1 + eps tanh(dc / (2 tau))`: smooth, same slope at 0 as the sigmoid map for eps = 1."""
  return 1.0 + eps * jnp.tanh(dc / (2.0 * tau))


@dataclasses.dataclass(frozen=True)
class ReMiTConfig:
  """The ReMiT DESIGN CHOICES, validated at construction (ValueError naming the field).

  Attributes:
    delta_reference: "current" (D = guide - sg(learner), default) or "frozen_base"
      (D = guide - frozen base; needs `batch["base_logp"]`).
    weight_map: a `WEIGHT_MAPS` name: "sigmoid_clip" (default) or "tanh".
    tau: temperature of the map, > 0 (default 1.0).
    eps: half-width of the weight range [1 - eps, 1 + eps], in [0, 1] (default 0.2; 0 is NTP).
    centre: "segment" (default: per packed document segment when segment ids are known,
      else per row) or "sequence" (per row).
  """

  delta_reference: str = "current"
  weight_map: str = "sigmoid_clip"
  tau: float = 1.0
  eps: float = 0.2
  centre: str = "segment"
  # Where the fields live, for error messages ("config.remit" in the trainer).
  prefix: str = dataclasses.field(default="config", compare=False, repr=False)

  def __post_init__(self):
    check_choice(self.delta_reference, DELTA_REFERENCES, f"{self.prefix}.delta_reference")
    WEIGHT_MAPS.validate(self.weight_map, argument=f"{self.prefix}.weight_map")
    check_float_in(self.tau, f"{self.prefix}.tau", 0.0, low_inclusive=False)
    check_float_in(self.eps, f"{self.prefix}.eps", 0.0, 1.0)
    check_choice(self.centre, CENTRES, f"{self.prefix}.centre")


def _segment_mean(x: jax.Array, valid: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
  """Mean of `x` over the valid positions of each row (or each run of equal segment ids within
  a row), broadcast back to `[B, T]`; 0 for a row / segment without valid positions."""
  if segment_ids is None:
    total = jnp.sum(x * valid, axis=-1, keepdims=True)
    count = jnp.sum(valid, axis=-1, keepdims=True)
    return total / jnp.maximum(count, 1.0)
  b, t = x.shape
  # Segments are contiguous runs of one id (packing); a run index is unique per row.
  starts = jnp.concatenate(
    [jnp.ones((b, 1), bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1
  )
  run = jnp.cumsum(starts, axis=1) - 1 + (jnp.arange(b) * t)[:, None]
  total = jax.ops.segment_sum((x * valid).ravel(), run.ravel(), num_segments=b * t)
  count = jax.ops.segment_sum(valid.ravel(), run.ravel(), num_segments=b * t)
  return (total / jnp.maximum(count, 1.0))[run]


def remit_weights(
  delta: Any,
  mask: Any,
  segment_ids: Any = None,
  *,
  weight_map: str = "sigmoid_clip",
  tau: float = 1.0,
  eps: float = 0.2,
) -> jax.Array:
  """ReMiT token weights from the log-prob gap (arXiv 2602.03075).

  Args:
    delta: `[B, T]` float, D = log p_guide - log p_ref per target token.
    mask: `[B, T]` 0/1 (bool, int or float): the tokens that count.
    segment_ids: optional `[B, T]` int; each contiguous run of one id in a row (a packed
      document) is centred on its own. None: each row is centred as a whole.
    weight_map: a `WEIGHT_MAPS` name ("sigmoid_clip" | "tanh").
    tau: map temperature, > 0.
    eps: weights lie in [1 - eps, 1 + eps], eps in [0, 1].

  Returns:
    `w [B, T]` float32, detached: `weight_map(D - masked mean of D)` on valid tokens (exactly
    1 where the centred gap is 0), 0 where `mask` is 0. Values of `delta` outside the mask
    (padding, NaN) are ignored.
  """
  delta = as_array(delta, "delta", ndim=2)
  mask = as_mask(mask, "mask", shape=tuple(delta.shape))
  if segment_ids is not None:
    segment_ids = as_array(segment_ids, "segment_ids", shape=tuple(delta.shape), kind="int")
  fn = WEIGHT_MAPS.get(WEIGHT_MAPS.validate(weight_map, argument="weight_map"))
  check_float_in(tau, "tau", 0.0, low_inclusive=False)
  check_float_in(eps, "eps", 0.0, 1.0)
  return _weights(delta, mask, segment_ids, fn, tau, eps)[0]


def _weights(delta, mask, segment_ids, fn, tau, eps):
  """(w, centred delta, valid) without input checks."""
  valid = mask.astype(bool)
  delta = jnp.where(valid, jax.lax.stop_gradient(delta).astype(jnp.float32), 0.0)
  valid_f = valid.astype(jnp.float32)
  centred = jnp.where(valid, delta - _segment_mean(delta, valid_f, segment_ids), 0.0)
  w = jnp.where(valid, fn(centred, tau, eps), 0.0)
  return jax.lax.stop_gradient(w), delta, valid


def remit_token_loss(
  logp: jax.Array,
  guide_logp: jax.Array,
  mask: jax.Array,
  *,
  config: ReMiTConfig = ReMiTConfig(),
  base_logp: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """The ReMiT loss from log-probs: `(sum_t m_t sg(w_t) (-logp_t), sum_t m_t, aux)`.

  Args:
    logp: `[B, T]` learner log-probs of the target tokens (carries the gradient).
    guide_logp: `[B, T]` the frozen guide's (RL model's) log-probs of the same tokens.
    mask: `[B, T]` 0/1, the target tokens.
    config: the `ReMiTConfig`.
    base_logp: `[B, T]` frozen-base log-probs; required iff `delta_reference="frozen_base"`.
    segment_ids: `[B, T]` int packed-segment ids (used when `config.centre == "segment"`).

  Returns:
    `(loss_sum, token_count, aux)`, so `d(loss_sum / token_count) / d logp_t = -w_t / count`.
    aux (the `_sum`/`_min`/`_max` convention of `remit_aux_finalize`): `remit_weight_sum`,
    `remit_weight_sq_sum`, `remit_clipped_sum` (tokens at the map's bounds),
    `remit_abs_delta_sum` (|D|), `remit_tokens` (the centred tokens), `remit_weight_min`,
    `remit_weight_max`.
  """
  logp = as_array(logp, "logp", ndim=2)
  shape = tuple(logp.shape)
  guide_logp = as_array(guide_logp, "guide_logp", shape=shape)
  mask = as_mask(mask, "mask", shape=shape)
  if config.delta_reference == "frozen_base":
    if base_logp is None:
      raise ValueError("base_logp [B, T] is required with delta_reference='frozen_base'")
    reference = as_array(base_logp, "base_logp", shape=shape)
  else:
    reference = logp
  if segment_ids is not None:
    segment_ids = as_array(segment_ids, "segment_ids", shape=shape, kind="int")
  segments = segment_ids if config.centre == "segment" else None
  delta = guide_logp.astype(jnp.float32) - jax.lax.stop_gradient(reference).astype(jnp.float32)
  fn = WEIGHT_MAPS.get(config.weight_map)
  w, delta, valid = _weights(delta, mask, segments, fn, config.tau, config.eps)
  maskf = mask.astype(jnp.float32)
  loss_sum = jnp.sum(maskf * w * -logp.astype(jnp.float32))
  low, high = 1.0 - config.eps, 1.0 + config.eps
  clipped = valid & ((w <= low) | (w >= high)) if config.eps > 0 else jnp.zeros_like(valid)
  aux = {
    "remit_weight_sum": jnp.sum(w),
    "remit_weight_sq_sum": jnp.sum(w * w),
    "remit_clipped_sum": jnp.sum(clipped.astype(jnp.float32)),
    "remit_abs_delta_sum": jnp.sum(jnp.abs(delta)),
    "remit_tokens": jnp.sum(valid.astype(jnp.float32)),
    "remit_weight_min": jnp.min(jnp.where(valid, w, jnp.inf)),
    "remit_weight_max": jnp.max(jnp.where(valid, w, -jnp.inf)),
  }
  return loss_sum, maskf.sum(), aux


def remit_loss(
  model: Any,
  batch: Mapping[str, jax.Array],
  *,
  config: ReMiTConfig = ReMiTConfig(),
  chunk_size: int | None = None,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """`sft_loss` with ReMiT weights: `(sum, token count, aux)` for `make_train_step`.

  batch: `tokens [B, T]`, `loss_mask [B, T]`, `guide_logp [B, T]` (the frozen guide's
  `sequence_logprobs` of the same tokens and mask), `base_logp [B, T]` with
  `delta_reference="frozen_base"`, optional `positions`, `segment_ids` (packing).
  aux: `entropy_sum` as `sft_loss`, plus `remit_token_loss`'s.
  """
  if "guide_logp" not in batch:
    raise ValueError("remit_loss: batch['guide_logp'] [B, T] (the guide's log-probs) is missing")
  mask = batch["loss_mask"].astype(jnp.float32)
  segment_ids = batch.get("segment_ids")
  logp, entropy = sequence_logprobs(
    model,
    batch["tokens"],
    mask,
    chunk_size=chunk_size,
    positions=batch.get("positions"),
    segment_ids=segment_ids,
  )
  # Tokens nothing predicts (a row's or a segment's first) have logp = 0: not centred.
  predicted = _predicted(mask, segment_ids)
  loss_sum, _, aux = remit_token_loss(
    logp,
    batch["guide_logp"],
    mask * predicted,
    config=config,
    base_logp=batch.get("base_logp"),
    segment_ids=segment_ids,
  )
  # The denominator is sft_loss's (every target token), so w = 1 is exactly NTP.
  return loss_sum, mask.sum(), {"entropy_sum": entropy.sum(), **aux}


def _predicted(mask: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
  """1 where a previous token of the same segment predicts the position (float32 [B, T])."""
  b = mask.shape[0]
  keep = jnp.concatenate([jnp.zeros((b, 1), bool), jnp.ones_like(mask[:, 1:], bool)], axis=1)
  if segment_ids is not None:
    keep = keep.at[:, 1:].set(segment_ids[:, 1:] == segment_ids[:, :-1])
  return keep.astype(jnp.float32)


def remit_aux_finalize(aux: Mapping[str, jax.Array], denom: jax.Array) -> dict:
  """Merged aux -> metrics: `remit_*_sum` over the centred tokens (`remit_weight_mean`,
  `remit_weight_std`, `remit_clip_frac`, `remit_abs_delta`), other `*_sum` over the loss
  denominator (`entropy`), min / max of the weights as they are."""
  tokens = jnp.maximum(aux["remit_tokens"], 1.0)
  mean = aux["remit_weight_sum"] / tokens
  out = {
    "remit_weight_mean": mean,
    "remit_weight_std": jnp.sqrt(jnp.maximum(aux["remit_weight_sq_sum"] / tokens - mean**2, 0.0)),
    "remit_weight_min": aux["remit_weight_min"],
    "remit_weight_max": aux["remit_weight_max"],
    "remit_clip_frac": aux["remit_clipped_sum"] / tokens,
    "remit_abs_delta": aux["remit_abs_delta_sum"] / tokens,
    "remit_tokens": aux["remit_tokens"],
  }
  for k, v in aux.items():
    if k.endswith("_sum") and not k.startswith("remit_"):
      out[k[: -len("_sum")]] = v / denom
  return out
