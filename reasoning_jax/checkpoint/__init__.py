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
every step. The multi-process paths are not exercised by this package's tests.

Modules
-------
One concept per module; this package re-exports the public names.

* `checkpointer`: `TrainCheckpointer` (save decisions, async saves, keep-last-N, listing,
  restore with fallback).
* `codec`: the training state as Orbax checkpointables and back (item kinds, JSON items,
  `train_meta`).
* `manifest`: the integrity manifest and the completeness / corruption checks of a step.
* `typed_keys`: typed PRNG keys stored as key data under pytree-path ids.
* `targets`: abstract restore targets (shape, dtype, sharding) for resharding restores.
* `preemption`: the SIGTERM / SIGINT flag and the per-step preemption decision.
* `layout`: names on disk, the format version, step and item-name checks.
* `errors`: `CheckpointCorruptError`, `CheckpointSaveError` and the internal `StepProblem`.
"""

from reasoning_jax.checkpoint.checkpointer import TrainCheckpointer
from reasoning_jax.checkpoint.errors import CheckpointCorruptError, CheckpointSaveError
from reasoning_jax.checkpoint.layout import (
  COMMIT_MARKER,
  DEFAULT_JSON_ITEMS,
  FORMAT_VERSION,
  JSON_DATA_FILE,
  MANIFEST_FILE,
  META_ITEM,
  ORBAX_STEP_METADATA,
  PYTREE_METADATA,
  State,
)

__all__ = [
  "TrainCheckpointer",
  "CheckpointCorruptError",
  "CheckpointSaveError",
  "State",
  "FORMAT_VERSION",
  "META_ITEM",
  "MANIFEST_FILE",
  "COMMIT_MARKER",
  "ORBAX_STEP_METADATA",
  "PYTREE_METADATA",
  "JSON_DATA_FILE",
  "DEFAULT_JSON_ITEMS",
]
