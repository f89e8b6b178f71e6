"""A tiny training loop for the SIGTERM test of `reasoning_jax.checkpoint`.

Usage: python preemption_loop.py CHECKPOINT_DIR

Prints "READY" once the loop runs, then trains until preempted; on SIGTERM the
next `maybe_save` saves synchronously, the script prints "PREEMPTED <step>" and
exits 0. The state at step s is deterministic (see `state_at`) so the test can
check what it restores.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp

from reasoning_jax.checkpoint import TrainCheckpointer

MAX_STEPS = 100_000


def state_at(step: int, w: jax.Array) -> dict:
  """The training state after `step` steps (`w` holds `step` everywhere)."""
  return {
    "params": {"w": w},
    "rng": jax.random.fold_in(jax.random.key(0), step),
    "data_state": {"consumed": 2 * step},
  }


def main(directory: str) -> int:
  with TrainCheckpointer(directory, max_to_keep=2, save_interval_steps=5) as ckpt:
    ckpt.install_preemption_handler()
    w = jnp.zeros((4, 8), jnp.float32)
    for step in range(1, MAX_STEPS):
      w = w + 1.0  # The "training step".
      if step == 3:
        print("READY", flush=True)
      if ckpt.maybe_save(step, lambda: state_at(step, w)):  # pylint: disable=cell-var-from-loop
        print(f"PREEMPTED {step}", flush=True)
        return 0
      time.sleep(0.005)
  print("NOT PREEMPTED", flush=True)
  return 1


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
