"""ReMiT (arXiv 2602.03075): the D -> w map, the weighted NTP loss and `config.remit` in
`run_sft` (the spec's numbers, w = 1 is NTP, detached weights, per-segment centring, resume)."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.logprobs import sequence_logprobs
from reasoning_jax.models.source import build_model, resolve_source
from reasoning_jax.train.metrics import read_metrics
from reasoning_jax.train.step import merge_aux
from reasoning_jax.train.remit import (
  ReMiTConfig,
  remit_aux_finalize,
  remit_loss,
  remit_token_loss,
  remit_weights,
)
from reasoning_jax.train.remit_setup import check_same_vocab
from reasoning_jax.train.sft import run_sft
from reasoning_jax.train.sft_config import ConfigError, model_source
from reasoning_jax.train.sft_config import validate_config
from reasoning_jax.train.step import sft_loss
from tests.train.test_sft import tiny_config

D = jnp.array([[0.5, -0.2, 1.2, -0.9]])
ONES = jnp.ones((1, 4))


def test_spec_example_sigmoid_clip():
  # Dc = [0.35, -0.35, 1.05, -1.05]; 2 sigmoid(Dc) = [1.1732, 0.8268, 1.4815, 0.5185].
  w = remit_weights(D, ONES, eps=0.2)
  assert w.dtype == jnp.float32
  np.testing.assert_allclose(w[0], [1.1732, 0.8268, 1.2, 0.8], atol=1e-4)


def test_tanh_map():
  w = remit_weights(D, ONES, weight_map="tanh", eps=0.2, tau=0.5)
  dc = np.array([0.35, -0.35, 1.05, -1.05])
  np.testing.assert_allclose(w[0], 1 + 0.2 * np.tanh(dc / 1.0), rtol=1e-6)
  np.testing.assert_allclose(w[0, :2], [1.0673, 0.9327], atol=1e-4)  # 0.2 tanh(0.35) = 0.0673


def _logp(seed=0, shape=(3, 6)):
  return -jax.random.uniform(jax.random.key(seed), shape, minval=0.1, maxval=3.0)


MASK = jnp.array([[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0]], jnp.float32)


def test_zero_gap_is_ntp_bitwise():
  logp = _logp() * MASK
  loss, count, aux = remit_token_loss(logp, logp, MASK)
  assert float(loss) == float(jnp.sum(-logp)) and float(count) == float(MASK.sum())
  w = remit_weights(jnp.zeros_like(logp), MASK)
  assert np.array_equal(np.asarray(w), np.asarray(MASK))  # 1 on tokens, 0 on masked ones.
  assert float(aux["remit_weight_min"]) == float(aux["remit_weight_max"]) == 1.0


@pytest.mark.parametrize("weight_map", ["sigmoid_clip", "tanh"])
def test_constant_offset_is_ntp(weight_map):
  logp = _logp() * MASK
  config = ReMiTConfig(weight_map=weight_map)
  loss, count, _ = remit_token_loss(logp, logp + 0.7, MASK, config=config)
  np.testing.assert_allclose(loss, jnp.sum(-logp), rtol=1e-6)
  w = remit_weights(jnp.full(MASK.shape, -1.3), MASK, weight_map=weight_map)
  np.testing.assert_allclose(w, MASK, atol=1e-6)


@pytest.mark.parametrize("reference", ["current", "frozen_base"])
def test_gradient_is_minus_weight_over_tokens(reference):
  logp, guide, base = _logp(0) * MASK, _logp(1) * MASK, _logp(2) * MASK
  config = ReMiTConfig(delta_reference=reference, eps=0.5)

  def mean_loss(lp):
    s, n, _ = remit_token_loss(lp, guide, MASK, config=config, base_logp=base)
    return s / n

  grad = jax.grad(mean_loss)(logp)
  w = remit_weights(guide - (logp if reference == "current" else base), MASK, eps=0.5)
  np.testing.assert_allclose(grad, -w / MASK.sum(), rtol=1e-6, atol=1e-8)
  assert np.ptp(np.asarray(w)[np.asarray(MASK) > 0]) > 0.1  # Non-trivial weights.


def test_weights_are_detached_through_logits():
  """d loss / d logits equals that of NTP weighted by the same weights held constant."""
  logits = jax.random.normal(jax.random.key(3), (3, 6, 11))
  targets = jax.random.randint(jax.random.key(4), (3, 6), 0, 11)
  guide = _logp(5) * MASK

  def token_logp(lg):
    return jnp.take_along_axis(jax.nn.log_softmax(lg), targets[..., None], -1)[..., 0] * MASK

  w = remit_weights(guide - token_logp(logits), MASK)
  g_remit = jax.grad(lambda lg: remit_token_loss(token_logp(lg), guide, MASK)[0])(logits)
  g_weighted = jax.grad(lambda lg: jnp.sum(MASK * w * -token_logp(lg)))(logits)
  np.testing.assert_allclose(g_remit, g_weighted, rtol=1e-6, atol=1e-7)


def test_per_segment_centring_equals_each_segment_alone():
  delta = jnp.array([[0.5, -0.2, 1.2, 3.0, -0.9, 0.4, 9.0, 9.0]])
  mask = jnp.array([[1, 1, 1, 1, 1, 1, 0, 0]])
  segments = jnp.array([[1, 1, 1, 2, 2, 2, 0, 0]])
  w = remit_weights(delta, mask, segments, eps=0.5)
  first = remit_weights(delta[:, :3], mask[:, :3], eps=0.5)
  second = remit_weights(delta[:, 3:6], mask[:, 3:6], eps=0.5)
  np.testing.assert_allclose(w[0, :6], jnp.concatenate([first, second], axis=1)[0], rtol=1e-6)
  assert np.all(np.asarray(w[0, 6:]) == 0)
  whole_row = remit_weights(delta, mask, eps=0.5)
  assert not np.allclose(w, whole_row)
  # In the loss: centre="segment" uses the segments, centre="sequence" the whole row.
  logp = -jnp.ones((1, 8)) * mask
  for centre, weights in (("segment", w), ("sequence", whole_row)):
    config = ReMiTConfig(eps=0.5, centre=centre)
    s, _, _ = remit_token_loss(logp, logp + delta, mask, config=config, segment_ids=segments)
    np.testing.assert_allclose(s, jnp.sum(weights), rtol=1e-6)


def test_masked_tokens_are_ignored():
  delta = jnp.array([[0.5, -0.2, jnp.nan, 1.2, -0.9, 1e6]])
  mask = jnp.array([[1, 1, 0, 1, 1, 0]])
  w = remit_weights(delta, mask)
  np.testing.assert_allclose(w[0], [1.1732, 0.8268, 0.0, 1.2, 0.8, 0.0], atol=1e-4)


def test_frozen_base_uses_base_logp():
  logp, guide, base = _logp(0) * MASK, _logp(1) * MASK, _logp(2) * MASK
  config = ReMiTConfig(delta_reference="frozen_base")
  s, _, aux = remit_token_loss(logp, guide, MASK, config=config, base_logp=base)
  w = remit_weights(guide - base, MASK)
  np.testing.assert_allclose(s, jnp.sum(MASK * w * -logp), rtol=1e-6)
  metrics = remit_aux_finalize(aux, MASK.sum())
  np.testing.assert_allclose(
    metrics["remit_abs_delta"], jnp.sum(jnp.abs(guide - base)) / MASK.sum()
  )
  with pytest.raises(ValueError, match="base_logp"):
    remit_token_loss(logp, guide, MASK, config=config)


def test_micro_batch_aux_merge_equals_full_batch():
  logp, guide = _logp(0) * MASK, _logp(1) * MASK
  config = ReMiTConfig(eps=0.3)
  full = remit_token_loss(logp, guide, MASK, config=config)
  halves = [
    remit_token_loss(logp[s], guide[s], MASK[s], config=config) for s in (slice(0, 2), slice(2, 3))
  ]
  merged = merge_aux(halves[0][2], halves[1][2])
  want, got = remit_aux_finalize(full[2], full[1]), remit_aux_finalize(merged, full[1])
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
  assert 0 < float(want["remit_clip_frac"]) < 1 and float(want["remit_weight_max"]) == np.float32(
    1.3
  )


class _Bigram:
  """The smallest `sequence_logprobs` model: hidden state = the token's embedding."""

  def __init__(self, vocab=13, hidden=4):
    self.config = type("Config", (), {"vocab_size": vocab})()
    self.embed = jax.random.normal(jax.random.key(7), (vocab, hidden))
    self.kernel = jax.random.normal(jax.random.key(8), (hidden, vocab))

  def forward(self, tokens, positions=None, segment_ids=None):
    return self.embed[tokens], None

  def unembed_kernel(self):
    return self.kernel


def test_remit_loss_on_a_model_equals_sft_loss_when_guide_is_learner():
  model = _Bigram()
  tokens = jax.random.randint(jax.random.key(0), (2, 9), 0, 13)
  mask = jnp.array([[0, 0, 1, 1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1, 1, 1, 1]], jnp.int32)
  segments = jnp.array([[1] * 7 + [0, 0], [1] * 4 + [2] * 5], jnp.int32)
  batch = {"tokens": tokens, "loss_mask": mask, "segment_ids": segments}
  guide, _ = sequence_logprobs(model, tokens, mask.astype(jnp.float32), segment_ids=segments)
  got, want = remit_loss(model, {**batch, "guide_logp": guide}), sft_loss(model, batch)
  assert float(got[0]) == float(want[0]) and float(got[1]) == float(want[1]) == 13
  # The first token of segment 2 (nothing predicts it) is not centred: 5 + 8 - 1 tokens are.
  assert float(got[2]["remit_tokens"]) == 12
  # A shifted guide reweights: the loss is the weighted NTP of remit_weights.
  shifted = guide + jax.random.normal(jax.random.key(9), guide.shape) * mask
  got = remit_loss(model, {**batch, "guide_logp": shifted}, config=ReMiTConfig(eps=0.5))
  logp, _ = sequence_logprobs(model, tokens, mask.astype(jnp.float32), segment_ids=segments)
  predicted = mask.at[1, 4].set(0)
  w = remit_weights(shifted - logp, predicted, segments, eps=0.5)
  np.testing.assert_allclose(got[0], jnp.sum(w * -logp), rtol=1e-6)
  with pytest.raises(ValueError, match="guide_logp"):
    remit_loss(model, batch)


@pytest.mark.parametrize(
  "fields,match",
  [
    (dict(delta_reference="ref"), "delta_reference"),
    (dict(weight_map="relu"), "weight_map"),
    (dict(tau=0.0), "tau"),
    (dict(eps=1.5), "eps"),
    (dict(centre="document"), "centre"),
  ],
)
def test_remit_config_errors(fields, match):
  with pytest.raises(ValueError, match=match):
    ReMiTConfig(**fields)


def _guide_workdir(config, directory, *, rl=False):
  """A workdir holding one checkpoint: the learner's own initial model (seed, source), saved
  like an SFT run, or like an RL run (`rl`: the model source in the config's `sft` section)."""
  from reasoning_jax.checkpoint import TrainCheckpointer

  model = build_model(model_source(config), seed=config.seed)
  saved = {"sft": config.to_dict(), "loss": "dispo"} if rl else config.to_dict()
  with TrainCheckpointer(os.path.join(directory, "checkpoints")) as ckpt:
    ckpt.save(3, {"params": nnx.state(model, nnx.Param), "config": saved}, wait=True)
  return str(directory)


@pytest.mark.parametrize(
  "remit,match",
  [
    ({"guide_workdir": "G", "bogus": 1}, "bogus"),
    ({"delta_reference": "current"}, "config.remit.guide_workdir"),
    ({"guide_workdir": "G", "guide_hf_dir": "/x"}, "both set"),
    ({"guide_workdir": "G", "eps": -0.1}, "config.remit.eps"),
    ({"guide_workdir": "G", "tau": "1"}, "config.remit.tau"),
    ({"guide_workdir": "G", "base_workdir": "G"}, "frozen_base"),
    ({"guide_workdir": "/nonexistent"}, "checkpoints/"),
    ("yes", "config.remit must be"),
  ],
)
def test_config_remit_errors_name_the_key(tmp_path, remit, match):
  (tmp_path / "G" / "checkpoints").mkdir(parents=True)
  if isinstance(remit, dict) and remit.get("guide_workdir") == "G":
    remit["guide_workdir"] = str(tmp_path / "G")
  if isinstance(remit, dict) and remit.get("base_workdir") == "G":
    remit["base_workdir"] = str(tmp_path / "G")
  config = tiny_config(tmp_path / "run", tmp_path / "data")
  config.remit = ml_collections.ConfigDict(remit) if isinstance(remit, dict) else remit
  with pytest.raises(ConfigError, match=match):
    validate_config(config)


def test_guide_with_another_vocabulary_is_refused():
  learner = resolve_source(preset="tiny-qwen3")
  other = resolve_source(preset="tiny-qwen3", model_overrides={"vocab_size": 1024})
  with pytest.raises(ConfigError, match="config.remit.guide_workdir.*vocab_size=1024"):
    check_same_vocab(learner, other, "config.remit.guide_workdir", ConfigError)
  check_same_vocab(learner, learner, "config.remit.guide_workdir", ConfigError)


def _losses(workdir):
  return {r["step"]: r for r in read_metrics(workdir) if "train/loss" in r}


def test_run_sft_with_remit_and_resume(tmp_path):
  """Guide = the learner's initial model. frozen_base (base = the initial params): D = 0 at
  every step, so the run is NTP, also across a resume (the base is rebuilt from the source,
  not restored). delta_reference=current: step 1 is NTP too (D = 0, w = 1), and once the
  learner has moved the weights move."""
  small = dict(num_steps=1, warmup_steps=0, eval_examples=2, eval_max_new_tokens=2)
  base = tiny_config(tmp_path / "base", tmp_path / "data", checkpoint_every=1, **small)
  guide = _guide_workdir(base, tmp_path / "guide")
  base.remit = ml_collections.ConfigDict(
    {"guide_workdir": guide, "delta_reference": "frozen_base", "weight_map": "tanh"}
  )
  run_sft(base)
  base.num_steps = 2
  assert run_sft(base)["step"] == 2  # Resumed from step 1.
  ntp = _losses(base.workdir)
  for step in (1, 2):
    assert ntp[step]["train/remit_abs_delta"] == 0.0
    assert ntp[step]["train/remit_weight_min"] == ntp[step]["train/remit_weight_max"] == 1.0

  # An RL run's workdir as the guide; the model source comes from its config's `sft`.
  rl_guide = _guide_workdir(base, tmp_path / "rl_guide", rl=True)
  current = tiny_config(tmp_path / "current", tmp_path / "data", **{**small, "num_steps": 2})
  current.remit = ml_collections.ConfigDict({"guide_workdir": rl_guide, "eps": 0.5})
  run_sft(current)
  got = _losses(current.workdir)
  np.testing.assert_allclose(got[1]["train/loss"], ntp[1]["train/loss"], rtol=1e-5)
  assert got[1]["train/remit_abs_delta"] < 1e-5
  np.testing.assert_allclose(got[1]["train/remit_weight_mean"], 1.0, atol=1e-5)
  assert got[2]["train/remit_abs_delta"] > 1e-4  # The learner moved: the weights move too.
  assert got[2]["train/remit_weight_max"] > got[2]["train/remit_weight_min"]
  assert got[2]["train/loss"] != ntp[2]["train/loss"]


def test_run_sft_with_remit_lora_frozen_base(tmp_path):
  """Under LoRA the default base is the live frozen model with the adapters off: the initial
  model, so D = guide - base stays 0 after the adapters have trained."""
  config = tiny_config(
    tmp_path / "lora", tmp_path / "data", num_steps=2, eval_examples=2, eval_max_new_tokens=2
  )
  config.warmup_steps = 0
  guide = _guide_workdir(config, tmp_path / "guide")
  config.lora = ml_collections.ConfigDict({"rank": 2, "alpha": 4.0})
  config.remit = ml_collections.ConfigDict(
    {"guide_workdir": guide, "delta_reference": "frozen_base"}
  )
  run_sft(config)
  got = _losses(config.workdir)
  assert got[2]["train/loss"] != got[1]["train/loss"]  # The adapters trained.
  assert got[2]["train/remit_abs_delta"] == 0.0


def test_lora_guide_workdir_is_refused(tmp_path):
  from reasoning_jax import sharding as sharding_lib
  from reasoning_jax.train.remit_setup import load_frozen

  config = tiny_config(tmp_path / "run", tmp_path / "data")
  config.lora = ml_collections.ConfigDict({"rank": 2})
  guide = _guide_workdir(config, tmp_path / "guide")
  mesh = sharding_lib.make_mesh({"data": -1})
  key = "config.remit.guide_workdir"
  with pytest.raises(ConfigError, match=f"{key}=.* is a LoRA run"):
    load_frozen(("workdir", guide), key, model_source(config), mesh, ConfigError)
