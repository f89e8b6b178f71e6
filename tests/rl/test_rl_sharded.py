"""reasoning_jax.rl on inputs sharded over 8 host CPU devices equals the unsharded result.

tests/conftest.py forces 8 host devices; rows (N) are sharded over a 1-D "data" mesh, so
groups of G=4 rows span two devices and group statistics need cross-device reductions.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from reasoning_jax import rl

LOSSES = ["ppo_clip", "grpo", "dapo", "dr_grpo", "cispo", "dispo"]
N, T, G = 16, 4, 4


@pytest.fixture(scope="module")
def mesh():
  if jax.device_count() < 8:
    pytest.skip("needs 8 devices (tests/conftest.py sets --xla_force_host_platform_device_count)")
  return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _data():
  rng = np.random.default_rng(0)
  logp = -rng.uniform(0.1, 2.0, (N, T)).astype(np.float32)
  lengths = rng.integers(0, T + 1, N)
  return {
    "rewards": rng.integers(0, 2, N).astype(np.float32),
    "group_ids": np.repeat(rng.permutation(100)[: N // G], G).astype(np.int32),
    "valid": lengths > 0,
    "logp": logp,
    "old_logp": logp + rng.normal(0, 0.3, (N, T)).astype(np.float32),
    "ref_logp": logp + rng.normal(0, 0.3, (N, T)).astype(np.float32),
    "mask": (np.arange(T)[None] < lengths[:, None]).astype(np.int32),
    "entropy": rng.uniform(0, 1, (N, T)).astype(np.float32),
    "sampler_logp": logp + rng.normal(0, 0.1, (N, T)).astype(np.float32),
  }


def _everything(d):
  adv = rl.grpo_advantages(d["rewards"], group_size=G, valid=d["valid"])
  out = {
    "adv": adv,
    "adv_ids": rl.grpo_advantages(d["rewards"], group_ids=d["group_ids"], valid=d["valid"]),
    "rloo": rl.rloo_advantages(d["rewards"], group_size=G),
    "keep": rl.dynamic_sampling_filter(d["rewards"], group_size=G).row_keep,
    "kl_reward": rl.kl_penalized_rewards(
      d["rewards"], d["old_logp"], d["ref_logp"], d["mask"], beta=0.1
    ),
  }
  for name in LOSSES:
    loss = rl.with_truncated_is(rl.make_loss(name))
    kw = {"ref_logp": d["ref_logp"]} if name == "grpo" else {}

    def f(lp, loss=loss, kw=kw):
      o = loss(
        lp,
        d["old_logp"],
        adv,
        d["mask"],
        entropy=d["entropy"],
        sampler_logp=d["sampler_logp"],
        **kw,
      )
      return o.loss, o

    (_, o), g = jax.value_and_grad(f, has_aux=True)(d["logp"])
    out[name] = (o.loss_sum, o.denominator, rl.summarize_aux(o.aux), g)
  return out


def test_sharded_equals_unsharded(mesh):
  data = {k: jnp.asarray(v) for k, v in _data().items()}
  rows = {k: NamedSharding(mesh, P("data", *([None] * (v.ndim - 1)))) for k, v in data.items()}
  sharded = jax.device_put(data, rows)
  assert sharded["logp"].sharding.spec == P("data", None)
  assert sharded["logp"].addressable_shards[0].data.shape == (N // 8, T)
  step = jax.jit(_everything)
  expected = step(data)
  got = step(sharded)
  assert got["dapo"][3].shape == (N, T)
  flat_expected, tree = jax.tree_util.tree_flatten(expected)
  flat_got, tree_got = jax.tree_util.tree_flatten(got)
  assert tree == tree_got
  for path, a, b in zip(jax.tree_util.tree_flatten_with_path(expected)[0], flat_expected, flat_got):
    np.testing.assert_allclose(
      np.asarray(b), np.asarray(a), rtol=2e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path[0])
    )


def test_eager_calls_on_sharded_inputs(mesh):
  # Eager entry points validate concrete sharded arrays (values gathered to host) and run.
  data = {k: jnp.asarray(v) for k, v in _data().items()}
  rows = NamedSharding(mesh, P("data"))
  rewards = jax.device_put(data["rewards"], rows)
  adv = rl.grpo_advantages(rewards, group_size=G)
  np.testing.assert_allclose(adv, rl.grpo_advantages(data["rewards"], group_size=G), atol=1e-6)
  with pytest.raises(ValueError, match="rewards"):
    rl.grpo_advantages(jax.device_put(data["rewards"].at[3].set(jnp.nan), rows), group_size=G)
