"""Tests for reasoning_jax.checkpoint (tiny states on 8 host CPU devices)."""

from __future__ import annotations

import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from reasoning_jax.checkpoint import (
  MANIFEST_FILE,
  CheckpointCorruptError,
  CheckpointSaveError,
  TrainCheckpointer,
)
from reasoning_jax.models import Transformer, get_preset

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
HELPER = pathlib.Path(__file__).parent / "checkpoint_helpers" / "preemption_loop.py"
PYTREE_ITEMS = ("params", "opt_state", "rng")


# -- Fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_state() -> dict:
  """tiny-qwen3 params, an adamw state after one update, a typed key, data state, config."""
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  params = nnx.state(model)
  tx = optax.adamw(1e-3)

  @jax.jit
  def one_update(params):  # Non-zero moments and count; jitted to keep the fixture fast.
    grads = jax.tree.map(lambda p: 0.01 * p + 1e-3, params)
    return tx.update(grads, tx.init(params), params)[1]

  opt_state = one_update(params)
  config = ml_collections.ConfigDict({"lr": 1e-3, "model": {"preset": "tiny-qwen3"}, "steps": 10})
  return {
    "params": params,
    "opt_state": opt_state,
    "step": 7,
    "rng": jax.random.key(42),
    "data_state": {"epoch": 1, "index": 1234, "shard": "train-00001", "seed": [1, 2]},
    "config": config.to_dict(),
  }


def _small_state(step: int) -> dict:
  return {
    "params": {
      "w": jnp.full((4, 8), float(step), jnp.float32),
      "b": jnp.arange(8, dtype=jnp.int32) + step,
    },
    "rng": jax.random.fold_in(jax.random.key(0), step),
    "data_state": {"consumed": step},
  }


def _abstract(tree):
  """ShapeDtypeStruct leaves carrying the leaves' shardings."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _host(x) -> np.ndarray:
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(x)


def _assert_trees_equal(actual, expected):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    assert a.dtype == e.dtype
    np.testing.assert_array_equal(_host(a), _host(e))


def _by_path(tree) -> dict[tuple[str, ...], jax.Array]:
  """Leaves keyed by their path names (dict keys, attributes and indices alike)."""

  def name(entry):
    return str(next(getattr(entry, a) for a in ("key", "name", "idx") if hasattr(entry, a)))

  return {
    tuple(name(e) for e in path): leaf
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def _spec(x, fsdp: int) -> P:
  """FSDP on the leading axis when it divides, else replicated."""
  return P("fsdp") if x.ndim and x.shape[0] % fsdp == 0 else P()


def _sharded(tree, mesh: Mesh):
  fsdp = mesh.shape["fsdp"]
  return jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, _spec(x, fsdp))), tree)


def _step_files(step_dir: pathlib.Path, item: str) -> list[pathlib.Path]:
  """The OCDBT data files of one item (the array bytes)."""
  files = sorted(p for p in (step_dir / item).rglob("*") if p.is_file() and p.parent.name == "d")
  assert files, f"no array data files under {step_dir / item}"
  return files


# -- Round trips -----------------------------------------------------------------------------


def test_full_state_round_trip_is_bit_exact(tmp_path, full_state):
  with TrainCheckpointer(tmp_path, max_to_keep=2) as ckpt:
    assert ckpt.restore() is None and ckpt.latest_step() is None
    assert ckpt.save(7, full_state)
    ckpt.wait()
    target = {k: _abstract(full_state[k]) for k in PYTREE_ITEMS}
    step, restored = ckpt.restore(target=target)
  assert step == restored["step"] == 7
  assert isinstance(restored["params"], nnx.State)
  _assert_trees_equal(restored["params"], full_state["params"])
  _assert_trees_equal(restored["opt_state"], full_state["opt_state"])
  assert jax.dtypes.issubdtype(restored["rng"].dtype, jax.dtypes.prng_key)
  assert jax.random.key_impl(restored["rng"]) == jax.random.key_impl(full_state["rng"])
  np.testing.assert_array_equal(_host(restored["rng"]), _host(full_state["rng"]))
  assert restored["data_state"] == full_state["data_state"]
  assert restored["config"] == full_state["config"]

  # Without a target: same values (plain containers), typed key still typed.
  with TrainCheckpointer(tmp_path) as ckpt:
    _, untargeted = ckpt.restore()
  np.testing.assert_array_equal(_host(untargeted["rng"]), _host(full_state["rng"]))
  flat, want = _by_path(untargeted["params"]), _by_path(full_state["params"])
  assert flat.keys() == want.keys()
  for k, v in want.items():
    np.testing.assert_array_equal(flat[k], v)


def test_partial_restore_and_bad_target(tmp_path, full_state):
  with TrainCheckpointer(tmp_path) as ckpt:
    ckpt.save(7, full_state, wait=True)
    _, only_params = ckpt.restore(target={"params": _abstract(full_state["params"])})
    assert set(only_params) == {"step", "params", "data_state", "config"}
    _assert_trees_equal(only_params["params"], full_state["params"])
    # The target's dtypes win (e.g. restoring fp32 weights as bf16 for evaluation).
    bf16 = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, jnp.bfloat16, sharding=x.sharding),
      full_state["params"],
    )
    _, cast = ckpt.restore(target={"params": bf16})
    for got, want in zip(jax.tree.leaves(cast["params"]), jax.tree.leaves(full_state["params"])):
      assert got.dtype == jnp.bfloat16
      np.testing.assert_array_equal(np.asarray(got), np.asarray(want.astype(jnp.bfloat16)))
    with pytest.raises(KeyError, match="ema"):
      ckpt.restore(target={"ema": _abstract(full_state["params"])})


def test_reshard_from_8_devices_to_4_and_1(tmp_path, full_state):
  devices = np.array(jax.devices())
  assert devices.size >= 8, "conftest should force 8 host devices"
  mesh8 = Mesh(devices[:8].reshape(2, 4), ("data", "fsdp"))
  state = dict(full_state)
  for name in ("params", "opt_state"):
    state[name] = _sharded(full_state[name], mesh8)
  state["rng"] = jax.device_put(full_state["rng"], NamedSharding(mesh8, P()))
  embed = jax.tree.leaves(state["params"])[0]
  assert len(embed.sharding.device_set) == 8

  with TrainCheckpointer(tmp_path) as ckpt:
    ckpt.save(7, state, wait=True)

  mesh4 = Mesh(devices[:4].reshape(2, 2), ("data", "fsdp"))
  one = jax.sharding.make_single_device_sharding(devices[0])
  targets = {
    "4 devices": lambda x: NamedSharding(mesh4, _spec(x, 2)),
    "1 device": lambda x: one,
  }
  for label, sharding_of in targets.items():

    def to_target(x, sharding_of=sharding_of):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_of(x))

    target = {name: jax.tree.map(to_target, full_state[name]) for name in ("params", "opt_state")}
    rng_sharding = NamedSharding(mesh4, P()) if label == "4 devices" else one
    target["rng"] = jax.ShapeDtypeStruct((), full_state["rng"].dtype, sharding=rng_sharding)
    with TrainCheckpointer(tmp_path) as ckpt:
      step, restored = ckpt.restore(target=target)
    assert step == 7
    for name in ("params", "opt_state"):
      _assert_trees_equal(restored[name], full_state[name])
      for leaf, want in zip(jax.tree.leaves(restored[name]), jax.tree.leaves(target[name])):
        assert leaf.sharding == want.sharding, (label, name, leaf.sharding, want.sharding)
    np.testing.assert_array_equal(_host(restored["rng"]), _host(full_state["rng"]))
    assert restored["rng"].sharding.device_set == rng_sharding.device_set


# -- Policies --------------------------------------------------------------------------------


def test_interval_keep_last_n_and_async_wait(tmp_path):
  with TrainCheckpointer(tmp_path, max_to_keep=2, save_interval_steps=2) as ckpt:
    decisions = {step: ckpt.should_save(step) for step in range(1, 10)}
    for step in range(1, 10):
      assert not ckpt.maybe_save(step, lambda s=step: _small_state(s))
    ckpt.wait()
    assert [s for s, d in decisions.items() if d] == [2, 4, 6, 8]
    assert ckpt.all_steps() == [6, 8]
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == [6, 8]

    assert ckpt.save(9, _small_state(9))  # Forced: off the interval.
    ckpt.wait()
    assert ckpt.all_steps() == [8, 9] and ckpt.latest_step() == 9
    assert (tmp_path / "9" / MANIFEST_FILE).exists()
    assert not ckpt.save(9, _small_state(9))  # Already saved by this checkpointer.
    assert not ckpt.save(11, _small_state(11), force=False)  # Not on the interval.
    assert ckpt.save(10, _small_state(10), force=False)
    ckpt.wait()
    assert ckpt.all_steps() == [9, 10]
    _, restored = ckpt.restore()
    np.testing.assert_array_equal(restored["params"]["w"], _small_state(10)["params"]["w"])

  # A fresh checkpointer resumes the interval after the newest step and refuses
  # to overwrite a good step it did not write.
  with TrainCheckpointer(tmp_path, max_to_keep=2, save_interval_steps=2) as ckpt:
    assert not ckpt.should_save(10) and ckpt.should_save(12)
    with pytest.raises(FileExistsError, match="step 10"):
      ckpt.save(10, _small_state(10))


def test_invalid_arguments(tmp_path):
  with TrainCheckpointer(tmp_path) as ckpt:
    with pytest.raises(ValueError, match="does not match"):
      ckpt.save(3, {**_small_state(4), "step": 4})
    with pytest.raises(ValueError, match=">= 0"):
      ckpt.save(-1, _small_state(1))
    with pytest.raises(ValueError, match="reserved"):
      ckpt.save(1, {"train_meta": {"w": jnp.ones(2)}})
  with pytest.raises(ValueError, match="max_to_keep"):
    TrainCheckpointer(tmp_path, max_to_keep=0)


# -- Preemption ------------------------------------------------------------------------------


def test_preemption_flag_saves_synchronously(tmp_path):
  before = signal.getsignal(signal.SIGTERM)
  with TrainCheckpointer(tmp_path, save_interval_steps=100) as ckpt:
    ckpt.install_preemption_handler()
    assert not ckpt.maybe_save(1, _small_state(1)) and not ckpt.reached_preemption(1)
    os.kill(os.getpid(), signal.SIGTERM)  # Handled in the main thread: only sets the flag.
    assert ckpt.preemption_requested and ckpt.reached_preemption(2)
    assert ckpt.all_steps() == []
    assert ckpt.maybe_save(2, _small_state(2))
    # Committed (with its manifest) before maybe_save returned, without wait().
    assert ckpt.all_steps() == [2] and (tmp_path / "2" / MANIFEST_FILE).exists()
  assert signal.getsignal(signal.SIGTERM) == before


def test_second_sigint_falls_through_to_previous_handler(tmp_path):
  # Python's own SIGINT handler as the previous one, whatever an earlier test in this worker
  # process left installed (the suite runs under xdist).
  outer = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with TrainCheckpointer(tmp_path) as ckpt:
      ckpt.install_preemption_handler(signals=(signal.SIGINT,))
      signal.raise_signal(signal.SIGINT)
      assert ckpt.preemption_requested
      with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, outer)


def test_sigterm_subprocess_saves_and_exits_cleanly(tmp_path):
  ckpt_dir = tmp_path / "ckpt"
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
  )
  with open(tmp_path / "stderr.txt", "wb") as stderr:
    proc = subprocess.Popen(
      [sys.executable, str(HELPER), str(ckpt_dir)],
      stdout=subprocess.PIPE,
      stderr=stderr,
      env=env,
      cwd=tmp_path,
      text=True,
    )
    try:
      deadline = time.monotonic() + 120
      lines = []
      while "READY" not in lines:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if not line:
          pytest.fail(f"helper did not start: {lines}\n{(tmp_path / 'stderr.txt').read_text()}")
        lines.append(line.strip())
      proc.send_signal(signal.SIGTERM)
      out, _ = proc.communicate(timeout=120)
    finally:
      if proc.poll() is None:
        proc.kill()
  lines += out.split()
  assert proc.returncode == 0, (lines, (tmp_path / "stderr.txt").read_text()[-3000:])
  saved = int(out.split("PREEMPTED")[1].split()[0])

  with TrainCheckpointer(ckpt_dir) as ckpt:
    assert ckpt.latest_step() == saved
    assert len(ckpt.all_steps()) <= 2  # max_to_keep=2 in the helper.
    step, restored = ckpt.restore()
  assert step == saved
  np.testing.assert_array_equal(restored["params"]["w"], np.full((4, 8), float(saved)))
  np.testing.assert_array_equal(
    _host(restored["rng"]), _host(jax.random.fold_in(jax.random.key(0), saved))
  )
  assert restored["data_state"] == {"consumed": 2 * saved}


# -- Corruption and failures -----------------------------------------------------------------


def _damage(step_dir: pathlib.Path, how: str) -> None:
  data = _step_files(step_dir, "params")[0]
  if how in ("truncate", "truncate_without_manifest"):
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    if how == "truncate_without_manifest":
      (step_dir / MANIFEST_FILE).unlink()
  elif how == "delete":
    data.unlink()
  elif how == "bitflip":
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
  else:
    raise ValueError(how)


@pytest.mark.parametrize("how", ["truncate", "delete", "bitflip", "truncate_without_manifest"])
def test_corrupt_latest_step_falls_back(tmp_path, caplog, how):
  with TrainCheckpointer(tmp_path, max_to_keep=3) as ckpt:
    for step in (1, 2):
      ckpt.save(step, _small_state(step), wait=True)
  _damage(tmp_path / "2", how)

  target = {"params": _abstract(_small_state(0)["params"])}
  with TrainCheckpointer(tmp_path) as ckpt:
    caplog.clear()
    with caplog.at_level("WARNING"):
      step, restored = ckpt.restore(target=target)
    assert step == 1
    np.testing.assert_array_equal(restored["params"]["w"], _small_state(1)["params"]["w"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("step 2" in m and "corrupt" in m for m in warnings), warnings
    assert ckpt.latest_step() == 1
    with pytest.raises(CheckpointCorruptError, match="step 2") as info:
      ckpt.restore(step=2, target=target)
    assert info.value.step == 2 and str(tmp_path / "2") in str(info.value)

    # Resuming from step 1 and saving step 2 again replaces the damaged directory.
    ckpt.save(2, _small_state(2), wait=True)
    assert ckpt.all_steps() == [1, 2]
    step, restored = ckpt.restore(target=target)
  assert step == 2
  np.testing.assert_array_equal(restored["params"]["w"], _small_state(2)["params"]["w"])


def test_every_step_corrupt_raises_instead_of_starting_over(tmp_path):
  with TrainCheckpointer(tmp_path) as ckpt:
    ckpt.save(1, _small_state(1), wait=True)
  _damage(tmp_path / "1", "truncate")
  with TrainCheckpointer(tmp_path) as ckpt:
    with pytest.raises(CheckpointCorruptError, match="no checkpoint step .* restored: step 1"):
      ckpt.restore()


def test_interrupted_save_is_ignored(tmp_path, caplog):
  with TrainCheckpointer(tmp_path) as ckpt:
    for step in (1, 2, 3):
      ckpt.save(step, _small_state(step), wait=True)
  (tmp_path / "2" / "commit_success.txt").unlink()  # Commit marker never written.
  (tmp_path / "3" / "_CHECKPOINT_METADATA").unlink()  # Metadata never written.
  (tmp_path / "4.orbax-checkpoint-tmp").mkdir()  # A save that never finished.

  with caplog.at_level("WARNING"):
    ckpt = TrainCheckpointer(tmp_path)
  with ckpt:
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("step 2" in m and "commit_success.txt" in m for m in warnings), warnings
    assert any("step 3" in m and "_CHECKPOINT_METADATA" in m for m in warnings), warnings
    assert ckpt.all_steps() == [1] and ckpt.latest_step() == 1
    step, restored = ckpt.restore()
    assert step == 1 and restored["data_state"] == {"consumed": 1}
    with pytest.raises(CheckpointCorruptError, match="step 3"):
      ckpt.restore(step=3)
    with pytest.raises(FileNotFoundError, match="step 9"):
      ckpt.restore(step=9)
    ckpt.save(2, _small_state(2), wait=True)  # Replaces the incomplete directory.
    assert ckpt.all_steps() == [1, 2]


def test_failed_async_save_keeps_earlier_steps(tmp_path, monkeypatch):
  with TrainCheckpointer(tmp_path, max_to_keep=2) as ckpt:
    for step in (1, 2):
      ckpt.save(step, _small_state(step), wait=True)

    async def failing_write(self, directory, checkpointable, **kwargs):
      del self, checkpointable, kwargs
      await directory.await_creation()
      raise OSError("disk full (simulated)")

    monkeypatch.setattr(ocp.v1.handlers.JsonHandler, "_background_save", failing_write)
    assert ckpt.save(3, _small_state(3))  # Async: the failure shows up at wait().
    with pytest.raises(CheckpointSaveError, match="step 3.*disk full") as info:
      ckpt.wait()
    assert info.value.step == 3
    monkeypatch.undo()

    # Keep-last-N did not run: both earlier steps are intact and restorable.
    assert ckpt.all_steps() == [1, 2]
    step, restored = ckpt.restore()
    assert step == 2 and restored["data_state"] == {"consumed": 2}
    _, restored = ckpt.restore(step=1)
    np.testing.assert_array_equal(restored["params"]["w"], _small_state(1)["params"]["w"])

    ckpt.save(3, _small_state(3), wait=True)  # A retry works; now GC runs.
    assert ckpt.all_steps() == [2, 3]


def test_unserialisable_data_state_is_rejected_before_writing(tmp_path):
  with TrainCheckpointer(tmp_path) as ckpt:
    ckpt.save(1, _small_state(1), wait=True)
    bad = {**_small_state(2), "data_state": {"buffer": np.arange(3)}}
    with pytest.raises(TypeError, match="data_state.*JSON"):
      ckpt.save(2, bad)
    assert not (tmp_path / "2").exists()
    assert ckpt.all_steps() == [1]
    assert json.loads((tmp_path / "1" / "data_state" / "data.json").read_text()) == {"consumed": 1}


def test_relative_directory_is_resolved(tmp_path, monkeypatch):
  """A relative checkpoint directory works (Orbax itself needs absolute paths)."""
  monkeypatch.chdir(tmp_path)
  state = {"params": {"w": jnp.arange(4.0)}, "step": 3}
  with TrainCheckpointer("relative/ckpt", async_save=False) as ckpt:
    ckpt.save(3, state, wait=True)
  with TrainCheckpointer("relative/ckpt") as ckpt:
    step, restored = ckpt.restore()
  assert step == 3
  np.testing.assert_array_equal(np.asarray(restored["params"]["w"]), np.arange(4.0))
