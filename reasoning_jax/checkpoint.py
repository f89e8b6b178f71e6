"""Training checkpoints on Orbax: async saves, keep-last-N, preemption, resharding, integrity.

`TrainCheckpointer` saves and restores one *training state*, a dict of items::

  state = {
      "params": nnx.state(model),      # any pytree of jax arrays (sharded or not)
      "opt_state": opt_state,          # optax state pytree
      "step": step,                    # int (also the directory name)
      "rng": jax.random.key(0),        # typed PRNG keys round-trip (anywhere in a pytree)
      "data_state": it.get_state(),    # JSON-serialisable dict (e.g. a grain iterator state)
      "config": cfg.to_dict(),         # JSON-serialisable dict (e.g. an ml_collections ConfigDict)
  }

Any further key is saved as another pytree item (e.g. "ema_params"); keys listed in
`json_items` (default "data_state" and "config") are stored as JSON files.

Typical loop::

  with TrainCheckpointer(workdir / "ckpt", max_to_keep=3, save_interval_steps=1000) as ckpt:
    ckpt.install_preemption_handler()          # SIGTERM / SIGINT set a flag, nothing more
    restored = ckpt.restore(target=abstract_state)   # newest good step, or None
    start = 0 if restored is None else restored[0]
    for step in range(start + 1, num_steps + 1):
      state = train_step(state)
      if ckpt.maybe_save(step, state):         # interval saves are async; True = preempted,
        break                                  # step saved synchronously: exit cleanly
    ckpt.save(num_steps, state)                # a final save (no-op if already saved)

Why Orbax's v1 API (`orbax.checkpoint.v1`)
------------------------------------------
`ocp.v1.training.Checkpointer` is available and behaves identically with the pinned
orbax-checkpoint (0.12.x) on both supported Pythons. It gives named *checkpointables*
per step (one directory per item, so params can be restored without the optimizer),
async saves whose device-to-host copy happens before `save` returns (donating the
arrays afterwards is safe), atomic commits (temporary directory + `commit_success.txt`),
and resharding restores driven by abstract `jax.ShapeDtypeStruct` leaves. Item kinds
are pinned with an `ocp.v1.Context` whose handler registry binds the JSON items to
`JsonHandler`. The v0 `CheckpointManager` would work as well, but v1 is the
supported path forward and needs less glue. Two policies are deliberately *not*
delegated to Orbax:

* Save decisions (interval, preemption) are made here and every Orbax save is
  forced, because the preemption flag comes from our signal handler and a
  preemption save must block.
* Garbage collection (keep-last-N) is done here, after a save has been confirmed
  committed, and counts only *good* steps; Orbax is given its default
  `PreserveAll` policy. (Orbax would prune its in-memory step list before a save
  commits.) A failed save therefore never deletes anything.

Layout on disk
--------------
::

  <directory>/
    <step>/                          one committed step, e.g. 1000/
      _CHECKPOINT_METADATA           Orbax: item handlers, init/commit timestamps
      commit_success.txt             Orbax commit marker, written last
      train_meta/data.json           ours: format version, step, item kinds, typed-key paths
      params/  opt_state/  rng/ ...  Orbax PyTree items (OCDBT + zarr3: _METADATA, _sharding,
                                     manifest.ocdbt, d/..., ocdbt.process_<i>/...)
      data_state/data.json           JSON items
      config/data.json
      train_manifest.json            ours, written right after the commit: size and CRC32
                                     of every file of the step
    <step>.orbax-checkpoint-tmp*/    an in-flight or interrupted save: never read, removed
                                     when a checkpointer is created

Typed PRNG keys are stored as their `jax.random.key_data` (uint32) and re-wrapped with
the recorded implementation on restore. JSON items go through `json.dumps`: tuples
come back as lists and non-string dict keys as strings.

Guarantees
----------
* A step is *complete* only if it has `commit_success.txt`, a `_CHECKPOINT_METADATA`
  with a commit timestamp, and `train_meta`. Incomplete steps (an interrupted save)
  are logged and ignored.
* A complete step is *corrupt* if an item directory is missing, a file listed in its
  `train_manifest.json` is missing or has the wrong size (checked whenever steps are
  listed), or has the wrong CRC32 (checked before every restore when
  `verify_checksums=True`), or, for a step without a manifest (a crash between the
  commit and the manifest write), if loading it fails. Each such step is reported by
  a warning naming the step, its path and the reason.
* `restore()` returns the newest step that is complete, verifies and loads, falling
  back step by step; `restore(step=n)` raises `CheckpointCorruptError` (naming the
  step and path) instead of falling back. When every committed step is unusable it
  raises rather than returning None, so a job never silently restarts from scratch.
  A load error of a step whose manifest verified is not corruption (e.g. a target
  with the wrong shapes) and is raised as is.
* Keep-last-N runs only after a save is confirmed committed and never deletes the
  newest `max_to_keep` good steps; a failed save (raised as `CheckpointSaveError`,
  at the latest by the next `save`/`wait`/`close`) leaves every earlier step in
  place. A leftover incomplete or corrupt directory at the step being saved is
  replaced.
* The signal handler only records the signal. `maybe_save` (or `reached_preemption`)
  sees it at the next step boundary; `maybe_save` then saves synchronously, waits
  for the commit and manifest, and returns True. A second handled signal while the
  first is pending goes to the handler installed before (e.g. a second Ctrl-C
  raises KeyboardInterrupt; a second SIGTERM with the default disposition kills
  the process).

Multi-process (multi-host) runs
-------------------------------
All methods must be called by every process, with the same arguments. Orbax writes
each process's shards and commits collectively; the manifest is written by process 0
and assumes storage that all processes see (GCS, a shared file system); every process
verifies the same files and so reaches the same decisions. A signal reaches only some
hosts, and a save needs all of them, so with `jax.process_count() > 1` preemption is
decided by `jax.experimental.multihost_utils.reached_preemption_sync_point(step)`: JAX's
preemption service (enabled by `jax.distributed.initialize`) catches SIGTERM on any
host and makes every host return True at the same step. `install_preemption_handler`
therefore leaves SIGTERM to JAX in that case, and `maybe_save` must be called at
every step. The multi-process paths are not exercised by this module's tests.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import operator
import re
import signal
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

ocp_v1 = ocp.v1

FORMAT_VERSION = 1
META_ITEM = "train_meta"
MANIFEST_FILE = "train_manifest.json"
COMMIT_MARKER = "commit_success.txt"
ORBAX_STEP_METADATA = "_CHECKPOINT_METADATA"
PYTREE_METADATA = "_METADATA"
JSON_DATA_FILE = "data.json"
DEFAULT_JSON_ITEMS = ("data_state", "config")
_RESERVED_ITEMS = frozenset({META_ITEM, "metrics", "descriptor"})
_ITEM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_STEP_DIR = re.compile(r"[0-9]+")
_CHUNK = 8 << 20

State = dict[str, Any]


class CheckpointCorruptError(RuntimeError):
  """A checkpoint step is incomplete or damaged.

  Attributes:
    step: the step number (None when no step of a directory could be restored).
    path: the step directory (or the checkpoint directory).
    reason: what is wrong with it.
  """

  def __init__(self, step: int | None, path: Any, reason: str):
    self.step, self.path, self.reason = step, str(path), reason
    if step is None:
      super().__init__(f"no checkpoint step under {path} can be restored: {reason}")
    else:
      super().__init__(f"checkpoint step {step} at {path} is unusable: {reason}")


class CheckpointSaveError(RuntimeError):
  """Saving a step failed; earlier steps are untouched.

  Attributes:
    step: the step whose save failed.
    path: the step directory it was written to.
  """

  def __init__(self, step: int, path: Any, message: str):
    self.step, self.path = step, str(path)
    super().__init__(message)


class _StepProblem:
  """Why a step cannot be used: `kind` is "incomplete" or "corrupt"."""

  __slots__ = ("kind", "reason")

  def __init__(self, kind: str, reason: str):
    self.kind, self.reason = kind, reason


# -- Pytree helpers -------------------------------------------------------------------------


def _check_same_on_every_process(name: str, value: Any) -> None:
  """Raises ValueError unless every process passes the same JSON item (a collective).

  A JSON item is written once, so a process whose value differs would resume from
  another process's value. Grain iterator states of per-host shards are positions in the
  shard-local order (`{"next_index": n}`), equal on every host that stepped in lockstep;
  this check turns any other case (e.g. shards that ran out at different steps) into an
  error at save time instead of a silently wrong resume.
  """
  digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
  local = np.frombuffer(digest, np.uint32)
  gathered = np.asarray(multihost_utils.process_allgather(local))
  if not (gathered == gathered[0]).all():
    differing = [i for i in range(gathered.shape[0]) if not (gathered[i] == gathered[0]).all()]
    raise ValueError(
      f"state[{name!r}] differs between processes (process 0 vs {differing}); JSON items "
      f"are written once, so every process must pass the same value (e.g. data iterators "
      f"stepped in lockstep over equal-length shards)"
    )


def _is_typed_key(x: Any) -> bool:
  dtype = getattr(x, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _path_id(path: Sequence[Any]) -> str:
  """A structure-agnostic id of a pytree path (dict key, attribute and index alike)."""
  names = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        names.append(str(getattr(entry, attr)))
        break
    else:
      names.append(str(entry))
  return json.dumps(names)


def _encode_typed_keys(tree: Any) -> tuple[Any, dict[str, str]]:
  """Replaces typed PRNG keys by their uint32 key data; returns the tree and {path: impl}."""
  impls: dict[str, str] = {}

  def encode(path, x):
    if _is_typed_key(x):
      impls[_path_id(path)] = str(jax.random.key_impl(x))
      return jax.random.key_data(x)
    return x

  return jax.tree_util.tree_map_with_path(encode, tree), impls


def _decode_typed_keys(tree: Any, impls: Mapping[str, str]) -> Any:
  if not impls:
    return tree

  def decode(path, x):
    impl = impls.get(_path_id(path))
    return x if impl is None else jax.random.wrap_key_data(x, impl=impl)

  return jax.tree_util.tree_map_with_path(decode, tree)


def _key_data_sharding(sharding: Any, extra_dims: int) -> Any:
  """The sharding of `key_data(keys)` for keys sharded as `sharding`."""
  if sharding is None or isinstance(sharding, jax.sharding.SingleDeviceSharding):
    return sharding
  if isinstance(sharding, jax.sharding.NamedSharding):
    spec = tuple(sharding.spec) + (None,) * extra_dims
    return jax.sharding.NamedSharding(
      sharding.mesh, jax.sharding.PartitionSpec(*spec), memory_kind=sharding.memory_kind
    )
  raise TypeError(
    f"typed PRNG key targets must use NamedSharding or SingleDeviceSharding, "
    f"got {type(sharding).__name__}"
  )


def _abstract_leaf(x: Any, default_sharding: Any) -> Any:
  """The restore target for one leaf: a ShapeDtypeStruct carrying a sharding."""
  if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
    sharding = getattr(x, "sharding", None) or default_sharding
    if _is_typed_key(x):
      data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
      return jax.ShapeDtypeStruct(
        data.shape, data.dtype, sharding=_key_data_sharding(sharding, data.ndim - x.ndim)
      )
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  return x  # numpy arrays and Python scalars are their own targets.


def _abstract_tree(tree: Any) -> Any:
  # Leaves without a sharding: this process's first local device (on several processes each
  # one reads the whole leaf into a process-local array).
  default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: _abstract_leaf(x, default), tree)


# -- File helpers ---------------------------------------------------------------------------


def _read_json(path: epath.Path) -> Any:
  return json.loads(path.read_text())


def _write_json_atomic(path: epath.Path, value: Any) -> None:
  tmp = path.parent / f".{path.name}.tmp"
  tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
  tmp.rename(path)


def _crc32(path: epath.Path) -> int:
  crc = 0
  with path.open("rb") as f:
    while chunk := f.read(_CHUNK):
      crc = zlib.crc32(chunk, crc)
  return crc


def _walk_files(root: epath.Path) -> Iterable[epath.Path]:
  for child in sorted(root.iterdir(), key=lambda p: p.name):
    if child.is_dir():
      yield from _walk_files(child)
    else:
      yield child


def _file_size(path: epath.Path) -> int:
  return int(path.stat().length)


def _build_manifest(step_dir: epath.Path, step: int, checksums: bool) -> dict[str, Any]:
  files = {}
  for f in _walk_files(step_dir):
    rel = str(f.relative_to(step_dir))
    if rel == MANIFEST_FILE or f.name.startswith(f".{MANIFEST_FILE}"):
      continue
    entry: dict[str, int] = {"size": _file_size(f)}
    if checksums:
      entry["crc32"] = _crc32(f)
    files[rel] = entry
  return {"format_version": FORMAT_VERSION, "step": step, "files": files}


# -- The checkpointer -----------------------------------------------------------------------


class TrainCheckpointer:
  """Saves and restores training states under one directory (see the module docstring).

  Use as a context manager, or call `close()`; all methods are meant for the main
  thread and, in multi-process runs, for every process.
  """

  def __init__(
    self,
    directory: str | epath.PathLike,
    *,
    max_to_keep: int | None = 3,
    save_interval_steps: int | None = 1000,
    async_save: bool = True,
    json_items: Sequence[str] = DEFAULT_JSON_ITEMS,
    verify_checksums: bool = True,
    context: Any | None = None,
  ):
    """Opens (creating if needed) a checkpoint directory.

    Args:
      directory: root directory of the step directories (local path or e.g. gs://).
      max_to_keep: how many newest good steps to keep; None keeps all.
      save_interval_steps: `maybe_save` saves at multiples of this step count;
        None saves only on preemption.
      async_save: write in the background (`save` returns after the device-to-host
        copy); False makes every save block until committed.
      json_items: state keys stored as JSON (values must be JSON-serialisable).
      verify_checksums: check every file's CRC32 against the manifest before a
        restore (reads the step once more); sizes are always checked.
      context: an `ocp.v1.Context` with custom Orbax options (array storage, file
        and async options); its handler registry is extended, not replaced.
    """
    if max_to_keep is not None and max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}")
    if save_interval_steps is not None and save_interval_steps < 1:
      raise ValueError(f"save_interval_steps must be >= 1 or None, got {save_interval_steps}")
    json_items = tuple(json_items)
    for name in json_items:
      self._check_item_name(name)
    directory = os.fspath(directory)
    if "://" not in directory:  # Orbax needs absolute local paths.
      directory = os.path.abspath(directory)
    self._directory = epath.Path(directory)
    self._max_to_keep = max_to_keep
    self._interval = save_interval_steps
    self._async = async_save
    self._json_items = json_items
    self._verify_checksums = verify_checksums

    registry = ocp_v1.handlers.local_registry(
      context.checkpointables.registry if context is not None else None
    )
    for name in (*json_items, META_ITEM):
      registry.add(ocp_v1.handlers.JsonHandler, checkpointable_name=name)
    self._context = ocp_v1.Context(context)
    self._context.checkpointables.registry = registry
    self._ckpt = ocp_v1.training.Checkpointer(
      self._directory, context=self._context, cleanup_tmp_directories=True
    )
    self._executor = concurrent.futures.ThreadPoolExecutor(
      max_workers=1, thread_name_prefix="train-checkpointer"
    )
    self._pending: tuple[int, concurrent.futures.Future] | None = None
    self._saved_steps: set[int] = set()
    self._bad_steps: dict[int, str] = {}
    self._warned: set[tuple[int, str]] = set()
    self._closed = False
    self._preempt_signal: int | None = None
    self._previous_handlers: dict[int, Any] = {}
    self._sync_point_warned = False
    latest = self.latest_step()
    self._last_saved = latest
    logging.info("TrainCheckpointer at %s: latest good step %s", self._directory, latest)

  # -- Properties ---------------------------------------------------------------------------

  @property
  def directory(self) -> epath.Path:
    """The root directory."""
    return self._directory

  def step_path(self, step: int) -> epath.Path:
    """The directory of `step`."""
    return self._directory / str(step)

  @property
  def preemption_requested(self) -> bool:
    """True once a preemption signal was received by this process's handler."""
    return self._preempt_signal is not None

  # -- Preemption ---------------------------------------------------------------------------

  def install_preemption_handler(
    self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
  ) -> None:
    """Makes `signals` set the preemption flag (the handler never saves).

    Must be called from the main thread. With several processes, SIGTERM is left
    to JAX's preemption service (see the module docstring).
    """
    if threading.current_thread() is not threading.main_thread():
      raise RuntimeError(
        "install_preemption_handler must be called from the main thread "
        "(Python only delivers signals there)"
      )
    multi = jax.process_count() > 1
    for sig in signals:
      sig = signal.Signals(sig)
      if multi and sig == signal.SIGTERM:
        logging.info(
          "multi-process run: SIGTERM is handled by JAX's preemption service; "
          "not installing a Python handler for it"
        )
        continue
      if sig in self._previous_handlers:
        continue
      self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

  def uninstall_preemption_handler(self) -> None:
    """Restores the signal handlers that were in place before `install_preemption_handler`."""
    if threading.current_thread() is not threading.main_thread():
      return
    for sig, previous in self._previous_handlers.items():
      signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
    self._previous_handlers.clear()

  def _on_signal(self, signum: int, frame: Any) -> None:
    if self._preempt_signal is None:
      self._preempt_signal = signum  # Only a flag: saving happens at the next step boundary.
      return
    previous = self._previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
      previous(signum, frame)
    elif previous == signal.SIG_DFL:
      signal.signal(signum, signal.SIG_DFL)
      signal.raise_signal(signum)

  def reached_preemption(self, step: int) -> bool:
    """Whether the loop should save `step` now and stop.

    One process: a handled signal was received. Several processes: all hosts
    reached JAX's preemption sync point at `step` (call this at every step).
    """
    if jax.process_count() > 1:
      try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
      except RuntimeError as e:
        if not self._sync_point_warned:
          self._sync_point_warned = True
          logging.warning(
            "JAX preemption sync point unavailable (%s); preemption cannot be "
            "coordinated across processes",
            e,
          )
        return False
    return self._preempt_signal is not None

  # -- Saving -------------------------------------------------------------------------------

  def should_save(self, step: int) -> bool:
    """Interval rule used by `maybe_save`: a multiple of the interval, newer than the last save."""
    if self._interval is None or step % self._interval:
      return False
    return self._last_saved is None or step > self._last_saved

  def maybe_save(self, step: int, state: State | Callable[[], State]) -> bool:
    """Saves on the interval (async) or on preemption (sync); True means "stop now".

    Args:
      step: the step the state is at.
      state: the training state, or a callable building it (called only to save).

    Returns:
      True when preemption was reached: `step` is committed and the loop should exit.
    """
    self._check_open()
    if self.reached_preemption(step):
      signame = (
        signal.Signals(self._preempt_signal).name
        if self._preempt_signal is not None
        else "preemption sync point"
      )
      logging.warning("preemption (%s) at step %d: saving synchronously", signame, step)
      try:
        self._settle()
      except CheckpointSaveError as e:  # Still try to save the current step.
        logging.error("%s", e)
      try:
        self.save(step, state() if callable(state) else state, wait=True)
      except FileExistsError:
        logging.info("step %d is already committed on disk", step)
      return True
    if self.should_save(step):
      self.save(step, state() if callable(state) else state)
    return False

  def save(
    self,
    step: int,
    state: State,
    *,
    force: bool = True,
    wait: bool = False,
    overwrite: bool = False,
  ) -> bool:
    """Saves `state` as `step`.

    Args:
      step: the step number (directory name); must be >= 0.
      state: the training state dict (see the module docstring).
      force: save regardless of the interval (False applies `should_save`).
      wait: block until the step is committed (always the case after a preemption).
      overwrite: replace a good step that exists on disk but was not saved by this
        checkpointer (a step it saved itself is skipped).

    Returns:
      Whether a save was started.

    Raises:
      TypeError, ValueError: the state is malformed (nothing is written).
      FileExistsError: the step exists and `overwrite` is False.
      CheckpointSaveError: this or the previous (async) save failed.
    """
    self._check_open()
    step = self._check_step(step)
    if not force and not self.should_save(step):
      return False
    items = self._encode_state(step, state)  # Validates before touching the disk.
    self._settle()
    wait = wait or not self._async or self.preemption_requested
    if step in self._saved_steps:
      logging.info("step %d was already saved by this checkpointer; not saving it again", step)
      if wait:
        self._settle()
      return False
    self._clear_existing(step, overwrite)
    path = self.step_path(step)
    try:
      response = self._ckpt.save_checkpointables_async(step, items, force=True)
    except Exception as e:
      self._recover_after_failure()
      raise CheckpointSaveError(
        step,
        path,
        f"saving step {step} to {path} failed: "
        f"{type(e).__name__}: {e}; earlier steps are untouched",
      ) from e
    if response is None:  # Not expected with force=True.
      raise CheckpointSaveError(step, path, f"Orbax declined to save step {step} to {path}")
    future = self._executor.submit(self._finish_save, step, response)
    self._pending = (step, future)
    self._last_saved = step if self._last_saved is None else max(self._last_saved, step)
    if wait:
      self._settle()
    return True

  def _encode_state(self, step: int, state: Any) -> dict[str, Any]:
    """Checkpointables for Orbax (pytree items with key data, JSON items, `train_meta`)."""
    if not isinstance(state, Mapping):
      raise TypeError(f"state must be a dict of items, got {type(state).__name__}")
    items: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    typed_keys: dict[str, dict[str, str]] = {}
    for name, value in state.items():
      if name == "step":
        if value is not None and int(value) != step:
          raise ValueError(f"state['step']={int(value)} does not match the step argument {step}")
        continue
      self._check_item_name(name)
      if name in self._json_items:
        if value is not None and not isinstance(value, Mapping) and hasattr(value, "to_dict"):
          value = value.to_dict()  # e.g. an ml_collections ConfigDict.
        try:
          json.dumps(value)
        except (TypeError, ValueError) as e:
          raise TypeError(
            f"state[{name!r}] must be JSON-serialisable (it is stored as JSON): {e}"
          ) from e
        if jax.process_count() > 1:
          _check_same_on_every_process(name, value)
        items[name] = value
        kinds[name] = "json"
        continue
      if value is None:
        kinds[name] = "none"
        continue
      encoded, impls = _encode_typed_keys(value)
      if jax.process_count() > 1:
        # Process-local arrays (e.g. an RNG key every process holds) cannot be written as
        # jax.Arrays on several hosts; as numpy values they are (the same on every process).
        encoded = jax.tree.map(
          lambda x: np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x,
          encoded,
        )
      if not jax.tree.leaves(encoded):
        kinds[name] = "empty"  # Orbax cannot write leafless trees; restored from the target.
        continue
      if jax.tree_util.treedef_is_leaf(jax.tree.structure(encoded)):
        # A bare array (e.g. one PRNG key): Orbax items must be containers.
        encoded = {"value": encoded}
        impls = {_path_id(["value"]): impl for impl in impls.values()}
        kinds[name] = "leaf"
      else:
        kinds[name] = "pytree"
      for leaf in jax.tree.leaves(encoded):
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, str)):
          raise TypeError(
            f"state[{name!r}] has a leaf of type {type(leaf).__name__}; pytree "
            f"items may hold only arrays and numbers (list {name!r} in json_items "
            f"to store it as JSON)"
          )
      items[name] = encoded
      if impls:
        typed_keys[name] = impls
    items[META_ITEM] = {
      "format_version": FORMAT_VERSION,
      "step": step,
      "items": kinds,
      "typed_keys": typed_keys,
      "process_count": jax.process_count(),
      "saved_at_unix": time.time(),
    }
    return items

  def _finish_save(self, step: int, response: Any) -> None:
    """Worker thread: waits for Orbax's commit, then writes the integrity manifest."""
    response.result()  # Raises the background save's error.
    path = self.step_path(step)
    problem = self._check_structure(step, path, with_manifest=False)
    if problem is not None:
      raise RuntimeError(
        f"Orbax reported step {step} saved but it is {problem.kind}: {problem.reason}"
      )
    if jax.process_index() != 0:
      return
    try:
      _write_json_atomic(
        path / MANIFEST_FILE, _build_manifest(path, step, checksums=self._verify_checksums)
      )
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.warning(
        "step %d at %s: could not write %s (%s); the step is committed but "
        "will be restored without integrity checks",
        step,
        path,
        MANIFEST_FILE,
        e,
      )

  def _settle(self) -> None:
    """Waits for the pending save; raises its failure; then garbage-collects."""
    if self._pending is None:
      return
    step, future = self._pending
    error: BaseException | None = None
    try:
      future.result()
    except Exception as e:  # pylint: disable=broad-exception-caught
      error = e
    try:
      self._ckpt.wait()  # Also drains Orbax's record of a failed save.
    except Exception as e:  # pylint: disable=broad-exception-caught
      error = error or e
    self._pending = None
    if error is not None:
      self._recover_after_failure()
      path = self.step_path(step)
      raise CheckpointSaveError(
        step,
        path,
        f"saving step {step} to {path} failed: "
        f"{type(error).__name__}: {error}; earlier steps are "
        f"untouched",
      ) from error
    self._saved_steps.add(step)
    self._bad_steps.pop(step, None)
    logging.info("checkpoint step %d committed at %s", step, self.step_path(step))
    self._collect_garbage()

  def _recover_after_failure(self) -> None:
    try:
      self._ckpt.reload()
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.warning("could not rescan %s after a failed save: %s", self._directory, e)
    self._last_saved = max(self._saved_steps | set(self.all_steps()), default=None)

  def _clear_existing(self, step: int, overwrite: bool) -> None:
    path = self.step_path(step)
    if not path.exists():
      return
    problem = self._check_structure(step, path, with_manifest=True)
    if problem is None and step not in self._bad_steps and not overwrite:
      raise FileExistsError(
        f"checkpoint step {step} already exists at {path}; pass overwrite=True to replace it"
      )
    reason = problem.reason if problem else self._bad_steps.get(step, "overwrite=True")
    logging.warning("replacing existing checkpoint step %d at %s (%s)", step, path, reason)
    self._delete_step(step)
    self._bad_steps.pop(step, None)

  def _delete_step(self, step: int) -> None:
    self._ckpt.reload()
    path = self.step_path(step)
    try:
      self._ckpt.delete(step, missing_ok=True)
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.info("Orbax could not delete step %d (%s); removing %s directly", step, e, path)
      if jax.process_index() == 0 and path.exists():
        path.rmtree()
      multihost_utils.sync_global_devices(f"train_checkpointer_delete_{step}")
      self._ckpt.reload()

  def _collect_garbage(self) -> None:
    if self._max_to_keep is None:
      return
    entries = self._scan()
    good = [s for s, problem in entries if problem is None]
    keep = good[-self._max_to_keep :]
    if not keep:
      return
    for s, problem in entries:
      if s < keep[0]:
        why = (
          f"{problem.kind}: {problem.reason}"
          if problem
          else f"older than the newest {self._max_to_keep} good steps"
        )
        logging.info("deleting checkpoint step %d (%s)", s, why)
        self._delete_step(s)
        self._saved_steps.discard(s)
        self._bad_steps.pop(s, None)

  # -- Inspecting ---------------------------------------------------------------------------

  def _step_dirs(self) -> list[int]:
    if not self._directory.exists():
      return []
    return sorted(
      int(p.name) for p in self._directory.iterdir() if _STEP_DIR.fullmatch(p.name) and p.is_dir()
    )

  def _scan(self, *, warn: bool = True) -> list[tuple[int, _StepProblem | None]]:
    """(step, problem or None) for every step directory, cheap checks only."""
    pending = self._pending[0] if self._pending is not None else None
    out = []
    for step in self._step_dirs():
      if step in self._bad_steps:
        problem = _StepProblem("corrupt", self._bad_steps[step])
      else:
        problem = self._check_structure(step, self.step_path(step), with_manifest=True)
      if problem is not None and step == pending:
        continue  # Still being written.
      if problem is not None and warn:
        self._warn(step, problem)
      out.append((step, problem))
    return out

  def all_steps(self) -> list[int]:
    """Steps that are complete and pass the cheap integrity checks, ascending."""
    return [s for s, problem in self._scan() if problem is None]

  def latest_step(self) -> int | None:
    """The newest good step, or None."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def _warn(self, step: int, problem: _StepProblem, *, always: bool = False) -> None:
    if (step, problem.reason) in self._warned and not always:
      return
    self._warned.add((step, problem.reason))
    what = "incomplete (interrupted save?)" if problem.kind == "incomplete" else "corrupt"
    logging.warning(
      "checkpoint step %d at %s is %s and will be skipped: %s",
      step,
      self.step_path(step),
      what,
      problem.reason,
    )

  def _check_structure(
    self, step: int, path: epath.Path, *, with_manifest: bool
  ) -> _StepProblem | None:
    """Commit markers, metadata, item directories and (optionally) manifest sizes."""
    if not path.is_dir():
      return _StepProblem("incomplete", f"{path} does not exist")
    if not (path / COMMIT_MARKER).exists():
      return _StepProblem("incomplete", f"commit marker {COMMIT_MARKER} is missing")
    try:
      orbax_meta = _read_json(path / ORBAX_STEP_METADATA)
    except FileNotFoundError:
      return _StepProblem("incomplete", f"{ORBAX_STEP_METADATA} is missing")
    except (ValueError, OSError) as e:
      return _StepProblem("corrupt", f"{ORBAX_STEP_METADATA} is unreadable: {e}")
    if not orbax_meta.get("commit_timestamp_nsecs"):
      return _StepProblem("incomplete", f"{ORBAX_STEP_METADATA} has no commit timestamp")
    try:
      meta = _read_json(path / META_ITEM / JSON_DATA_FILE)
    except FileNotFoundError:
      return _StepProblem(
        "corrupt", f"{META_ITEM}/{JSON_DATA_FILE} is missing (not written by TrainCheckpointer?)"
      )
    except (ValueError, OSError) as e:
      return _StepProblem("corrupt", f"{META_ITEM}/{JSON_DATA_FILE} is unreadable: {e}")
    if meta.get("step") != step:
      return _StepProblem("corrupt", f"{META_ITEM} records step {meta.get('step')}")
    for name, kind in meta.get("items", {}).items():
      required = {"json": JSON_DATA_FILE, "pytree": PYTREE_METADATA, "leaf": PYTREE_METADATA}.get(
        kind
      )
      if required and not (path / name / required).exists():
        return _StepProblem("corrupt", f"item {name!r} is missing {name}/{required}")
    if with_manifest:
      return self._check_manifest(path, checksums=False)
    return None

  def _check_manifest(self, path: epath.Path, *, checksums: bool) -> _StepProblem | None:
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
      return None
    try:
      files = _read_json(manifest_path)["files"]
    except (ValueError, KeyError, OSError) as e:
      return _StepProblem("corrupt", f"{MANIFEST_FILE} is unreadable: {e}")
    for rel, expected in files.items():
      f = path / rel
      if not f.exists():
        return _StepProblem("corrupt", f"file {rel} is missing")
      size = _file_size(f)
      if size != expected["size"]:
        return _StepProblem(
          "corrupt", f"file {rel} has {size} bytes, expected {expected['size']} (truncated?)"
        )
      if checksums and "crc32" in expected and _crc32(f) != expected["crc32"]:
        return _StepProblem("corrupt", f"file {rel} fails its CRC32 check")
    return None

  def verify_step(self, step: int, *, checksums: bool | None = None) -> None:
    """Raises `CheckpointCorruptError` unless `step` is complete and matches its manifest."""
    step = self._check_step(step)
    path = self.step_path(step)
    problem = self._check_structure(step, path, with_manifest=True)
    if problem is None:
      checksums = self._verify_checksums if checksums is None else checksums
      problem = self._check_manifest(path, checksums=checksums) if checksums else None
    if problem is not None:
      raise CheckpointCorruptError(step, path, problem.reason)

  # -- Restoring ----------------------------------------------------------------------------

  def restore(
    self, step: int | None = None, target: Mapping[str, Any] | None = None
  ) -> tuple[int, State] | None:
    """Restores a training state.

    Args:
      step: the step to restore; None picks the newest good step, falling back
        past incomplete or corrupt ones (each is logged).
      target: a state dict whose pytree items give the structure, dtypes and
        shardings to restore onto: `jax.ShapeDtypeStruct` leaves with `.sharding`
        (e.g. from `nnx.eval_shape`), or concrete arrays. Only the pytree items
        named in it are restored (e.g. just "params"); JSON items and "step" are
        always returned. Leaves without a sharding go to this process's first local
        device (on several processes each reads the whole leaf). None restores every item with the saved shardings, which
        needs the devices the checkpoint was written from.

    Returns:
      (step, state) with `state["step"] == step`, or None when no step was ever
      committed.

    Raises:
      FileNotFoundError: `step` was given and does not exist.
      CheckpointCorruptError: `step` was given and is incomplete or corrupt, or
        no committed step can be restored.
      KeyError: `target` names an item the checkpoint does not have.
    """
    self._check_open()
    self._settle()
    if step is not None:
      step = self._check_step(step)
      path = self.step_path(step)
      if not path.exists():
        raise FileNotFoundError(
          f"no checkpoint step {step} at {path} (good steps: {self.all_steps()})"
        )
      if step in self._bad_steps:
        raise CheckpointCorruptError(step, path, self._bad_steps[step])
      return step, self._restore_step(step, target)
    failures = []
    for s, problem in reversed(self._scan(warn=False)):
      if problem is None:
        try:
          restored = self._restore_step(s, target)
        except CheckpointCorruptError as e:
          problem = _StepProblem("corrupt", e.reason)
          self._bad_steps[s] = e.reason
        else:
          if failures:
            logging.warning("restored checkpoint step %d, the newest usable one", s)
          return s, restored
      self._warn(s, problem, always=True)
      if problem.kind == "corrupt":
        failures.append(f"step {s}: {problem.reason}")
    if failures:
      raise CheckpointCorruptError(None, self._directory, "; ".join(failures))
    return None

  def _restore_step(self, step: int, target: Mapping[str, Any] | None) -> State:
    """Verifies and loads one step; corruption raises `CheckpointCorruptError`."""
    path = self.step_path(step)
    problem = self._check_structure(step, path, with_manifest=True)
    verified = (path / MANIFEST_FILE).exists()
    if problem is None and self._verify_checksums and verified:
      problem = self._check_manifest(path, checksums=True)
    if problem is not None:
      raise CheckpointCorruptError(step, path, problem.reason)
    meta = _read_json(path / META_ITEM / JSON_DATA_FILE)
    kinds: dict[str, str] = meta["items"]
    if target is not None:
      unknown = sorted(set(target) - set(kinds) - {"step"})
      if unknown:
        raise KeyError(
          f"target names items {unknown} that checkpoint step {step} at {path} "
          f"does not have (it has {sorted(kinds)})"
        )
    abstract: dict[str, Any] = {}
    for name, kind in kinds.items():
      if kind == "json":
        abstract[name] = None
      elif kind in ("pytree", "leaf") and (target is None or name in target):
        tree = None if target is None or target[name] is None else target[name]
        if tree is not None:
          tree = _abstract_tree(tree)
          if kind == "leaf":
            tree = {"value": tree}
        abstract[name] = tree
    try:
      with self._context, warnings.catch_warnings():
        # Documented behaviour of target=None; Orbax warns about it on every leaf.
        warnings.filterwarnings("ignore", message="Sharding info not provided")
        loaded = ocp_v1.load_checkpointables(path, abstract)
    except Exception as e:
      if verified:
        raise  # The files are intact: a target mismatch or a bug, not corruption.
      raise CheckpointCorruptError(step, path, f"loading failed: {type(e).__name__}: {e}") from e
    state: State = {"step": step}
    typed_keys = meta.get("typed_keys", {})
    for name, kind in kinds.items():
      if kind == "json":
        state[name] = loaded[name]
      elif kind == "none":
        if target is None or name in target:
          state[name] = None
      elif kind == "empty":
        if target is None or name in target:
          state[name] = None if target is None else target[name]
      elif name in loaded:
        value = _decode_typed_keys(loaded[name], typed_keys.get(name, {}))
        state[name] = value["value"] if kind == "leaf" else value
    return state

  # -- Lifecycle ----------------------------------------------------------------------------

  def wait(self) -> None:
    """Blocks until the pending save is committed (raises `CheckpointSaveError` if it failed)."""
    self._settle()

  def close(self) -> None:
    """Waits for the pending save, releases Orbax resources and restores signal handlers."""
    if self._closed:
      return
    self._closed = True
    try:
      self._settle()
    finally:
      self.uninstall_preemption_handler()
      self._executor.shutdown(wait=True)
      self._ckpt.close()

  def __enter__(self) -> TrainCheckpointer:
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is None:
      self.close()
      return
    try:
      self.close()
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.error("closing the checkpointer failed while handling %s: %s", exc_type.__name__, e)

  # -- Validation ---------------------------------------------------------------------------

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError(f"TrainCheckpointer for {self._directory} is closed")

  @staticmethod
  def _check_step(step: Any) -> int:
    try:
      value = operator.index(step)
    except TypeError:
      raise TypeError(f"step must be an int, got {type(step).__name__}") from None
    if value < 0:
      raise ValueError(f"step must be >= 0, got {value}")
    return int(value)

  @staticmethod
  def _check_item_name(name: Any) -> None:
    if not isinstance(name, str) or not _ITEM_NAME.fullmatch(name):
      raise ValueError(f"state item names must match {_ITEM_NAME.pattern}, got {name!r}")
    if name in _RESERVED_ITEMS:
      raise ValueError(f"state item name {name!r} is reserved")
