"""Chunked prefill (`generate(prefill_chunk=C)`): the same outputs as one prefill forward for
attention, sliding-window and recurrent (GLA) layers, ragged rows whose last token falls in an
earlier chunk, `generate_from_cache` and sparse decoding; one traced loop body however many
chunks; bounded prefill memory; bad values named."""

import jax
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.generate import generate, generate_from_cache
from reasoning_jax.generate.prefill import check_prefill_chunk
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.sparse import SparseDecodeConfig

LENGTHS = np.array([5, 23, 11], np.int32)
P, N = 23, 6
MIXERS = {
  "attention": "attention",
  "sliding+gla": ("sliding_attention", "gla"),
}


def _model(mixer):
  config = get_preset("tiny-qwen3", initializer_range=0.3).replace(mixer=mixer, sliding_window=6)
  return Transformer(config, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module", params=sorted(MIXERS))
def model(request):
  return _model(MIXERS[request.param])


def _prompts():
  prompts = np.random.RandomState(2).randint(1, 512, (len(LENGTHS), P)).astype(np.int32)
  prompts[np.arange(P)[None] >= LENGTHS[:, None]] = 0
  return prompts


def _same(got, want, atol=2e-5):
  np.testing.assert_array_equal(np.asarray(got.tokens), np.asarray(want.tokens))
  np.testing.assert_array_equal(np.asarray(got.lengths), np.asarray(want.lengths))
  np.testing.assert_allclose(np.asarray(got.logprobs), np.asarray(want.logprobs), atol=atol)


# 1: every position its own chunk; 4: row 0's last token lies in chunk 1 of 6, with a
# 3-token remainder; 11: row 2's last token is the last of chunk 0; 22: one token left over;
# 23: one forward (chunk == P).
@pytest.mark.parametrize("chunk", [1, 4, 11, 22, 23])
def test_chunked_prefill_equals_one_forward(model, chunk):
  prompts = _prompts()
  want = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0)
  got = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0, prefill_chunk=chunk)
  _same(got, want)


def test_sampling_uses_the_same_key_stream(model):
  prompts, key = _prompts(), jax.random.key(7)
  kwargs = dict(max_new_tokens=N, temperature=1.0, key=key)
  _same(
    generate(model, prompts, LENGTHS, prefill_chunk=5, **kwargs),
    generate(model, prompts, LENGTHS, **kwargs),
  )


def test_generate_from_cache_chunks_its_block(model):
  prompts = _prompts()
  runs = []
  for chunk in (None, 4):
    cache = model.init_cache(3, 64)
    out, _ = generate_from_cache(
      model,
      cache,
      prompts,
      np.zeros(3, np.int32),
      LENGTHS,
      max_new_tokens=N,
      temperature=0.0,
      prefill_chunk=chunk,
    )
    runs.append(out)
  _same(runs[1], runs[0])


@pytest.mark.parametrize("method", ["quest", "lychee"])
def test_sparse_decode_after_a_chunked_prefill(method):
  model = _model("attention")
  kv = model.config.num_kv_heads
  roles = np.zeros((model.config.num_layers, kv), bool)
  roles[0] = True
  cfg = SparseDecodeConfig(
    method=method,
    budget=16,
    block_size=4,
    page_size=4,
    sink_tokens=4,
    recent_tokens=4,
    roles=roles if method == "lychee" else None,
  )
  prompts = _prompts()
  kwargs = dict(max_new_tokens=N, temperature=0.0, sparse_decode=cfg)
  _same(
    generate(model, prompts, LENGTHS, prefill_chunk=4, **kwargs),
    generate(model, prompts, LENGTHS, **kwargs),
  )


def test_one_traced_forward_for_any_number_of_chunks(monkeypatch):
  """The full chunks run in one `fori_loop`: prefill traces the forward twice (loop body and
  remainder) for 2 chunks and for 23 (decode traces it once more)."""
  from reasoning_jax.generate.generate import _compiled_fns

  model = _model("attention")
  forward = Transformer.forward
  calls = {"n": 0}

  def counting(self, *args, **kwargs):
    calls["n"] += 1
    return forward(self, *args, **kwargs)

  monkeypatch.setattr(Transformer, "forward", counting)
  counts = []
  for chunk in (12, 1):
    _compiled_fns.cache_clear()
    calls["n"] = 0
    generate(model, _prompts(), LENGTHS, max_new_tokens=3, temperature=0.0, prefill_chunk=chunk)
    counts.append(calls["n"])
  assert counts == [3, 3], counts


def test_chunking_bounds_prefill_memory():
  """XLA's compiled temp buffers for a 512-token prefill: chunks of 64 need a fraction of one
  forward's (its `[B, heads, P, S]` attention scores)."""
  from reasoning_jax.generate.arguments import GenerateSettings
  from reasoning_jax.generate.generate import _compiled_fns

  model = _model("attention")
  p = 512
  prompts = np.ones((1, p), np.int32)
  lengths = np.array([p], np.int32)
  graphdef, state = nnx.split(model)
  temp = {}
  for chunk in (0, 64):
    settings = GenerateSettings(
      max_new_tokens=1,
      cache_size=p + 1,
      temperature=0.0,
      top_k=0,
      top_p=1.0,
      eos_ids=(),
      pad_id=0,
      prefill_chunk=chunk,
    )
    prefill = _compiled_fns(graphdef, settings)[0]
    compiled = prefill.lower(state, model.init_cache(1, p + 1), prompts, lengths, None).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip("this backend reports no compiled memory analysis")
    temp[chunk] = analysis.temp_size_in_bytes
  scores = model.config.num_heads * p * (p + 1) * 4  # One layer's float32 scores, unchunked.
  assert temp[0] >= scores, temp
  assert temp[64] < temp[0] / 3, temp


@pytest.mark.parametrize("value", [-1, 1.5, True, "8"])
def test_bad_prefill_chunk_is_named(value):
  with pytest.raises(ValueError, match="prefill_chunk must be None"):
    check_prefill_chunk(value)
  model = _model("attention")
  with pytest.raises(ValueError, match="prefill_chunk"):
    generate(model, _prompts(), LENGTHS, max_new_tokens=2, temperature=0.0, prefill_chunk=value)
