"""The RFT pipeline: a teacher's verified samples -> RFT and TrajFusion SFT datasets.

"Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Deng et
al., arXiv:2602.04391; rejection-sampling fine-tuning (RFT): Yuan et al., arXiv:2308.01825.

`run_pipeline(config)` (the library behind `python -m experiments.rft`, config
`configs/rft.py`):

1. resolves the teacher: `config.teacher.workdir` (an SFT/RL run's workdir with checkpoints,
   loaded with `train.sft.load_sft_params`; trained there first from `config.teacher.train`,
   an ordinary SFT config, when it has none, and finished first when its newest checkpoint
   is short of that config's `num_steps`) or `config.teacher.hf_dir` (a local Hugging Face
   folder through the model source, with its own tokenizer and chat template); exactly one;
2. prepares the task (`config.task`, `task_config`, `task_overrides`, `prompt_template`,
   `reward`, optional chat `config.prompt`) with `train.task.prepare_task`;
3. samples the train split into `<workdir>/samples` (`rft.sample_trajectories`, resumable;
   provenance = teacher, task, seed and sampling settings);
4. builds `<workdir>/datasets/{rft,trajfusion}` with `stats.json` / `stats.md`
   (`rft.build_sft_datasets`, `config.trajfusion` = `TrajFusionConfig` fields).

Config errors are `PipelineError`s naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import ml_collections
from absl import logging

from reasoning_jax.rft import SamplingConfig, TrajFusionConfig, build_sft_datasets
from reasoning_jax.rft import sample_trajectories

__all__ = ["PipelineError", "Teacher", "load_teacher", "run_pipeline", "sft_flags", "validate"]

# Pipeline config keys (besides the optional `prompt`, `data_dir`, `manual_dir`, `num_test`).
REQUIRED = (
  "workdir",
  "teacher",
  "task",
  "task_config",
  "task_overrides",
  "prompt_template",
  "reward",
  "max_prompt_len",
  "sampling",
  "trajfusion",
  "mesh",
)
OPTIONAL = ("prompt", "data_dir", "manual_dir", "num_test")
TEACHER_KEYS = ("workdir", "hf_dir", "tokenizer", "dtype", "train")


class PipelineError(ValueError):
  """A pipeline configuration problem; the message names the key."""


@dataclasses.dataclass
class Teacher:
  """The teacher model with its tokenizer, eos ids, and where it came from."""

  model: Any
  source: Any  # A `ModelSource` (tokenizer, eos_id); prepare_task reads its tokenizer.
  provenance: dict[str, Any]
  workdir: str | None = None  # An SFT workdir (continued training starts from it).


def _as_dict(value) -> dict[str, Any]:
  if value is None:
    return {}
  return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def validate(config: ml_collections.ConfigDict) -> tuple[SamplingConfig, TrajFusionConfig]:
  """Keys, the teacher source and the sampling / construction settings; PipelineError naming
  the key otherwise."""
  for key in REQUIRED:
    if key not in config:
      raise PipelineError(f"config.{key} is missing")
  unknown = set(config.keys()) - set(REQUIRED) - set(OPTIONAL)
  if unknown:
    raise PipelineError(f"unknown config keys: {sorted(unknown)}")
  if not config.workdir:
    raise PipelineError("config.workdir must be set")
  teacher = _as_dict(config.teacher)
  bad = set(teacher) - set(TEACHER_KEYS)
  if bad:
    raise PipelineError(f"unknown config.teacher keys: {sorted(bad)}; known: {TEACHER_KEYS}")
  workdir, hf_dir = teacher.get("workdir") or "", teacher.get("hf_dir") or ""
  if bool(workdir) == bool(hf_dir):
    raise PipelineError(
      "set exactly one of config.teacher.workdir (an SFT/RL run's workdir) and "
      f"config.teacher.hf_dir (a Hugging Face folder); got workdir={workdir!r}, "
      f"hf_dir={hf_dir!r}"
    )
  if (
    workdir and not teacher.get("train") and not os.path.isdir(os.path.join(workdir, "checkpoints"))
  ):
    raise PipelineError(
      f"config.teacher.workdir={workdir!r} has no checkpoints/ folder (and no "
      "config.teacher.train to train it there)"
    )
  if hf_dir and not os.path.isdir(hf_dir):
    raise PipelineError(f"config.teacher.hf_dir={hf_dir!r} is not a directory")
  try:
    sampling = SamplingConfig(**_as_dict(config.sampling))
  except (TypeError, ValueError) as e:
    raise PipelineError(f"config.sampling: {e}") from None
  try:
    construction = TrajFusionConfig(**_as_dict(config.trajfusion))
  except (TypeError, ValueError) as e:
    raise PipelineError(f"config.trajfusion: {e}") from None
  if int(config.max_prompt_len) < 1:
    raise PipelineError(f"config.max_prompt_len must be >= 1, got {config.max_prompt_len}")
  return sampling, construction


def load_teacher(config: ml_collections.ConfigDict, mesh=None) -> Teacher:
  """The teacher of `config.teacher` (see the module doc)."""
  from reasoning_jax.models.source import SourceError, build_model, resolve_source

  teacher = _as_dict(config.teacher)
  if teacher.get("hf_dir"):
    try:
      source = resolve_source(
        hf_dir=teacher["hf_dir"],
        tokenizer=teacher.get("tokenizer") or "",
        dtype=teacher.get("dtype") or "",
        flag="config.teacher",
      )
    except (SourceError, FileNotFoundError) as e:
      raise PipelineError(str(e)) from None
    model = build_model(source, seed=0, mesh=mesh)
    return Teacher(model, source, {"hf_dir": source.hf_dir})
  from reasoning_jax.evaluate.trained_model import train_or_load
  from reasoning_jax.train.sft import load_sft_params
  from reasoning_jax.train.sft_config import model_source

  workdir = os.path.abspath(teacher["workdir"])
  if teacher.get("train"):  # Trained, finished (when interrupted) or found there.
    sft = ml_collections.ConfigDict(_as_dict(teacher["train"]))
    sft.workdir = workdir
    train_or_load(sft, "teacher")
  loaded = load_sft_params(workdir)
  if loaded is None:
    raise PipelineError(f"config.teacher.workdir={workdir!r} holds no checkpoint")
  model, sft_config = loaded
  source = model_source(sft_config, prefix="config.teacher")
  return Teacher(model, source, {"workdir": workdir}, workdir=workdir)


def task_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The keys `train.task.prepare_task` reads, from the pipeline config."""
  c = ml_collections.ConfigDict()
  for key in ("task", "task_config", "prompt_template", "reward"):
    c[key] = config[key]
  c.task_overrides = _as_dict(config.task_overrides)
  c.data_dir = config.get("data_dir") or os.path.join(config.workdir, "data")
  c.manual_dir = config.get("manual_dir") or ""
  c.seq_len = int(config.max_prompt_len)
  prompt = _as_dict(config.get("prompt"))
  if prompt.get("chat") or prompt.get("answer_format"):
    c.prompt = prompt
  return c


def sft_flags(folder: str, init_workdir: str | None = None) -> str:
  """The SFT trainer's flags that train on one dataset folder."""
  flags = [
    "--config.task=rft",
    "--config.task_config=",
    "--config.task_overrides='{}'",
    f"--config.manual_dir={folder}",
    f"--config.data_dir={os.path.join(folder, 'tfds')}",
  ]
  if init_workdir:
    flags.append(f"--config.init_workdir={init_workdir}")
  return " ".join(flags)


def run_pipeline(
  config: ml_collections.ConfigDict, *, teacher: Teacher | None = None, progress: bool = True
) -> dict[str, Any]:
  """Samples the teacher and builds both datasets; returns the statistics (`stats.json`)
  with `summary` (the sampler's), `dirs`, `flags` (per dataset) and `teacher`.

  `teacher`: an already loaded teacher (the experiment loads it once for all seeds).
  """
  from reasoning_jax import sharding as sharding_lib
  from reasoning_jax.train.task import TaskError, prepare_task, validate_prompt_config

  sampling, construction = validate(config)
  tconfig = task_config(config)
  try:
    validate_prompt_config(tconfig)
  except TaskError as e:
    raise PipelineError(str(e)) from None
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  mesh_shape = _as_dict(config.mesh)
  try:
    mesh = sharding_lib.make_mesh(mesh_shape) if mesh_shape else None
  except ValueError as e:
    raise PipelineError(f"config.mesh: {e}") from None
  start = time.perf_counter()
  teacher = teacher or load_teacher(config, mesh)
  try:
    task = prepare_task(tconfig, teacher.source, workdir=workdir)
  except TaskError as e:
    raise PipelineError(str(e)) from None
  provenance = {
    "teacher": teacher.provenance,
    "task": {
      "task": config.task,
      "task_config": config.task_config,
      "task_overrides": _as_dict(config.task_overrides),
      "prompt": _as_dict(config.get("prompt")),
    },
    "seed": sampling.seed,
  }
  samples_dir = os.path.join(workdir, "samples")
  summary = sample_trajectories(
    teacher.model,
    teacher.source.tokenizer,
    task.train_source,
    reward=task.reward,
    out_dir=samples_dir,
    config=sampling,
    prompt_template=task.prompt,
    max_prompt_len=task.max_prompt_len,
    add_bos=task.add_bos,
    truncate=task.truncate,
    eos_id=teacher.source.eos_id,
    mesh=mesh,
    provenance=provenance,
    progress=progress,
  )
  logging.info(
    "rft pipeline: %d problems sampled now (%d in the file), %d/%d correct trajectories",
    summary.sampled_problems,
    summary.num_problems,
    summary.correct,
    summary.trajectories,
  )
  stats = build_sft_datasets(
    samples_dir,
    os.path.join(workdir, "datasets"),
    tokenizer=teacher.source.tokenizer,
    test_source=task.test_source,
    config=construction,
    num_test=config.get("num_test") or None,
  )
  stats["summary"] = summary.as_dict()
  stats["teacher"] = teacher.provenance
  stats["flags"] = {name: sft_flags(d, teacher.workdir) for name, d in stats["dirs"].items()}
  stats["seconds"] = time.perf_counter() - start
  return stats
