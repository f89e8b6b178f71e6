"""The attacked models: configs, the forward from embeddings, conversion, jitted evaluation."""

from __future__ import annotations

from typing import Any

from reasoning_jax.evaluate.monotone_attack.hotflip import hotflip
from reasoning_jax.evaluate.monotone_attack.task import IGNORE, task_vocab
from reasoning_jax.layers.monotone import MonotoneFFN
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer


def model_config_for(config, ffn: str):
  """The ModelConfig of `config.model` with FFN `ffn` and the task's vocabulary."""
  vocab, _, _ = task_vocab(int(config.task.num_filler), int(config.task.num_content))
  m = config.model
  return get_preset(m.preset).replace(
    vocab_size=vocab,
    hidden_size=m.hidden_size,
    intermediate_size=m.intermediate_size,
    num_layers=m.num_layers,
    num_heads=m.num_heads,
    num_kv_heads=m.num_heads,
    head_dim=m.hidden_size // m.num_heads,
    ffn=ffn,
    mlp_bias=m.mlp_bias,
    **dict(m.overrides),
  )


def forward_from_embeddings(model, embeds):
  """Logits `[B, T, V]` from input embeddings `[B, T, H]`."""
  hidden, _ = model.forward(None, inputs_embeds=embeds)
  return model.unembed(hidden)


def convert_to_monotone(dense_model, monotone_config, *, eps: float, seed: int):
  """A monotone-FFN copy of `dense_model`: other params copied, FFNs V = softplus^-1(|W|+eps)."""
  from flax import nnx

  mono = Transformer(monotone_config, rngs=nnx.Rngs(seed))
  flat_dense = dict(nnx.to_flat_state(nnx.state(dense_model, nnx.Param)))
  for path, var in nnx.to_flat_state(nnx.state(mono, nnx.Param)):
    if "ffn" not in path:
      var[...] = flat_dense[path][...]
  for dense_block, mono_block in zip(dense_model.layers, mono.layers):
    if not isinstance(mono_block.ffn, MonotoneFFN):
      raise ValueError(f"monotone_config must use a monotone FFN, got {monotone_config.ffn!r}")
    mono_block.ffn.load_dense(up=dense_block.ffn.up[...], down=dense_block.ffn.down[...], eps=eps)
    if mono_block.ffn.up_bias is not None:
      mono_block.ffn.up_bias[...] = dense_block.ffn.up_bias[...]
      mono_block.ffn.down_bias[...] = dense_block.ffn.down_bias[...]
  return mono


def example_losses(logits, targets, alt_targets):
  """Per-example mean target NLL and accuracy (either synonym counts as right): `[B]` each.

  logits `[B, T, V]`; targets / alt_targets `[B, T]` with IGNORE outside the summary.
  """
  import jax
  import jax.numpy as jnp

  weights = (targets != IGNORE).astype(jnp.promote_types(logits.dtype, jnp.float32))
  safe = jnp.where(targets != IGNORE, targets, 0)
  logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), -1)
  nll = -jnp.take_along_axis(logp, safe[..., None], -1)[..., 0] * weights
  pred = jnp.argmax(logits, -1)
  ok = ((pred == safe) | (pred == jnp.where(alt_targets != IGNORE, alt_targets, 0))) * weights
  count = jnp.maximum(weights.sum(-1), 1.0)
  return nll.sum(-1) / count, ok.sum(-1) / count


_FNS: dict[Any, dict[str, Any]] = {}


def attack_functions(model_config, graphdef, num_flips: int) -> dict[str, Any]:
  """Jitted functions of `(params, ...)`, compiled once per (model config, num_flips):

  * clean(params, inputs, targets, alt) -> (loss `[B]`, accuracy `[B]`);
  * hotflip(params, inputs, targets, alt, position_mask, candidate_mask) -> (adv loss, adv
    accuracy, adv ids);
  * losses(params, inputs `[C, N, T]`, targets, alt) -> (loss, accuracy) `[C, N]` (UAT trials);
  * trigger_grad(params, inputs `[N, T]`, targets, alt, trigger_len) -> d mean loss / d
    (embeddings of the first `trigger_len` positions) `[trigger_len, H]`.
  """
  key = (model_config, int(num_flips))
  if key not in _FNS:
    _FNS[key] = _make_functions(graphdef, int(num_flips))
  return _FNS[key]


def _make_functions(graphdef, num_flips: int) -> dict[str, Any]:
  import functools

  import jax
  import jax.numpy as jnp
  from flax import nnx

  @jax.jit
  def clean(params, inputs, targets, alt):
    model = nnx.merge(graphdef, params)
    return example_losses(model(inputs), targets, alt)

  @jax.jit
  def attack(params, inputs, targets, alt, position_mask, candidate_mask):
    model = nnx.merge(graphdef, params)

    def loss_fn(embeds):
      return example_losses(forward_from_embeddings(model, embeds), targets, alt)[0]

    adv, _, _ = hotflip(
      loss_fn, model.embed[...], inputs, position_mask, candidate_mask, num_flips=num_flips
    )
    loss, acc = example_losses(model(adv), targets, alt)
    return loss, acc, adv

  @jax.jit
  def losses(params, inputs, targets, alt):
    model = nnx.merge(graphdef, params)
    c, n, t = inputs.shape
    loss, acc = example_losses(
      model(inputs.reshape(c * n, t)), jnp.tile(targets, (c, 1)), jnp.tile(alt, (c, 1))
    )
    return loss.reshape(c, n), acc.reshape(c, n)

  @functools.partial(jax.jit, static_argnames="trigger_len")
  def trigger_grad(params, inputs, targets, alt, trigger_len):
    model = nnx.merge(graphdef, params)
    embeds = jnp.take(model.embed[...], inputs, axis=0)

    def mean_loss(trig):
      e = embeds.at[:, :trigger_len].set(jnp.broadcast_to(trig, (inputs.shape[0],) + trig.shape))
      return example_losses(forward_from_embeddings(model, e), targets, alt)[0].mean()

    return jax.grad(mean_loss)(embeds[0, :trigger_len])

  return {"clean": clean, "hotflip": attack, "losses": losses, "trigger_grad": trigger_grad}
