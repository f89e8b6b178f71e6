"""`collect_rollouts(mesh=)`: the rows (prompts x G) are split over the mesh's batch axes for
generation (plain or speculative) and the log-prob passes, padded to a multiple of the shards,
with the same batch (and speculative statistics) as unsplit rollouts (8 host devices,
tests/conftest.py)."""

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.rl import rollout
from reasoning_jax.rl.rollout import collect_rollouts, make_logprob_fn
from tests.rl.test_trainer import DigitTokenizer, ones_fraction

PROMPTS = {
  "prompts": np.array([[1, 2, 0], [3, 1, 2]], np.int32),
  "prompt_lengths": np.array([2, 3], np.int32),
  "answer": np.array(["", ""]),
}


@pytest.fixture(scope="module")
def policy():
  config = get_preset("tiny-qwen3").replace(
    vocab_size=6, num_layers=1, hidden_size=32, intermediate_size=64, head_dim=16
  )
  return nnx.split(Transformer(config, rngs=nnx.Rngs(1)), nnx.Param)


def _collect(graphdef, params, *, group_size, temperature, mesh=None, **kwargs):
  return collect_rollouts(
    graphdef,
    params,
    PROMPTS,
    tokenizer=DigitTokenizer(),
    reward_fn=ones_fraction,
    group_size=group_size,
    max_new_tokens=5,
    key=jax.random.key(3),
    temperature=temperature,
    logprob_fn=make_logprob_fn(graphdef),
    ref_params=params,
    mesh=mesh,
    **kwargs,
  )


def _assert_same(a, b):
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_array_equal(a.mask, b.mask)
  np.testing.assert_array_equal(a.rewards, b.rewards)
  np.testing.assert_array_equal(a.group_ids, b.group_ids)
  for name in ("old_logp", "ref_logp", "sampler_logp"):
    np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
  "group_size,temperature", [(4, 1.0), (3, 0.0)], ids=["sampled_8_rows", "greedy_6_rows_padded"]
)
def test_rows_split_over_the_mesh_give_the_same_batch(policy, monkeypatch, group_size, temperature):
  graphdef, params = policy
  mesh = sharding.make_mesh({"data": 8})
  seen = []
  real_generate = rollout.generate

  def spy(model, prompts, lengths, **kwargs):
    seen.append(prompts)
    return real_generate(model, prompts, lengths, **kwargs)

  monkeypatch.setattr(rollout, "generate", spy)
  plain = _collect(graphdef, params, group_size=group_size, temperature=temperature)
  replicated = jax.device_put(params, NamedSharding(mesh, P()))
  split = _collect(graphdef, replicated, group_size=group_size, temperature=temperature, mesh=mesh)
  placed = seen[-1]
  assert placed.shape[0] == 8  # 2 prompts x G rows, padded to the 8 row shards.
  assert placed.sharding.spec == sharding.batch_spec(mesh) and len(placed.sharding.device_set) == 8
  assert split.tokens.shape[0] == 2 * group_size
  _assert_same(split, plain)


def test_rows_split_with_params_sharded_by_the_rules(policy):
  """fsdp x data: the params sharded by the model's partition rules, the rows over both
  batch axes; greedy rollouts and log-probs agree with the unsplit ones."""
  graphdef, params = policy
  mesh = sharding.make_mesh({"data": 4, "fsdp": 2})
  shardings = sharding.param_shardings(params, rules_for("qwen3"), mesh)
  sharded = jax.device_put(params, shardings)
  plain = _collect(graphdef, params, group_size=3, temperature=0.0)
  split = _collect(graphdef, sharded, group_size=3, temperature=0.0, mesh=mesh)
  _assert_same(split, plain)


def test_local_replicas_copy_params_onto_the_rollout_devices(policy):
  """The per-host rollout engine's params: a global (fsdp-sharded) tree becomes a full copy on
  every device of a local mesh, values unchanged, one compiled gather for repeated calls."""
  _, params = policy
  mesh = sharding.make_mesh({"fsdp": 8})
  sharded = jax.device_put(params, sharding.param_shardings(params, rules_for("qwen3"), mesh))
  assert any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(sharded))
  local_mesh = sharding.make_mesh({"data": -1}, devices=jax.devices()[2:6])
  for _ in range(2):
    local = sharding.local_replicas(sharded, mesh, local_mesh)
  for got, want in zip(jax.tree.leaves(local), jax.tree.leaves(params)):
    assert got.sharding == NamedSharding(local_mesh, P())
    assert got.sharding.device_set == set(jax.devices()[2:6])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert sharding._replicate(mesh)._cache_size() == 1


@pytest.mark.parametrize(
  "group_size,temperature", [(4, 1.0), (3, 0.0)], ids=["sampled_8_rows", "greedy_6_rows_padded"]
)
def test_speculative_rollouts_split_over_the_mesh(policy, monkeypatch, group_size, temperature):
  """With a draft the speculative decode is split too: same batch, same acceptance statistics
  (the padding rows of the greedy case count in none)."""
  graphdef, params = policy
  draft_params = jax.tree.map(lambda x: x * 0.9, params)
  mesh = sharding.make_mesh({"data": 8})
  seen = []
  real = rollout.speculative_generate

  def spy(model, draft, prompts, lengths, **kwargs):
    seen.append((prompts, kwargs["rows"]))
    return real(model, draft, prompts, lengths, **kwargs)

  monkeypatch.setattr(rollout, "speculative_generate", spy)
  stats = [{}, {}]
  plain = _collect(
    graphdef,
    params,
    group_size=group_size,
    temperature=temperature,
    draft=nnx.merge(graphdef, draft_params),
    num_draft=2,
    speculative_stats=stats[0],
  )
  replicate = lambda tree: jax.device_put(tree, NamedSharding(mesh, P()))  # noqa: E731
  split = _collect(
    graphdef,
    replicate(params),
    group_size=group_size,
    temperature=temperature,
    mesh=mesh,
    draft=nnx.merge(graphdef, replicate(draft_params)),
    num_draft=2,
    speculative_stats=stats[1],
  )
  placed, rows = seen[-1]
  assert placed.shape[0] == 8 and rows == 2 * group_size
  assert len(placed.sharding.device_set) == 8
  _assert_same(split, plain)
  for name in ("emitted", "row_target_calls", "target_calls"):
    assert stats[1][name] == stats[0][name], name
  np.testing.assert_array_equal(stats[1]["acceptance_histogram"], stats[0]["acceptance_histogram"])
  np.testing.assert_allclose(stats[1]["acceptance_rate"], stats[0]["acceptance_rate"], atol=1e-6)
