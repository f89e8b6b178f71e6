"""Preemption: a signal handler that only records SIGTERM / SIGINT, and the per-step decision.

The handler never saves: it sets a flag that the training loop reads at the next step
boundary (`reached`). A second handled signal while the first is pending goes to the handler
installed before (a second Ctrl-C raises KeyboardInterrupt; a second SIGTERM with the default
disposition kills the process). With several processes a signal reaches only some hosts, so
SIGTERM is left to JAX's preemption service and `reached` asks JAX's preemption sync point,
which makes every host return True at the same step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

import jax
from absl import logging
from jax.experimental import multihost_utils


class PreemptionHandler:
  """The preemption flag of one process and the signal handlers that set it."""

  def __init__(self):
    self._signal: int | None = None
    self._previous_handlers: dict[int, Any] = {}
    self._sync_point_warned = False

  @property
  def requested(self) -> bool:
    """True once a preemption signal was received by this process's handler."""
    return self._signal is not None

  @property
  def source(self) -> str:
    """What requested preemption, for a log line: the signal's name or the sync point."""
    if self._signal is None:
      return "preemption sync point"
    return signal.Signals(self._signal).name

  def install(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Makes `signals` set the preemption flag (the handler never saves).

    Must be called from the main thread. With several processes, SIGTERM is left
    to JAX's preemption service.
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

  def uninstall(self) -> None:
    """Restores the signal handlers that were in place before `install`."""
    if threading.current_thread() is not threading.main_thread():
      return
    for sig, previous in self._previous_handlers.items():
      signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
    self._previous_handlers.clear()

  def _on_signal(self, signum: int, frame: Any) -> None:
    if self._signal is None:
      self._signal = signum  # Only a flag: saving happens at the next step boundary.
      return
    previous = self._previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
      previous(signum, frame)
    elif previous == signal.SIG_DFL:
      signal.signal(signum, signal.SIG_DFL)
      signal.raise_signal(signum)

  def reached(self, step: int) -> bool:
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
    return self._signal is not None
