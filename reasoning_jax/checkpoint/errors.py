"""What can go wrong with a checkpoint step: the two exceptions callers see, and a finding.

`CheckpointCorruptError` and `CheckpointSaveError` are raised to callers; `StepProblem` is the
internal finding of an integrity check (why a step cannot be used), which the checkpointer
logs, skips or turns into a `CheckpointCorruptError`.
"""

from __future__ import annotations

from typing import Any


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

  @classmethod
  def from_error(cls, step: int, path: Any, error: BaseException) -> CheckpointSaveError:
    """The error for a save of `step` to `path` that failed with `error`."""
    return cls(
      step,
      path,
      f"saving step {step} to {path} failed: "
      f"{type(error).__name__}: {error}; earlier steps are untouched",
    )


class StepProblem:
  """Why a step cannot be used: `kind` is "incomplete" or "corrupt"."""

  __slots__ = ("kind", "reason")

  def __init__(self, kind: str, reason: str):
    self.kind, self.reason = kind, reason
