"""`config.remit` in the SFT trainer: ReMiT mid-training (`reasoning_jax.train.remit`).

"ReMiT: RL-Guided Mid-Training for Iterative LLM Evolution", Huang et al., arXiv 2602.03075.

`run_sft` with an optional `config.remit` (a dict; absent / None: plain SFT) trains with
`remit_loss` instead of `sft_loss`: the same loop, data, checkpoints and evaluation. Keys:

  guide_workdir    str   a workdir with `checkpoints/` of an SFT or RL run (full fine-tuning)
                         of a model with the learner's tokenizer: the frozen guide (RL model)
  guide_hf_dir     str   or a Hugging Face folder (exactly one of the two)
  delta_reference  str   "current" (default) | "frozen_base"
  weight_map       str   "sigmoid_clip" (default) | "tanh"
  tau              float > 0 (default 1.0)
  eps              float in [0, 1] (default 0.2)
  centre           str   "segment" (default) | "sequence"
  base_workdir     str   frozen_base only: the base's workdir ...
  base_hf_dir      str   ... or HF folder; both empty (default): the run's own initial params

The wiring, in `run_sft`:

  spec = remit_spec(config, error=ConfigError)          # at launch: errors name config.remit.<key>
  remit = setup(spec, ...)                              # guide (and base) loaded, vocab checked
  loss_fn = remit.loss_fn(chunk_size)                   # remit_loss
  make_train_step(..., **remit.step_kwargs)             # min/max-aware aux, weight metrics
  batch = remit.annotate(batch, state)                  # + guide_logp (+ base_logp), per step

The guide's (and base's) forward is a jitted `sequence_logprobs` on the sharded batch run
right before each step. The default base (the run's initial parameters) is rebuilt from the
model source on resume (the same seed gives the same initialisation), so it is not
checkpointed; under LoRA it is the live frozen base with the adapters off (B = 0 at the start,
so the same model) and costs no copy.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.logprobs import sequence_logprobs
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.models.source import (
  ModelSource,
  SourceError,
  abstract_model,
  build_model,
  resolve_from_config,
  resolve_source,
)
from reasoning_jax.train import lora_setup
from reasoning_jax.train.step import merge_aux
from reasoning_jax.train.remit import (
  ReMiTConfig,
  remit_aux_finalize,
  remit_loss,
)

# Keys of `config.remit` with their types.
REMIT_KEYS: dict[str, Any] = {
  "guide_workdir": str,
  "guide_hf_dir": str,
  "delta_reference": str,
  "weight_map": str,
  "tau": (float, int),
  "eps": (float, int),
  "centre": str,
  "base_workdir": str,
  "base_hf_dir": str,
}
PREFIX = "config.remit"
# Text whose ids must agree between the learner's and the guide's tokenizers.
_PROBE = "ReMiT probe: 12 + 345 = 357. \u00e9\u4e2d <|im_end|>\n\t The quick brown fox"


@dataclasses.dataclass(frozen=True)
class ReMiTSpec:
  """A validated `config.remit`: the loss config and where the guide and base come from.

  `guide` / `base`: ("workdir" | "hf", path); `base` None means the run's initial params.
  """

  loss: ReMiTConfig
  guide: tuple[str, str]
  base: tuple[str, str] | None = None


def _where(value: dict, stem: str, error: type, *, required: bool) -> tuple[str, str] | None:
  workdir, hf_dir = value.get(f"{stem}_workdir") or "", value.get(f"{stem}_hf_dir") or ""
  if workdir and hf_dir:
    raise error(f"{PREFIX}.{stem}_workdir and {PREFIX}.{stem}_hf_dir are both set; give one")
  if not (workdir or hf_dir):
    if required:
      raise error(
        f"{PREFIX}.{stem}_workdir (a run's workdir with checkpoints/) or {PREFIX}.{stem}_hf_dir "
        "(a Hugging Face folder) is required: the frozen RL-tuned guide model"
      )
    return None
  return ("workdir", workdir) if workdir else ("hf", hf_dir)


def remit_spec(config: Any, *, error: type = ValueError) -> ReMiTSpec | None:
  """The validated `config.remit` (None when absent or None); `error` naming the key.

  Checks key names and types, the loss fields (`ReMiTConfig`), that exactly one guide source
  is given, that a base source is only given with `delta_reference="frozen_base"`, and that a
  workdir has a `checkpoints/` folder.
  """
  value = config.get("remit") if hasattr(config, "get") else None
  if value is None:
    return None
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if not isinstance(value, dict):
    raise error(f"{PREFIX} must be None or a dict of {list(REMIT_KEYS)}, got {value!r}")
  unknown = set(value) - set(REMIT_KEYS)
  if unknown:
    raise error(f"unknown {PREFIX} keys: {sorted(unknown)}; known: {list(REMIT_KEYS)}")
  for key, kind in REMIT_KEYS.items():
    if value.get(key) is not None and (
      not isinstance(value[key], kind) or isinstance(value[key], bool)
    ):
      raise error(f"{PREFIX}.{key} must be {kind}, got {value[key]!r}")
  fields = {k: value[k] for k in ("delta_reference", "weight_map", "centre") if value.get(k)}
  fields.update({k: float(value[k]) for k in ("tau", "eps") if value.get(k) is not None})
  try:
    loss = ReMiTConfig(**fields, prefix=PREFIX)
  except ValueError as e:
    raise error(str(e)) from None
  guide = _where(value, "guide", error, required=True)
  base = _where(value, "base", error, required=False)
  if base is not None and loss.delta_reference != "frozen_base":
    raise error(
      f"{PREFIX}.base_workdir / base_hf_dir is only used with "
      f"{PREFIX}.delta_reference='frozen_base' (got {loss.delta_reference!r})"
    )
  for stem, where in (("guide", guide), ("base", base)):
    if where is not None and where[0] == "workdir":
      if not os.path.isdir(os.path.join(where[1], "checkpoints")):
        raise error(f"{PREFIX}.{stem}_workdir={where[1]!r} has no checkpoints/ folder")
  return ReMiTSpec(loss, guide, base)


def _tokenizer_fingerprint(tokenizer: Any) -> tuple:
  inner = getattr(tokenizer, "inner", tokenizer)  # PaddedVocab
  backend = getattr(inner, "backend", None)
  vocab = None
  if backend is not None and hasattr(backend, "get_vocab"):
    vocab = sorted(backend.get_vocab(with_added_tokens=True).items())
  return (
    type(inner).__name__,
    inner.vocab_size,
    inner.bos_id,
    inner.eos_id,
    inner.pad_id,
    tuple(inner.encode(_PROBE)),
    vocab,
  )


def check_same_vocab(learner: ModelSource, other: ModelSource, key: str, error: type) -> None:
  """Raises `error` naming `key` unless `other` scores the learner's token ids: the same
  embedding rows (vocab_size) and the same tokenizer."""
  if other.model_config.vocab_size != learner.model_config.vocab_size:
    raise error(
      f"{key}: the model has vocab_size={other.model_config.vocab_size} but the learner has "
      f"{learner.model_config.vocab_size}; ReMiT needs the learner's tokenizer and vocabulary"
    )
  if _tokenizer_fingerprint(other.tokenizer) != _tokenizer_fingerprint(learner.tokenizer):
    raise error(
      f"{key}: its tokenizer ({type(getattr(other.tokenizer, 'inner', other.tokenizer)).__name__})"
      " tokenizes differently from the learner's; ReMiT compares log-probs of the same token "
      "ids, so both must use one tokenizer"
    )


def _run_source_config(saved: dict) -> dict:
  """The model-defining part of a saved run config: an SFT config as it is, an RL config's
  `sft` section with the RL run's `model` (as `reasoning_jax.rl.recipes.sft_config`)."""
  if "sft" in saved and isinstance(saved["sft"], dict):
    out = dict(saved["sft"])
    if saved.get("model"):
      out["model"] = saved["model"]
    out["lora"] = saved.get("lora")  # What the RL checkpoints hold (not the warm start's).
    return out
  return saved


def load_frozen(
  where: tuple[str, str], key: str, learner: ModelSource, mesh: Any, error: type
) -> tuple[nnx.GraphDef, Any]:
  """(graphdef, params placed on `mesh`) of a frozen model from a run's workdir (its newest
  good checkpoint; the model source is read from the saved config) or a Hugging Face folder;
  `error` naming `key` when it cannot be used (missing, LoRA, another vocabulary)."""
  import ml_collections

  from reasoning_jax.checkpoint import TrainCheckpointer

  kind, path = where
  try:
    if kind == "hf":
      source = resolve_source(hf_dir=path, flag=key)
      check_same_vocab(learner, source, key, error)
      model = build_model(source, mesh=mesh)
      graphdef, params = nnx.split(model, nnx.Param)
      rules = rules_for(source.model_config.family)
      return graphdef, sharding_lib.place(params, sharding_lib.param_shardings(params, rules, mesh))
    with TrainCheckpointer(os.path.join(path, "checkpoints")) as ckpt:
      step = ckpt.latest_step()
      if step is None:
        raise error(f"{key}={path!r}: no complete checkpoint in {path}/checkpoints")
      run_config = ckpt.restore(step=step, target={})[1].get("config") or {}
      if step < int(run_config.get("num_steps", step)):  # The run's own (SFT or RL) steps.
        logging.warning(
          "%s=%r: the newest checkpoint is step %d of %d, an interrupted run; using it as it is",
          key,
          path,
          step,
          int(run_config["num_steps"]),
        )
      saved = _run_source_config(run_config)
      if saved.get("lora"):
        raise error(
          f"{key}={path!r} is a LoRA run (its checkpoints hold only adapters); export the "
          f"merged model (config.lora.export_dir) and pass it as {PREFIX}.*_hf_dir"
        )
      source = resolve_from_config(ml_collections.ConfigDict(saved), flag=f"{key} (saved model)")
      check_same_vocab(learner, source, key, error)
      graphdef, abstract = nnx.split(abstract_model(source), nnx.Param)
      rules = rules_for(source.model_config.family)
      shardings = sharding_lib.param_shardings(abstract, rules, mesh)
      target = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
      )
      _, restored = ckpt.restore(step=step, target={"params": target})
    return graphdef, restored["params"]
  except (SourceError, FileNotFoundError, KeyError, TypeError) as e:
    raise error(f"{key}={path!r}: {e}") from None


def _logprob_fn(graphdef: nnx.GraphDef, mesh: Any, chunk_size: int | None) -> Callable:
  """Jitted `fn(params, batch) -> logp [B, T]` (no gradient) of the model `graphdef`."""

  @functools.partial(jax.jit, out_shardings=sharding_lib.batch_sharding(mesh, 2))
  def fn(params, inputs):
    model = nnx.merge(graphdef, params)
    logp, _ = sequence_logprobs(
      model,
      inputs["tokens"],
      inputs["loss_mask"],
      chunk_size=chunk_size,
      positions=inputs.get("positions"),
      segment_ids=inputs.get("segment_ids"),
    )
    return jax.lax.stop_gradient(logp)

  def run(params, batch):
    inputs = {
      k: batch[k] for k in ("tokens", "loss_mask", "positions", "segment_ids") if k in batch
    }
    with jax.set_mesh(mesh):
      return fn(params, inputs)

  return run


class ReMiT:
  """The ReMiT pieces of one `run_sft`: loss, step keywords and the per-step batch annotation."""

  def __init__(self, spec: ReMiTSpec, guide, base, chunk_size: int | None, mesh: Any):
    self.spec = spec
    self._guide_params = guide[1]
    self._guide = _logprob_fn(guide[0], mesh, chunk_size)
    self._base = base  # None, or (graphdef, params or fn(state) -> params)
    self._base_fn = None if base is None else _logprob_fn(base[0], mesh, chunk_size)
    self._chunk_size = chunk_size

  def loss_fn(self) -> Callable:
    """`fn(model, batch) -> (sum, count, aux)` for `make_train_step`: `remit_loss`."""
    config, chunk_size = self.spec.loss, self._chunk_size
    return lambda model, batch: remit_loss(model, batch, config=config, chunk_size=chunk_size)

  @property
  def step_kwargs(self) -> dict[str, Any]:
    """`make_train_step` keywords: min/max-aware aux merge and the weight metrics."""
    return {"aux_merge": merge_aux, "aux_finalize": remit_aux_finalize}

  def annotate(self, batch: dict[str, jax.Array], state: Any) -> dict[str, jax.Array]:
    """`batch` plus `guide_logp` (and `base_logp` for frozen_base), `[B, T]` float32, computed
    by the frozen models on the same sharded tokens; call before the step (it donates state)."""
    out = dict(batch)
    out["guide_logp"] = self._guide(self._guide_params, batch)
    if self._base is not None:
      params = self._base[1](state) if callable(self._base[1]) else self._base[1]
      out["base_logp"] = self._base_fn(params, batch)
    return out


def _key(stem: str, where: tuple[str, str]) -> str:
  return f"{PREFIX}.{stem}_{'workdir' if where[0] == 'workdir' else 'hf_dir'}"


def setup(
  spec: ReMiTSpec | None,
  *,
  source: ModelSource,
  model: nnx.Module,
  state: Any,
  shardings: Any,
  lora: Any,
  mesh: Any,
  chunk_size: int | None,
  error: type = ValueError,
) -> ReMiT | None:
  """Loads the guide (and, for frozen_base, the base) for `run_sft`; None without a spec.

  `model`, `state`, `shardings`: the learner as built and placed, before any step or restore
  (the default base is a copy of `state.params`; under LoRA the base model with the adapters
  off, on the live frozen weights).
  """
  if spec is None:
    return None
  guide = load_frozen(spec.guide, _key("guide", spec.guide), source, mesh, error)
  base = None
  if spec.loss.delta_reference == "frozen_base":
    if spec.base is not None:
      base = load_frozen(spec.base, _key("base", spec.base), source, mesh, error)
    elif lora is not None:
      base = (lora_setup.reference_graphdef(model), lora_setup.all_params)
    else:  # A copy: the step donates (deletes) the learner's buffers.
      graphdef = nnx.split(model, nnx.Param)[0]
      copy = jax.jit(lambda p: jax.tree_util.tree_map(jnp.copy, p), out_shardings=shardings.params)
      base = (graphdef, copy(state.params))
  return ReMiT(spec, guide, base, chunk_size, mesh)
