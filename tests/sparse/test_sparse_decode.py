"""Sparse decoding on the decode path: LycheeDecode, Quest, DuoAttention (inference.md 7, 8.6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.generate import generate, init_cache
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.ops import sparse_decode as sd
from reasoning_jax.ops.attention_reference import attention_reference, make_attention_mask
from reasoning_jax.sparse import SparseDecodeConfig, SparseDecodeContext, kv_tokens_read

SMALL = dict(block_size=16, sink_tokens=16, recent_tokens=32)


@pytest.fixture(scope="module")
def model():
  config = get_preset("tiny-qwen3", num_layers=4, initializer_range=0.3)
  return Transformer(config, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def prompts(model):
  rng = np.random.default_rng(0)
  return rng.integers(1, model.config.vocab_size, (2, 300)), np.array([300, 211])


@pytest.fixture(scope="module")
def dense(model, prompts):
  return generate(model, *prompts, max_new_tokens=6, temperature=0.0, cache_size=320)


def roles(pattern):
  return np.asarray(pattern, bool)


def run(model, prompts, config, **kw):
  return generate(
    model, *prompts, max_new_tokens=6, temperature=0.0, cache_size=320, sparse_decode=config, **kw
  )


def assert_same(out, ref, atol=1e-5):
  np.testing.assert_array_equal(np.asarray(out.tokens), np.asarray(ref.tokens))
  np.testing.assert_allclose(np.asarray(out.logprobs), np.asarray(ref.logprobs), atol=atol)


MIXED = [[1, 1], [0, 1], [1, 0], [0, 0]]


@pytest.mark.parametrize(
  "config",
  [
    SparseDecodeConfig(method="full"),
    SparseDecodeConfig(method="lychee", roles=np.ones((4, 2), bool), budget=64, **SMALL),
    SparseDecodeConfig(method="duo", roles=np.ones((4, 2), bool), budget=64, **SMALL),
    # Budget >= S: dense for any roles (block and token mode), and Quest with all pages.
    SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=320, **SMALL),
    SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=320, selection="token", **SMALL),
    SparseDecodeConfig(method="quest", budget=320),
    SparseDecodeConfig(method="quest", budget=320, quest_dense_layers=0),
    SparseDecodeConfig(
      method="lychee", roles=roles(MIXED), budget=320, implementation="pallas", **SMALL
    ),
    SparseDecodeConfig(method="quest", budget=320, implementation="pallas"),
    SparseDecodeConfig(method="duo", roles=roles(MIXED), budget=336, **SMALL),
    SparseDecodeConfig(
      method="lychee", roles=roles(MIXED), budget=320, per_query_head=True, **SMALL
    ),
  ],
  ids=[
    "full",
    "lychee-all-retrieval",
    "duo-all-retrieval",
    "lychee-budget-S",
    "token-budget-S",
    "quest-budget-S",
    "quest-no-dense-layers",
    "lychee-pallas-budget-S",
    "quest-pallas-budget-S",
    "duo-budget-S",
    "per-query-head-budget-S",
  ],
)
def test_sparse_decode_equals_dense_when_nothing_is_dropped(model, prompts, dense, config):
  """The sparse path continues a dense prefill and agrees with dense decoding."""
  assert_same(run(model, prompts, config), dense)


def test_small_budget_changes_the_output(model, prompts, dense):
  config = SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=64, **SMALL)
  out = run(model, prompts, config)
  gap = np.abs(np.asarray(out.logprobs) - np.asarray(dense.logprobs)).max()
  assert gap > 1e-4  # Blocks were dropped: a selection method, not a lossless one.


def test_bf16_all_retrieval_equals_dense_to_bf16_tolerance():
  """All heads retrieval: the context's decode attention is dense attention (bf16 inputs; the
  f32-accumulated result rounded once to bf16), and the model's logprobs follow."""
  rng = np.random.default_rng(1)
  q = jnp.asarray(rng.normal(size=(2, 1, 6, 32)), jnp.bfloat16)
  k, v = (jnp.asarray(rng.normal(size=(2, 128, 2, 32)), jnp.bfloat16) for _ in range(2))
  positions = jnp.array([[127], [90]])
  ctx = SparseDecodeContext(
    SparseDecodeConfig(method="lychee", roles=np.ones((1, 2), bool), budget=64, **SMALL)
  )
  out = ctx.attend(0, q, k, v, positions)
  mask = make_attention_mask(positions, jnp.broadcast_to(jnp.arange(128), (2, 128)))
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  want = attention_reference(*f32, mask, scale=32**-0.5)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(want), atol=1e-3, rtol=4e-3)

  config = get_preset("tiny-qwen3", num_layers=2, initializer_range=0.3, dtype="bfloat16")
  m = Transformer(config, rngs=nnx.Rngs(1))
  p = rng.integers(1, config.vocab_size, (1, 120)), np.array([120])
  ref = generate(m, *p, max_new_tokens=4, temperature=0.0, cache_size=128)
  sparse = SparseDecodeConfig(method="lychee", roles=np.ones((2, 2), bool), budget=64, **SMALL)
  got = generate(m, *p, max_new_tokens=4, temperature=0.0, cache_size=128, sparse_decode=sparse)
  np.testing.assert_array_equal(np.asarray(got.tokens), np.asarray(ref.tokens))
  np.testing.assert_allclose(np.asarray(got.logprobs), np.asarray(ref.logprobs), atol=3e-2)


def decode_step_records(model, prompts, config):
  """One decode step through the model with a recording context (eager)."""
  p, lengths = prompts
  cache = init_cache(model, p.shape[0], 320)
  b, t = p.shape
  pos = jnp.broadcast_to(jnp.arange(t), (b, t))
  _, cache = model.forward(jnp.asarray(p), positions=pos, cache=cache)
  ctx = SparseDecodeContext(config, record=True)
  token = jnp.asarray(p[np.arange(b), lengths - 1])[:, None]
  model.forward(token, positions=jnp.asarray(lengths)[:, None], cache=cache, attention_context=ctx)
  return ctx.records


def test_selection_is_inherited_by_kv_head_index(model, prompts):
  """Layers [R-all, {h0 sparse}, {h0 retrieval}, {h0 sparse}]: layer 1 reads layer 0's blocks
  for h0, layer 3 reads layer 2's (index inspection)."""
  pattern = roles([[1, 1], [0, 1], [1, 1], [0, 1]])
  config = SparseDecodeConfig(method="lychee", roles=pattern, budget=128, **SMALL)
  records = decode_step_records(model, prompts, config)
  assert [r["sparse"] for r in records] == [(), (0,), (), (0,)]
  sel = [np.asarray(r["selection"]) for r in records]
  np.testing.assert_array_equal(sel[1][:, 0], sel[0][:, 0])  # Layer 1 inherits layer 0's h0.
  np.testing.assert_array_equal(sel[3][:, 0], sel[2][:, 0])  # Layer 3 inherits layer 2's h0.
  assert not np.array_equal(sel[2][:, 0], sel[0][:, 0])  # Layer 2 re-selected h0.
  for s in sel:  # Sinks (block 0) and the newest token's block are always there.
    for row, length in enumerate(prompts[1] + 1):
      assert 0 in s[row, 0] and (length - 1) // 16 in s[row, 0]


def test_sinks_and_recent_always_selected():
  rng = np.random.default_rng(0)
  s, blk, sink, recent = 1024, 64, 128, 256
  scores = rng.normal(size=(2, 3, s // blk)).astype(np.float32)
  scores[..., :2] = -1e9  # Adversarial: anchors score lowest.
  scores[..., -5:] = -1e9
  lengths = jnp.array([1024, 700])
  ids = np.asarray(
    sd.select_blocks(
      jnp.asarray(scores),
      lengths,
      n_select=16,
      block_size=blk,
      sink_tokens=sink,
      recent_tokens=recent,
    )
  )
  for row, length in enumerate([1024, 700]):
    tokens = np.concatenate([np.arange(i * blk, (i + 1) * blk) for i in ids[row, 0] if i >= 0])
    assert set(range(sink)) <= set(tokens)
    assert set(range(length - recent, length)) <= set(tokens)
    assert tokens.max() < ((length - 1) // blk + 1) * blk
  token_scores = rng.normal(size=(1, 1, s)).astype(np.float32)
  token_scores[..., :sink] = token_scores[..., -recent:] = -1e9
  mask = np.asarray(
    sd.select_tokens(
      jnp.asarray(token_scores),
      jnp.array([s]),
      budget=512,
      sink_tokens=sink,
      recent_tokens=recent,
    )
  )[0, 0]
  assert mask[:sink].all() and mask[-recent:].all() and mask.sum() == 512
  top = np.argsort(-token_scores[0, 0, sink:-recent])[: 512 - sink - recent] + sink
  assert mask[top].all()


def test_block_selection_is_top_k_by_score_after_anchors():
  scores = jnp.asarray([[[0.0, 5.0, 1.0, 4.0, 3.0, 2.0, -1.0, 0.5]]])
  ids = sd.select_blocks(
    scores, jnp.array([8 * 16]), n_select=4, block_size=16, sink_tokens=16, recent_tokens=16
  )
  assert set(np.asarray(ids)[0, 0].tolist()) == {0, 7, 1, 3}


def test_quest_bound_is_an_upper_bound_of_every_key_in_the_page():
  rng = np.random.default_rng(3)
  for _ in range(5):
    q = jnp.asarray(rng.normal(size=(2, 2, 3, 8)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(2, 64, 2, 8)) * rng.uniform(0.1, 3.0), jnp.float32)
    lengths = jnp.asarray(rng.integers(1, 65, 2))
    kmin, kmax = sd.page_bounds(k, lengths, page_size=16)
    u = np.asarray(sd.page_upper_bounds(q, kmin, kmax))  # [B, K, G, P]
    logits = np.einsum("bkgd,bskd->bkgs", np.asarray(q), np.asarray(k)).reshape(2, 2, 3, 4, 16)
    visible = (np.arange(64)[None] < np.asarray(lengths)[:, None]).reshape(2, 1, 1, 4, 16)
    best = np.where(visible, logits, -np.inf).max(-1)
    assert np.all(u >= best - 1e-5)
    assert np.all(np.isneginf(u) == np.isneginf(best))


def test_quest_incremental_bounds_equal_recomputed_bounds():
  rng = np.random.default_rng(4)
  k = jnp.asarray(rng.normal(size=(2, 64, 2, 8)), jnp.float32)
  lengths = jnp.array([30, 47])
  kmin, kmax = sd.page_bounds(k, lengths, page_size=16)
  for step in range(3):
    pos = lengths + step
    kmin, kmax = sd.update_page_bounds(kmin, kmax, k[jnp.arange(2), pos], pos, page_size=16)
  want = sd.page_bounds(k, lengths + 3, page_size=16)
  np.testing.assert_array_equal(np.asarray(kmin), np.asarray(want[0]))
  np.testing.assert_array_equal(np.asarray(kmax), np.asarray(want[1]))


def test_quest_with_page_size_one_is_exact_top_k():
  rng = np.random.default_rng(5)
  q = jnp.asarray(rng.normal(size=(1, 1, 1, 8)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, 32, 1, 8)), jnp.float32)
  kmin, kmax = sd.page_bounds(k, jnp.array([32]), page_size=1)
  scores = sd.quest_page_scores(q, kmin, kmax)
  ids = sd.select_blocks(
    scores, jnp.array([32]), n_select=5, block_size=1, sink_tokens=0, recent_tokens=0
  )
  exact = np.argsort(-np.einsum("d,sd->s", np.asarray(q)[0, 0, 0], np.asarray(k)[0, :, 0]))[:5]
  assert set(np.asarray(ids)[0, 0].tolist()) == set(exact.tolist())


def test_kernel_references_equal_dense_attention_under_the_mask():
  rng = np.random.default_rng(6)
  q = jnp.asarray(rng.normal(size=(2, 2, 3, 16)), jnp.float32)
  k, v = (jnp.asarray(rng.normal(size=(2, 256, 2, 16)), jnp.float32) for _ in range(2))
  lengths, heads = jnp.array([200, 77]), jnp.arange(2)
  out, scores = sd.retrieval_decode_reference(q, k, v, lengths, heads, block_size=32)
  mask = make_attention_mask((lengths - 1)[:, None], jnp.broadcast_to(jnp.arange(256), (2, 256)))
  dense = attention_reference(q.reshape(2, 1, 6, 16), k, v, mask, scale=0.25).reshape(q.shape)
  np.testing.assert_allclose(out, dense, atol=1e-5)
  qbar = np.asarray(q).mean(2)
  logits = np.einsum("bkd,bskd->bks", qbar, np.asarray(k))
  logits = np.where(
    np.arange(256)[None, None] < np.asarray(lengths)[:, None, None], logits, -np.inf
  )
  np.testing.assert_allclose(scores, logits.reshape(2, 2, 8, 32).max(-1), atol=1e-5)
  ids = jnp.asarray([[[0, 5, -1], [3, 1, 2]], [[2, -1, 0], [1, 0, -1]]], jnp.int32)
  ref = sd.block_sparse_decode_reference(q, k, v, lengths, heads, ids, block_size=32)
  got = sd.gathered_block_sparse_decode(q, k, v, lengths, heads, ids, block_size=32)
  np.testing.assert_allclose(got, ref, atol=1e-5)


def test_kv_tokens_read_counts():
  full = SparseDecodeConfig(method="full")
  assert kv_tokens_read(full, 4, 2, 1000) == 8000
  lychee = SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=64, **SMALL)
  assert kv_tokens_read(lychee, 4, 2, 1000) == 4 * 1000 + 4 * 64
  quest = SparseDecodeConfig(method="quest", budget=64)
  assert kv_tokens_read(quest, 4, 2, 1000) == 4 * 1000 + 4 * (64 + 63)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(method="lychee", roles=np.ones((4, 2)), budget=32, **SMALL), "below sinks \\+ recent"),
    (dict(method="lychee", roles=np.ones((4, 2)), budget=4096), None),
    (
      dict(method="lychee", roles=roles([[0, 1], [1, 1], [1, 1], [1, 1]]), budget=64, **SMALL),
      "roles\\[0\\] must be all retrieval",
    ),
    (dict(method="lychee"), "needs roles"),
    (dict(method="lychee", roles=np.ones((3,))), "\\[num_layers, num_kv_heads\\]"),
    (dict(method="nope"), "method must be one of"),
    (
      dict(method="lychee", roles=np.ones((4, 2)), selection="token", implementation="pallas"),
      "token",
    ),
  ],
)
def test_bad_configs_raise(kwargs, match):
  if match is None:
    SparseDecodeConfig(**kwargs)
    return
  with pytest.raises(ValueError, match=match):
    SparseDecodeConfig(**kwargs)


def test_bad_decode_setups_raise(model, prompts):
  wrong_shape = SparseDecodeConfig(method="lychee", roles=np.ones((3, 2), bool), budget=64, **SMALL)
  with pytest.raises(ValueError, match="roles has shape \\[3, 2\\] but the model has"):
    run(model, prompts, wrong_shape)
  ok = SparseDecodeConfig(method="lychee", roles=np.ones((4, 2), bool), budget=64, **SMALL)
  with pytest.raises(ValueError, match="block_size=16 must divide the cache length cache_size=310"):
    generate(model, *prompts, max_new_tokens=6, cache_size=310, temperature=0.0, sparse_decode=ok)
  with pytest.raises(TypeError, match="sparse_decode must be None or"):
    generate(model, *prompts, max_new_tokens=6, temperature=0.0, sparse_decode="lychee")
  gla = get_preset("tiny-qwen3", num_layers=2, mixer=("gla", "attention"))
  hybrid = Transformer(gla, rngs=nnx.Rngs(0))
  two = SparseDecodeConfig(method="lychee", roles=np.ones((2, 2), bool), budget=64, **SMALL)
  with pytest.raises(ValueError, match="layer 0 is 'gla'"):
    generate(hybrid, *prompts, max_new_tokens=2, temperature=0.0, sparse_decode=two)


def test_default_cache_size_rounds_up_to_the_block():
  config = get_preset("tiny-qwen3", num_layers=2, initializer_range=0.3)
  m = Transformer(config, rngs=nnx.Rngs(2))
  sparse = SparseDecodeConfig(method="lychee", roles=np.ones((2, 2), bool), budget=64, **SMALL)
  out = generate(
    m,
    np.ones((1, 37), np.int32),
    np.array([37]),
    max_new_tokens=3,
    temperature=0.0,
    sparse_decode=sparse,
  )
  assert out.tokens.shape == (1, 3)


def test_sampling_with_sparse_decode_is_reproducible(model, prompts):
  config = SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=64, **SMALL)
  a = (
    run(model, prompts, config)
    if False
    else generate(
      model,
      *prompts,
      max_new_tokens=4,
      temperature=1.0,
      key=jax.random.key(3),
      cache_size=320,
      sparse_decode=config,
    )
  )
  b = generate(
    model,
    *prompts,
    max_new_tokens=4,
    temperature=1.0,
    key=jax.random.key(3),
    cache_size=320,
    sparse_decode=config,
  )
  np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))


def test_per_query_head_ablation_selects_per_query_row(model, prompts, dense):
  """G = 2 query heads per KV head: the ablation keeps one block set per query row, and its
  output differs from the GQA-pooled method at a small budget."""
  base = dict(method="lychee", roles=roles(MIXED), budget=64, **SMALL)
  records = decode_step_records(model, prompts, SparseDecodeConfig(per_query_head=True, **base))
  sel = np.asarray(records[0]["selection"])
  assert sel.shape == (2, 2, 2, 4)  # [B, K, G, n_sel]
  pooled = run(model, prompts, SparseDecodeConfig(**base))
  ablation = run(model, prompts, SparseDecodeConfig(per_query_head=True, **base))
  assert not np.allclose(np.asarray(pooled.logprobs), np.asarray(ablation.logprobs))


@pytest.mark.parametrize("schedule", [None, "loop"])
def test_pallas_kernels_match_the_xla_path_at_a_small_budget(model, prompts, schedule):
  """Blocks are dropped here: the Pallas (interpret) path and the XLA path agree anyway, with
  the default (grid) schedule and with the GPU one (Triton loop, split-K) through generate."""
  for method, extra in (("lychee", dict(roles=roles(MIXED), **SMALL)), ("quest", {})):
    xla = run(model, prompts, SparseDecodeConfig(method=method, budget=64, **extra))
    config = SparseDecodeConfig(
      method=method, budget=64, implementation="pallas", kernel_schedule=schedule, **extra
    )
    assert_same(run(model, prompts, config), xla, atol=1e-4)


def test_kernel_schedules_match_the_kernels_and_need_pallas():
  from pallas_kernels.sparse_decode import blocks
  from reasoning_jax.sparse.config import KERNEL_SCHEDULES

  assert KERNEL_SCHEDULES == blocks.SCHEDULES
  with pytest.raises(ValueError, match=r"^kernel_schedule must be None or one of"):
    SparseDecodeConfig(method="full", implementation="pallas", kernel_schedule="ring")
  with pytest.raises(ValueError, match=r"needs implementation='pallas'"):
    SparseDecodeConfig(method="full", kernel_schedule="loop")


def test_cache_correction_rewrites_the_decoded_kv_densely(model, prompts, dense):
  """All-retrieval: corrections are no-ops (dense == sparse KV). At a dropping budget they
  change what later steps read, so the outputs move (and stay finite)."""
  allret = SparseDecodeConfig(
    method="lychee", roles=np.ones((4, 2), bool), budget=64, cache_correction=2, **SMALL
  )
  assert_same(run(model, prompts, allret), dense)
  base = dict(method="lychee", roles=roles(MIXED), budget=64, **SMALL)
  plain = run(model, prompts, SparseDecodeConfig(**base))
  corrected = run(model, prompts, SparseDecodeConfig(cache_correction=2, **base))
  assert np.isfinite(np.asarray(corrected.logprobs)).all()
  assert not np.allclose(np.asarray(plain.logprobs), np.asarray(corrected.logprobs))
  # Quest rebuilds its page bounds after a correction.
  quest = run(model, prompts, SparseDecodeConfig(method="quest", budget=320, cache_correction=3))
  assert_same(quest, dense)


@pytest.mark.parametrize("dtype, atol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_xla_path_equals_the_references(dtype, atol):
  """The fast XLA path (static heads, one pass over the keys) computes the references."""
  rng = np.random.default_rng(7)
  q = jnp.asarray(rng.normal(size=(2, 4, 2, 16)), dtype)
  k, v = (jnp.asarray(rng.normal(size=(2, 128, 4, 16)), dtype) for _ in range(2))
  lengths, heads = jnp.array([128, 41]), (3, 1)
  out, scores = sd.retrieval_decode_xla(q, k, v, lengths, heads, block_size=16)
  ref_out, ref_scores = sd.retrieval_decode_reference(
    q, k, v, lengths, jnp.asarray(heads), block_size=16
  )
  np.testing.assert_allclose(
    np.asarray(out, np.float32), np.asarray(ref_out, np.float32), atol=atol
  )
  np.testing.assert_allclose(np.asarray(scores), np.asarray(ref_scores), atol=atol * 10)
  ids = jnp.asarray([[[0, 5, -1], [3, 1, 2]], [[2, -1, 0], [1, 0, -1]]], jnp.int32)
  got = sd.block_sparse_decode_xla(q, k, v, lengths, heads, ids, block_size=16)
  want = sd.block_sparse_decode_reference(q, k, v, lengths, jnp.asarray(heads), ids, block_size=16)
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=atol)


def test_a_sweep_of_sparse_configs_compiles_one_prefill(model):
  """Prefill is dense: configs that differ in method, budget or roles (Quest aside, whose
  page bounds start at prefill) share one compiled prefill; each config compiles its decode."""
  from reasoning_jax.generate.generate import TRACE_COUNTS

  rng = np.random.default_rng(7)
  # A prompt shape no other test uses, so the counts start from zero here.
  prompts = rng.integers(1, model.config.vocab_size, (3, 130)), np.array([130, 97, 64])
  kw = dict(max_new_tokens=3, temperature=0.0, cache_size=144)
  before = dict(TRACE_COUNTS)
  sweep = [
    SparseDecodeConfig(method="full", **SMALL),
    SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=64, **SMALL),
    SparseDecodeConfig(method="lychee", roles=roles(MIXED), budget=80, **SMALL),
    SparseDecodeConfig(
      method="lychee", roles=roles([[1, 1], [1, 0], [0, 1], [0, 1]]), budget=64, **SMALL
    ),
    SparseDecodeConfig(method="duo", roles=roles(MIXED), budget=64, **SMALL),
  ]
  for config in sweep:
    generate(model, *prompts, sparse_decode=config, **kw)
  assert TRACE_COUNTS["prefill"] - before.get("prefill", 0) == 1
  assert TRACE_COUNTS["decode"] - before.get("decode", 0) == len(sweep)
  # Quest keeps its page bounds from the prefill: one more prefill per page layout.
  for budget in (32, 48):
    generate(model, *prompts, sparse_decode=SparseDecodeConfig(method="quest", budget=budget), **kw)
  assert TRACE_COUNTS["prefill"] - before.get("prefill", 0) == 2
