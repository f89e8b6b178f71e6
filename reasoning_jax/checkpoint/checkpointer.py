"""Save and restore of training states: `TrainCheckpointer`, the policies around Orbax's saves.

The checkpointer decides when to save (interval, preemption), runs Orbax's async save and
writes the integrity manifest after the commit, keeps the newest N good steps, lists steps
(skipping incomplete and corrupt ones) and restores the newest usable step, falling back past
damaged ones. The state format, the integrity checks, typed PRNG keys, restore targets and the
signal handling live in the sibling modules; the `reasoning_jax.checkpoint` docstring describes
the whole (layout on disk, guarantees, multi-process runs).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from reasoning_jax.checkpoint.codec import abstract_items, decode_state, encode_state
from reasoning_jax.checkpoint.errors import CheckpointCorruptError, CheckpointSaveError, StepProblem
from reasoning_jax.checkpoint.layout import (
  DEFAULT_JSON_ITEMS,
  JSON_DATA_FILE,
  MANIFEST_FILE,
  META_ITEM,
  State,
  check_item_name,
  check_step,
  step_dirs,
)
from reasoning_jax.checkpoint.manifest import (
  build_manifest,
  check_manifest,
  check_structure,
  read_json,
  write_json_atomic,
)
from reasoning_jax.checkpoint.preemption import PreemptionHandler
from reasoning_jax.validation import check_positive_int

ocp_v1 = ocp.v1


class TrainCheckpointer:
  """Saves and restores training states under one directory (see `reasoning_jax.checkpoint`).

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
    if max_to_keep is not None:
      check_positive_int(max_to_keep, "max_to_keep")
    if save_interval_steps is not None:
      check_positive_int(save_interval_steps, "save_interval_steps")
    json_items = tuple(json_items)
    for name in json_items:
      check_item_name(name)
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
    self._preemption = PreemptionHandler()
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
    return self._preemption.requested

  # -- Preemption (see `reasoning_jax.checkpoint.preemption`) -------------------------------

  def install_preemption_handler(
    self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
  ) -> None:
    """Makes `signals` set the preemption flag (the handler never saves).

    Must be called from the main thread. With several processes, SIGTERM is left
    to JAX's preemption service (see the `reasoning_jax.checkpoint` docstring).
    """
    self._preemption.install(signals)

  def uninstall_preemption_handler(self) -> None:
    """Restores the signal handlers that were in place before `install_preemption_handler`."""
    self._preemption.uninstall()

  def reached_preemption(self, step: int) -> bool:
    """Whether the loop should save `step` now and stop.

    One process: a handled signal was received. Several processes: all hosts
    reached JAX's preemption sync point at `step` (call this at every step).
    """
    return self._preemption.reached(step)

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
      logging.warning(
        "preemption (%s) at step %d: saving synchronously", self._preemption.source, step
      )
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
      state: the training state dict (see the `reasoning_jax.checkpoint` docstring).
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
    step = check_step(step)
    if not force and not self.should_save(step):
      return False
    items = encode_state(step, state, self._json_items)  # Validates before touching the disk.
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
      raise CheckpointSaveError.from_error(step, path, e) from e
    if response is None:  # Not expected with force=True.
      raise CheckpointSaveError(step, path, f"Orbax declined to save step {step} to {path}")
    future = self._executor.submit(self._finish_save, step, response)
    self._pending = (step, future)
    self._last_saved = step if self._last_saved is None else max(self._last_saved, step)
    if wait:
      self._settle()
    return True

  def _finish_save(self, step: int, response: Any) -> None:
    """Worker thread: waits for Orbax's commit, then writes the integrity manifest."""
    response.result()  # Raises the background save's error.
    path = self.step_path(step)
    problem = check_structure(step, path, with_manifest=False)
    if problem is not None:
      raise RuntimeError(
        f"Orbax reported step {step} saved but it is {problem.kind}: {problem.reason}"
      )
    if jax.process_index() != 0:
      return
    try:
      write_json_atomic(
        path / MANIFEST_FILE, build_manifest(path, step, checksums=self._verify_checksums)
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
      raise CheckpointSaveError.from_error(step, self.step_path(step), error) from error
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
    problem = check_structure(step, path, with_manifest=True)
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

  def _scan(self, *, warn: bool = True) -> list[tuple[int, StepProblem | None]]:
    """(step, problem or None) for every step directory, cheap checks only."""
    pending = self._pending[0] if self._pending is not None else None
    out = []
    for step in step_dirs(self._directory):
      if step in self._bad_steps:
        problem = StepProblem("corrupt", self._bad_steps[step])
      else:
        problem = check_structure(step, self.step_path(step), with_manifest=True)
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

  def _warn(self, step: int, problem: StepProblem, *, always: bool = False) -> None:
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

  def verify_step(self, step: int, *, checksums: bool | None = None) -> None:
    """Raises `CheckpointCorruptError` unless `step` is complete and matches its manifest."""
    step = check_step(step)
    path = self.step_path(step)
    problem = check_structure(step, path, with_manifest=True)
    if problem is None:
      checksums = self._verify_checksums if checksums is None else checksums
      problem = check_manifest(path, checksums=checksums) if checksums else None
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
        device (on several processes each reads the whole leaf). None restores every
        item with the saved shardings, which needs the devices the checkpoint was
        written from.

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
      step = check_step(step)
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
          problem = StepProblem("corrupt", e.reason)
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
    problem = check_structure(step, path, with_manifest=True)
    verified = (path / MANIFEST_FILE).exists()
    if problem is None and self._verify_checksums and verified:
      problem = check_manifest(path, checksums=True)
    if problem is not None:
      raise CheckpointCorruptError(step, path, problem.reason)
    meta = read_json(path / META_ITEM / JSON_DATA_FILE)
    abstract = abstract_items(step, path, meta["items"], target)
    try:
      with self._context, warnings.catch_warnings():
        # Documented behaviour of target=None; Orbax warns about it on every leaf.
        warnings.filterwarnings("ignore", message="Sharding info not provided")
        loaded = ocp_v1.load_checkpointables(path, abstract)
    except Exception as e:
      if verified:
        raise  # The files are intact: a target mismatch or a bug, not corruption.
      raise CheckpointCorruptError(step, path, f"loading failed: {type(e).__name__}: {e}") from e
    return decode_state(step, meta, loaded, target)

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

  # -- Guards -------------------------------------------------------------------------------

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError(f"TrainCheckpointer for {self._directory} is closed")
