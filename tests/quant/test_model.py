"""quantize_model on zoo models: calibration Hessians, sequential orders, generate/logprobs on the
quantized model, save/restore, sharded loading, and the named errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.generate import generate
from reasoning_jax.layers.quantized import QuantizedKernel, quantized_kernels, set_implementation
from reasoning_jax.logprobs import sequence_logprobs
from reasoning_jax.models import Transformer
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.quant import calibration
from reasoning_jax.quant.io import load_quantized, save_quantized
from reasoning_jax.quant.model import float_bytes, model_bytes, quantize_model, quantized_bytes
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.quantize import quantize
from reasoning_jax.sharding import make_mesh

CFG = get_preset("tiny-qwen3")  # hidden 64, 4 heads x 24, MLP 128: every d_in divides 32.


def _model(seed: int = 0) -> Transformer:
  return Transformer(CFG, rngs=nnx.Rngs(seed))


def _batches(n: int = 2, b: int = 2, t: int = 24, pad: int = 0, seed: int = 1):
  out = []
  for i in range(n):
    ids = jax.random.randint(jax.random.key(seed + i), (b, t), 0, CFG.vocab_size)
    mask = jnp.ones((b, t), jnp.int32).at[:, t - pad :].set(0) if pad else jnp.ones((b, t))
    out.append({"input_ids": ids, "attention_mask": mask})
  return out


def _dequantized_copy(model: Transformer) -> Transformer:
  """The same model with every QuantizedKernel replaced by its dequantized float kernel."""
  copy = nnx.clone(model)
  for path, kernel in quantized_kernels(copy):
    parts = path.split(".")
    parent = copy
    for key in parts[:-1]:
      parent = parent[int(key)] if key.isdigit() else getattr(parent, key)
    setattr(parent, parts[-1], nnx.Param(kernel[...]))
  return copy


@pytest.fixture(scope="module")
def quantized():
  model = _model()
  reports = quantize_model(model, _batches(), method="gptq", bits=4, group_size=32)
  return model, reports


def test_every_projection_is_quantized_and_smaller(quantized):
  model, reports = quantized
  kernels = quantized_kernels(model)
  assert len(kernels) == len(reports) == 7 * CFG.num_layers
  assert {p.split(".", 2)[2] for p, _ in kernels} == {
    "mixer.q_proj", "mixer.k_proj", "mixer.v_proj", "mixer.o_proj",
    "ffn.gate", "ffn.up", "ffn.down",
  }  # fmt: skip
  for r in reports:
    assert r.bits_per_weight == pytest.approx(4 + 24 / 32)
    assert np.isfinite(r.error) and r.relative_error < 0.05
  assert model_bytes(model) < float_bytes(model)
  q_bytes, weights = quantized_bytes(model)
  assert weights == sum(r.shape[0] * r.shape[1] for r in reports)
  assert q_bytes * 8 == pytest.approx((4 + 24 / 32) * weights)


def test_hessian_is_two_xxt_over_n_without_padding():
  model = _model()
  batches = _batches(n=2, pad=5)
  inputs = calibration.embed_batches(model, batches)
  block = model.layers[0]
  h = calibration.capture_hessians(block, inputs, ["mixer.q_proj", "ffn.down"])
  xs = [block.input_norm(b.x)[b.mask.astype(bool)] for b in inputs]
  x = np.concatenate([np.asarray(v, np.float64) for v in xs])
  want = 2.0 * x.T @ x / x.shape[0]
  np.testing.assert_allclose(np.asarray(h["mixer.q_proj"]), want, rtol=2e-4, atol=1e-6)
  assert h["ffn.down"].shape == (CFG.intermediate_size, CFG.intermediate_size)


def test_hessians_are_sharded_like_the_weights_input_axis():
  """On a 2 x 4 (fsdp, tensor) mesh each H is row-sharded over the mesh axis of its kernel's
  input dimension, with the unsharded values."""
  from reasoning_jax.sharding import param_shardings, place

  model = _model()
  inputs = calibration.embed_batches(model, _batches(n=1))
  paths = ["mixer.q_proj", "mixer.o_proj", "ffn.down"]
  want = calibration.capture_hessians(model.layers[0], inputs, paths)
  mesh = make_mesh({"fsdp": 2, "tensor": 4})
  state = nnx.state(model)
  nnx.update(model, place(state, param_shardings(state, rules_for("qwen3"), mesh)))
  got = calibration.capture_hessians(model.layers[0], inputs, paths)
  axes = {"mixer.q_proj": "fsdp", "mixer.o_proj": "tensor", "ffn.down": "tensor"}
  for path, axis in axes.items():
    assert got[path].sharding.spec[0] == axis, (path, got[path].sharding)
    np.testing.assert_allclose(np.asarray(got[path]), np.asarray(want[path]), rtol=1e-5, atol=1e-6)
  # The whole model quantizes on the mesh to what one device gives.
  single = _model()
  rep_single = quantize_model(single, _batches(n=1), method="gptq", bits=4, group_size=32)
  rep_mesh = quantize_model(model, _batches(n=1), method="gptq", bits=4, group_size=32)
  for a, b in zip(rep_single, rep_mesh):
    assert a.path == b.path and a.error == pytest.approx(b.error, rel=1e-3), (a, b)
  ids = jax.random.randint(jax.random.key(4), (2, 8), 0, CFG.vocab_size)
  np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(single(ids)), atol=1e-3)


def test_layers_of_one_structure_share_the_calibration_compiles():
  """An L-layer model compiles one capture per input group and one propagation, not L of
  each: blocks are traced standalone (`layer_idx` read as 0, restored afterwards, also when
  calibration fails)."""
  import dataclasses

  config = dataclasses.replace(CFG, num_layers=3)
  model = Transformer(config, rngs=nnx.Rngs(0))
  # Different shapes from every other test here, so the counts start from this model.
  batches = [{"input_ids": jax.random.randint(jax.random.key(9), (3, 20), 0, CFG.vocab_size)}]
  capture0 = calibration._capture._cache_size()
  propagate0 = calibration._propagate._cache_size()
  quantize_model(model, batches, method="rtn", bits=4, group_size=32)
  assert calibration._capture._cache_size() - capture0 == 4  # qkv, o, gate/up, down
  assert calibration._propagate._cache_size() - propagate0 == 1
  assert [block.mixer.layer_idx for block in model.layers] == [0, 1, 2]
  with pytest.raises(ValueError, match="never multiplied"):
    calibration.capture_hessians(
      model.layers[2], calibration.embed_batches(model, batches), ["mixer.nope"]
    )
  assert model.layers[2].mixer.layer_idx == 2


def test_call_groups_follow_the_forward_pass():
  model = _model()
  inputs = calibration.embed_batches(model, _batches(n=1))
  groups = [[c.path for c in g] for g in calibration.call_groups(model.layers[0], inputs[0])]
  assert groups == [
    ["mixer.q_proj", "mixer.k_proj", "mixer.v_proj"],
    ["mixer.o_proj"],
    ["ffn.gate", "ffn.up"],
    ["ffn.down"],
  ]


def test_sequential_orders():
  """Layer 0's first input group sees the same inputs in every order; "true" recaptures o_proj
  after q/k/v are quantized; "parallel" keeps float inputs for layer 1."""
  runs = {}
  for mode in ("true", "layer", "parallel"):
    model = _model()
    reps = quantize_model(model, _batches(), method="gptq", bits=3, group_size=32, sequential=mode)
    runs[mode] = {r.path: r.error for r in reps}
  qkv = [f"layers.0.mixer.{n}_proj" for n in "qkv"]
  for name in qkv:
    assert runs["true"][name] == runs["layer"][name] == runs["parallel"][name]
  assert runs["true"]["layers.0.mixer.o_proj"] != runs["layer"]["layers.0.mixer.o_proj"]
  assert runs["layer"]["layers.0.ffn.down"] == runs["parallel"]["layers.0.ffn.down"]
  assert runs["layer"]["layers.1.mixer.q_proj"] != runs["parallel"]["layers.1.mixer.q_proj"]


def test_quantized_model_generates_like_its_dequantized_weights(quantized):
  model, _ = quantized
  ref = _dequantized_copy(model)
  ids = jax.random.randint(jax.random.key(7), (2, 12), 0, CFG.vocab_size)
  np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(ref(ids)), rtol=1e-4, atol=1e-4)
  lengths = jnp.array([12, 9])
  out_q = generate(model, ids, lengths, max_new_tokens=6, temperature=0.0)
  out_f = generate(ref, ids, lengths, max_new_tokens=6, temperature=0.0)
  np.testing.assert_array_equal(np.asarray(out_q.tokens), np.asarray(out_f.tokens))
  mask = jnp.ones_like(ids)
  lp_q = sequence_logprobs(model, ids, mask)
  lp_f = sequence_logprobs(ref, ids, mask)
  np.testing.assert_allclose(np.asarray(lp_q), np.asarray(lp_f), rtol=1e-4, atol=1e-4)


def test_pallas_implementation_matches_reference(quantized):
  model, _ = quantized
  ids = jax.random.randint(jax.random.key(3), (1, 8), 0, CFG.vocab_size)
  want = model(ids)
  fast = set_implementation(nnx.clone(model), "pallas")
  np.testing.assert_allclose(np.asarray(fast(ids)), np.asarray(want), rtol=2e-4, atol=2e-4)


def test_forced_cuda_forms_run_here_and_lower_to_their_kernels(monkeypatch):
  """`implementation="pallas_mosaic"` / `"pallas_triton"`: the fused kernel with its CUDA form
  forced. On CPU both interpret (same outputs as "xla"); lowered for CUDA a bfloat16 call is
  one Mosaic GPU / one Triton custom call."""
  import re

  from tests.pallas_kernels.test_dequant_matmul import make_weight

  qw = make_weight("bitplane", 2, 128, d_out=128, d_in=256)
  kernels = {
    impl: QuantizedKernel(qw, kernel_shape=(256, 128), in_dims=1, implementation=impl)
    for impl in ("xla", "pallas_mosaic", "pallas_triton")
  }
  x = jax.random.normal(jax.random.key(0), (3, 256), jnp.bfloat16)
  want = kernels["xla"].apply(x, jnp.bfloat16)
  for impl in ("pallas_mosaic", "pallas_triton"):
    got = kernels[impl].apply(x, jnp.bfloat16)
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=2e-2)

  def lowered(impl):
    graphdef, state = nnx.split(kernels[impl])
    # interpret=None follows the backend: compiled kernels when lowering for CUDA on a GPU host.
    fn = lambda st, x: nnx.merge(graphdef, st).apply(x, jnp.bfloat16)  # noqa: E731
    return jax.jit(fn).trace(state, x).lower(lowering_platforms=("cuda",)).as_text()

  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # compiled, not interpreted
  assert len(re.findall(r"custom_call @mosaic_gpu", lowered("pallas_mosaic"))) == 1
  if hasattr(jax.sharding, "AbstractDevice"):  # Triton names its target from an abstract GPU
    device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
    mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
    with jax.sharding.use_abstract_mesh(mesh):
      text = lowered("pallas_triton")
    assert "mosaic_gpu" not in text and "dequant_matmul_loop" in text
  with pytest.raises(ValueError, match=r"^implementation must be one of \('xla', 'pallas', "):
    set_implementation(_model(), "pallas_cuda")


def test_save_restore_same_outputs(quantized, tmp_path):
  model, _ = quantized
  save_quantized(tmp_path / "q", model, source="tiny-qwen3")
  restored = load_quantized(tmp_path / "q", _model(seed=5))
  ids = jax.random.randint(jax.random.key(9), (2, 10), 0, CFG.vocab_size)
  np.testing.assert_array_equal(np.asarray(restored(ids)), np.asarray(model(ids)))
  with pytest.raises(FileExistsError):
    save_quantized(tmp_path / "q", model)


def test_restore_onto_a_mesh(quantized, tmp_path):
  model, _ = quantized
  save_quantized(tmp_path / "q", model)
  mesh = make_mesh({"fsdp": 2, "tensor": 4})
  restored = load_quantized(tmp_path / "q", _model(seed=5), mesh=mesh, rules=rules_for("qwen3"))
  planes = restored.layers[0].mixer.q_proj.planes[...]
  assert planes.sharding.spec[2] == "tensor"
  ids = jax.random.randint(jax.random.key(9), (2, 10), 0, CFG.vocab_size)
  np.testing.assert_allclose(np.asarray(restored(ids)), np.asarray(model(ids)), atol=1e-5)


def test_mismatched_checkpoint_is_refused(quantized, tmp_path):
  model, _ = quantized
  save_quantized(tmp_path / "q", model)
  other = Transformer(get_preset("tiny-qwen3").replace(intermediate_size=96), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"layers\.0\.ffn\.(gate|up|down) has shape"):
    load_quantized(tmp_path / "q", other)
  with pytest.raises(FileNotFoundError, match="quantization.json"):
    load_quantized(tmp_path / "missing", _model())


def test_bad_calls_are_named():
  model = _model()
  with pytest.raises(ValueError, match="sequential"):
    quantize_model(model, _batches(n=1), sequential="random")
  with pytest.raises(ValueError, match="matches no projection"):
    quantize_model(model, _batches(n=1), method="rtn", targets=r"mixer\.nothing")
  with pytest.raises(ValueError, match="token ids"):
    quantize_model(model, [{"input_ids": jnp.full((1, 4), CFG.vocab_size)}], method="rtn")
  with pytest.raises(ValueError, match="implementation"):
    quantize_model(model, _batches(n=1), implementation="cuda")
  quantize_model(model, _batches(n=1), method="rtn", bits=4, group_size=32)
  assert isinstance(model.layers[0].ffn.down, QuantizedKernel)
  with pytest.raises(ValueError, match="already quantized"):
    quantize_model(model, _batches(n=1), method="rtn")


@pytest.mark.parametrize("method", ["rtn", "gptq", "bpdq"])
def test_sharded_quantization_equals_single_device(method):
  """Rows sharded over 8 devices (H replicated) give the single-device codes and parameters."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((512, 128)) @ (rng.standard_normal((128, 128)) / 12 + np.eye(128))
  h = jnp.asarray(2 * x.T @ x / 512, jnp.float32)
  w = jnp.asarray(rng.standard_normal((64, 128)) * 0.1, jnp.float32)
  config = QuantConfig(method=method, bits=2, group_size=64, n_iters=3)
  single = quantize(w, h, config=config)
  mesh = make_mesh({"data": 8, "fsdp": 1, "tensor": 1})
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data", None))
  w_sharded = jax.device_put(w, rows)
  h_repl = jax.device_put(h, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  assert len(w_sharded.sharding.device_set) == 8
  sharded = quantize(w_sharded, h_repl, config=config)
  for name, a in single.arrays().items():
    np.testing.assert_array_equal(np.asarray(getattr(sharded, name)), np.asarray(a), err_msg=name)


class _IdTokenizer:
  eos_id = 1

  def decode_batch(self, tokens, lengths):
    return [" ".join(str(int(t)) for t in row[:n]) for row, n in zip(tokens, lengths)]


def test_rl_rollout_runs_the_quantized_policy(quantized):
  """`collect_rollouts` takes the quantized model as it is (the whole state: the packed codes
  are not `nnx.Param`), and its log-probs are the quantized model's."""
  from reasoning_jax.rl.rollout import collect_rollouts

  model, _ = quantized
  graphdef, state = nnx.split(model)
  prompts = {
    "prompts": np.array([[5, 6, 7], [8, 9, 0]], np.int32),
    "prompt_lengths": np.array([3, 2], np.int32),
    "answer": np.array(["", ""]),
  }
  batch = collect_rollouts(
    graphdef,
    state,
    prompts,
    tokenizer=_IdTokenizer(),
    reward_fn=lambda completions, answers, **_: np.zeros(len(completions), np.float32),
    group_size=2,
    max_new_tokens=4,
    key=jax.random.key(0),
  )
  assert batch.tokens.shape[0] == 4
  np.testing.assert_allclose(batch.old_logp, batch.sampler_logp, atol=2e-4)


def test_quantize_an_hf_folder(tiny_hf_folder):
  """A model read from a Hugging Face folder quantizes and decodes the same way."""
  from reasoning_jax.models.hf import from_hf

  model = from_hf(tiny_hf_folder("qwen3"))
  vocab = model.config.vocab_size
  ids = jax.random.randint(jax.random.key(0), (2, 12), 0, vocab)
  want = model(ids)
  reports = quantize_model(model, [{"input_ids": ids}], method="gptq", bits=8, group_size=32)
  assert len(reports) == 7 * model.config.num_layers
  got = model(ids)
  assert float(jnp.max(jnp.abs(got - want))) < 0.05 * float(jnp.max(jnp.abs(want)))
  out = generate(model, ids, jnp.array([12, 7]), max_new_tokens=3, temperature=0.0)
  assert out.tokens.shape == (2, 3)
