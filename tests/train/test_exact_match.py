"""`train.exact_match` on a mesh: each batch's rows split over the batch axes, the same
results as without one; `run_sft` (training and evaluation) on two processes."""

import jax
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.models.source import place_model
from reasoning_jax.tokenizers import ByteTokenizer
from reasoning_jax.train.exact_match import evaluate_exact_match

SOURCE = [{"question": f"What is {i} + {i % 3}?", "answer": str(i + i % 3)} for i in range(10)]
COMMON = dict(
  reward="math_exact", max_new_tokens=5, prompt_template="{question}\n", keep_records=True
)


def _model():
  tok = ByteTokenizer()
  return tok, Transformer(get_preset("tiny-qwen3", vocab_size=tok.vocab_size), rngs=nnx.Rngs(3))


def _spy_generate(monkeypatch):
  """Records (rows, rows per device of the prompts, of the output tokens) of every call."""
  import reasoning_jax.generate as generate_lib

  real, seen = generate_lib.generate, []

  def spy(model, prompts, prompt_lengths, **kwargs):
    out = real(model, prompts, prompt_lengths, **kwargs)
    rows = lambda x: x.sharding.shard_shape(x.shape)[0]  # noqa: E731 (rows per device)
    seen.append((prompts.shape[0], rows(prompts), rows(out.tokens)))
    return out

  monkeypatch.setattr(generate_lib, "generate", spy)
  return seen


def _completions(result):
  return [r["completions"] for r in result["records"]]


@pytest.mark.parametrize("axes", [{"data": 8}, {"data": 2, "fsdp": 4}])
def test_rows_split_over_the_batch_axes_same_results(monkeypatch, axes):
  """10 questions in batches of 4 (4 + 4 + 2, padded to 8 rows for 8 shards): every call's
  prompts and outputs are split over data x fsdp, and the records equal the unsharded run's."""
  tok, model = _model()
  plain = evaluate_exact_match(model, tok, SOURCE, num_examples=10, batch_size=4, **COMMON)
  mesh = sharding_lib.make_mesh(axes)
  place_model(model, mesh)
  seen = _spy_generate(monkeypatch)
  sharded = evaluate_exact_match(
    model, tok, SOURCE, num_examples=10, batch_size=4, mesh=mesh, **COMMON
  )
  assert [rows for rows, _, _ in seen] == [8, 8, 8]  # 4, 4 and 2 questions padded to 8 rows.
  assert all(prompts == tokens == 1 for _, prompts, tokens in seen), seen  # 8 rows / 8 shards.
  assert sharded["count"] == plain["count"] == 10
  assert _completions(sharded) == _completions(plain)
  assert sharded["accuracy"] == plain["accuracy"]
  assert [r["lengths"] for r in sharded["records"]] == [r["lengths"] for r in plain["records"]]


def test_sampled_rows_on_a_mesh_match_when_no_padding_is_needed():
  """8 questions x 2 samples = 16 rows over 8 shards: the sampling noise does not depend on
  how the rows are split."""
  tok, model = _model()
  sampled = dict(num_examples=8, batch_size=8, temperature=1.0, num_samples=2, seed=5)
  plain = evaluate_exact_match(model, tok, SOURCE, **sampled, **COMMON)
  mesh = sharding_lib.make_mesh({"data": 8})
  place_model(model, mesh)
  sharded = evaluate_exact_match(model, tok, SOURCE, mesh=mesh, **sampled, **COMMON)
  assert _completions(sharded) == _completions(plain)
  assert sharded["pass_at_k"] == plain["pass_at_k"]


def test_place_model_lays_params_out_by_the_partition_rules():
  _, model = _model()
  mesh = sharding_lib.make_mesh({"data": 1, "fsdp": 8})
  assert place_model(model, mesh) is model
  leaves = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
  assert all(len(x.sharding.device_set) == 8 for x in leaves)
  assert any("fsdp" in str(x.sharding.spec) for x in leaves)  # Not all replicated.


def test_place_rows_and_host_rows():
  mesh = sharding_lib.make_mesh({"data": 8})
  x = np.arange(32).reshape(16, 2)
  placed = sharding_lib.place_rows(x, mesh)
  assert placed.sharding.spec[0] == ("data", "fsdp") and placed.sharding.shard_shape(x.shape) == (
    2,
    2,
  )
  np.testing.assert_array_equal(sharding_lib.host_rows(placed), x)
  odd = sharding_lib.place_rows(x[:5], mesh)  # 5 rows do not split over 8: left to jit.
  assert not odd.committed
  np.testing.assert_array_equal(sharding_lib.host_rows(odd), x[:5])
  tree = sharding_lib.host_rows({"a": placed, "b": (odd, None)})  # a pytree: one read
  assert isinstance(tree["a"], np.ndarray) and tree["b"][1] is None
  np.testing.assert_array_equal(tree["b"][0], x[:5])


def test_place_padded_rows_pads_with_the_last_row():
  mesh = sharding_lib.make_mesh({"data": 4, "fsdp": 2})
  x, n = np.arange(12).reshape(6, 2), np.arange(6)
  px, pn = sharding_lib.place_padded_rows(mesh, x, n)
  assert px.shape == (8, 2) and pn.shape == (8,) and len(px.sharding.device_set) == 8
  np.testing.assert_array_equal(sharding_lib.host_rows(px), np.concatenate([x, x[-1:], x[-1:]]))
  np.testing.assert_array_equal(sharding_lib.host_rows(pn), [0, 1, 2, 3, 4, 5, 5, 5])
  same = sharding_lib.place_padded_rows(None, x)  # No mesh: the rows as they are.
  np.testing.assert_array_equal(np.asarray(same[0]), x)


def test_run_sft_on_two_processes(tmp_path):
  """Two processes x 2 devices (jax.distributed + gloo), params over fsdp across both: SFT
  prepares its data (both, one data_dir), trains and evaluates; the evaluation's rows are
  split over all four devices (7 questions padded to 8 rows, 2 per device) and its records
  equal a replicated evaluation's, the same on both processes."""

  from tests.helpers.two_processes import run_helper

  # Both processes prepare the data set in one data_dir (no pre-built copy); the race of two
  # preparations is tested deterministically in tests/data/test_data_builders.py.
  results = run_helper("multihost_sft.py", tmp_path, timeout=400)
  for r in results:
    assert r["step"] == 4 and r["eval_count"] == 8
    assert r["rows_per_device"] == [[8, 2]] and r["same_records"], r
  assert results[0]["completions"] == results[1]["completions"]
