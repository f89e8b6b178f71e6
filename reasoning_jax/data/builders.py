"""TFDS builders for reasoning tasks, written to ArrayRecord and read without TensorFlow.

Builders (`name` -> class, see `BUILDERS`):

* `arithmetic`: multi-digit `+`/`-`/`*` with column-method worked solutions;
  configs `easy`, `medium` (default) and `hard` set the digits and operands.
* `countdown`: reach a target from 3-4 numbers (always solvable).
* `modular`: `(a op b) mod p`.
* `gsm8k`: `train.jsonl`/`test.jsonl` from the user's `manual_dir`.
* `math`: MATH-style `train.jsonl`/`test.jsonl` from the user's `manual_dir`.
* `rft`: SFT data from a teacher's verified samples (RFT or TrajFusion), the folder written by
  `reasoning_jax.rft.dataset` as `manual_dir` (`rft_builder.py`).
* `multihop`: multi-hop QA over long documents, bridging facts among distractors
  (`multihop_builder.py`; configs `1k` (default), `8k`, `32k`, `128k`, `1m`; InfMem experiments).
* `rubric`: two-step computations scored by rubrics, with an SFT-only `judge` split of judge
  demonstrations (`rubric_builder.py`; Grad2Reward experiments).

Every example has str `question`, `answer` (the final answer) and `solution`
(the SFT target), plus task-specific fields. Synthetic builders never download
anything: splits are generated from `seed` (train and test use separate
streams and test questions are removed from train), so two builds with the
same config are identical. Records are stored in generation (or file) order;
`gsm8k`/`math` also keep the line number as `index`. Config fields can be
overridden by keyword:

  >>> builder = build_dataset("arithmetic", "/tmp/tfds", config="easy", seed=3,
  ...                         num_train=1000, num_test=100)
  >>> source = builder.as_data_source("train")   # random access, no TensorFlow
  >>> decode_example(source[0])["question"]

Overrides produce a config named `{base}-{hash}` (e.g. `easy-1a2b3c4d`), so
differently parameterised builds never share a cache directory. Read records
hold `bytes` for text fields; `decode_example` turns them into `str`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow_datasets as tfds

from reasoning_jax.data import parsing, synthetic
from reasoning_jax.data.builder_base import ManualJsonlBuilder
from reasoning_jax.data.builder_base import SyntheticBuilder as _SyntheticBuilder
from reasoning_jax.data.builder_base import config_params as _config_params
from reasoning_jax.data.builder_base import text_feature as _text
from reasoning_jax.data.examples import decode_example
from reasoning_jax.data.multihop_builder import MultihopBuilder
from reasoning_jax.data.rft_builder import RftBuilder
from reasoning_jax.data.rubric_builder import RubricBuilder

__all__ = [
  "BUILDERS",
  "ArithmeticBuilder",
  "ArithmeticConfig",
  "CountdownBuilder",
  "CountdownConfig",
  "Gsm8kBuilder",
  "MathBuilder",
  "ModularBuilder",
  "ModularConfig",
  "build_dataset",
  "data_source",
  "decode_example",
  "get_builder",
]

PathLike = Union[str, "os.PathLike[str]"]

# ------------------------------------------------------------------------------
# Arithmetic.
# ------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class ArithmeticConfig(tfds.core.BuilderConfig):
  """Config of the `arithmetic` builder.

  Attributes:
    seed: Seed of the generated splits.
    num_train: Train examples.
    num_test: Test examples (distinct questions, none of them in train).
    min_digits: Fewest digits of an operand.
    max_digits: Most digits of an operand.
    max_operands: Most operands of an addition (`-` and `*` use 2).
    ops: Operators to draw from, a subset of `("+", "-", "*")`.
    unique_train: Also make train questions distinct.
    style: Worked-solution style, "verbose" or "compact" (see `arithmetic_example`).
    answer_noise: Fraction of *train* solutions whose final `Answer:` line has one digit
      changed (`synthetic.corrupt_final_answer`): demonstrations with transcription errors,
      which SFT imitates and RL with a verifier can remove. `answer` stays true; the test
      split is never corrupted.
  """

  seed: int = 0
  num_train: int = 10_000
  num_test: int = 500
  min_digits: int = 1
  max_digits: int = 3
  max_operands: int = 2
  ops: tuple[str, ...] = synthetic.ARITHMETIC_OPS
  unique_train: bool = False
  style: str = "verbose"
  answer_noise: float = 0.0


class ArithmeticBuilder(_SyntheticBuilder, skip_registration=True):
  """Multi-digit addition/subtraction/multiplication with worked column solutions."""

  name = "arithmetic"
  BUILDER_CONFIGS = [
    ArithmeticConfig(
      name="easy", description="1-2 digits, 2 operands.", min_digits=1, max_digits=2, max_operands=2
    ),
    ArithmeticConfig(
      name="medium",
      description="2-3 digits, up to 3 addends.",
      min_digits=2,
      max_digits=3,
      max_operands=3,
    ),
    ArithmeticConfig(
      name="hard",
      description="3-5 digits, up to 4 addends.",
      min_digits=3,
      max_digits=5,
      max_operands=4,
    ),
  ]
  DEFAULT_CONFIG_NAME = "medium"

  def _features(self):
    return {"op": _text(), "operands": tfds.features.Sequence(np.int64)}

  def _make_example(self, rng):
    c = self.builder_config
    return synthetic.arithmetic_example(
      rng,
      min_digits=c.min_digits,
      max_digits=c.max_digits,
      max_operands=c.max_operands,
      ops=c.ops,
      style=c.style,
    )


# ------------------------------------------------------------------------------
# Countdown.
# ------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class CountdownConfig(tfds.core.BuilderConfig):
  """Config of the `countdown` builder.

  Attributes:
    seed: Seed of the generated splits.
    num_train: Train examples.
    num_test: Test examples (distinct questions, none of them in train).
    min_numbers: Fewest numbers per puzzle.
    max_numbers: Most numbers per puzzle.
    max_value: Numbers are drawn from `[1, max_value]`.
    max_target: Largest target.
    ops: Operators allowed, a subset of `("+", "-", "*", "/")`.
    unique_train: Also make train questions distinct.
  """

  seed: int = 0
  num_train: int = 10_000
  num_test: int = 500
  min_numbers: int = 3
  max_numbers: int = 4
  max_value: int = 50
  max_target: int = 1000
  ops: tuple[str, ...] = synthetic.COUNTDOWN_OPS
  unique_train: bool = False


class CountdownBuilder(_SyntheticBuilder, skip_registration=True):
  """Countdown: combine 3-4 numbers with + - * / to reach a target (always solvable)."""

  name = "countdown"
  BUILDER_CONFIGS = [CountdownConfig(name="default", description="3-4 numbers in [1, 50].")]

  def _features(self):
    return {"numbers": tfds.features.Sequence(np.int64), "target": np.int64}

  def _make_example(self, rng):
    c = self.builder_config
    return synthetic.countdown_example(
      rng,
      min_numbers=c.min_numbers,
      max_numbers=c.max_numbers,
      max_value=c.max_value,
      max_target=c.max_target,
      ops=c.ops,
    )


# ------------------------------------------------------------------------------
# Modular arithmetic.
# ------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class ModularConfig(tfds.core.BuilderConfig):
  """Config of the `modular` builder.

  Attributes:
    seed: Seed of the generated splits.
    num_train: Train examples.
    num_test: Test examples (distinct questions, none of them in train).
    max_operand: Operands are drawn from `[0, max_operand]`.
    min_modulus: Smallest prime modulus.
    max_modulus: Largest prime modulus.
    ops: Operators to draw from, a subset of `("+", "-", "*")`.
    unique_train: Also make train questions distinct.
  """

  seed: int = 0
  num_train: int = 10_000
  num_test: int = 500
  max_operand: int = 100
  min_modulus: int = 3
  max_modulus: int = 31
  ops: tuple[str, ...] = synthetic.MODULAR_OPS
  unique_train: bool = False


class ModularBuilder(_SyntheticBuilder, skip_registration=True):
  """`(a op b) mod p` with a worked solution that reduces the operands first."""

  name = "modular"
  BUILDER_CONFIGS = [ModularConfig(name="default", description="a, b <= 100; p prime <= 31.")]

  def _features(self):
    return {"a": np.int64, "b": np.int64, "modulus": np.int64, "op": _text()}

  def _make_example(self, rng):
    c = self.builder_config
    return synthetic.modular_example(
      rng,
      max_operand=c.max_operand,
      min_modulus=c.min_modulus,
      max_modulus=c.max_modulus,
      ops=c.ops,
    )


# ------------------------------------------------------------------------------
# Manual-dir builders: GSM8K and MATH.
# ------------------------------------------------------------------------------


class Gsm8kBuilder(ManualJsonlBuilder, skip_registration=True):
  """GSM8K from local JSONL files.

  `solution` is the answer text without calculator annotations (it still ends
  with `#### n`); `raw_solution` keeps them; `answer` is the number after `####`
  without commas.
  """

  name = "gsm8k"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put GSM8K's train.jsonl and test.jsonl (one JSON object per line with 'question' "
    "and 'answer', the answer ending with '#### <number>'; e.g. from "
    "github.com/openai/grade-school-math) in the directory passed as manual_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,  # Records keep generation / file order.
      description="Grade-school math word problems (GSM8K), read from manual_dir.",
      features=tfds.features.FeaturesDict(
        {
          "question": _text(),
          "answer": _text(),
          "solution": _text(),
          "raw_solution": _text(),
          "index": np.int64,
        }
      ),
      homepage="https://github.com/openai/grade-school-math",
    )

  def _generate_examples(self, path):
    for i, (lineno, rec) in enumerate(parsing.read_jsonl(path, ("question", "answer"))):
      answer = parsing.gsm8k_final_answer(rec["answer"])
      if answer is None:
        raise ValueError(f"{path}:{lineno}: the 'answer' text has no final '#### <number>' line")
      yield (
        f"{i:09d}",
        {
          "question": rec["question"].strip(),
          "answer": answer,
          "solution": parsing.strip_calculator_annotations(rec["answer"]).strip(),
          "raw_solution": rec["answer"],
          "index": i,
        },
      )


class MathBuilder(ManualJsonlBuilder, skip_registration=True):
  """MATH-style competition problems from local JSONL files (`parsing.math_example`).

  Reads both the original MATH layout (`problem`, `solution` with a `\\boxed{}` answer,
  `level`, `type`) and MATH-500's (`answer`, `subject`, an integer `level`, `unique_id`):
  `answer` is the record's `answer` field, else the last top-level `\\boxed{}` of
  `solution`. A record with neither is an error naming the file and line.
  """

  name = "math"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put MATH-style train.jsonl and test.jsonl in the directory passed as manual_dir, one "
    "JSON object per line with 'problem' and 'solution' and optionally 'answer', 'level', "
    "'type' or 'subject': the original MATH release (the final answer in the solution's "
    "\\boxed{...}; write its per-problem files MATH/<split>/*/*.json one per line) or "
    "MATH-500 / PRM800K math_splits (with 'answer')."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,  # Records keep generation / file order.
      description="MATH-style problems with \\boxed{} answers, read from manual_dir.",
      features=tfds.features.FeaturesDict(
        {
          "question": _text(),
          "answer": _text(),
          "solution": _text(),
          "level": _text(),
          "type": _text(),
          "index": np.int64,
        }
      ),
      homepage="https://github.com/hendrycks/math",
    )

  def _generate_examples(self, path):
    for i, (lineno, rec) in enumerate(parsing.read_jsonl(path, ("problem", "solution"))):
      try:
        example = parsing.math_example(rec)
      except ValueError as e:
        raise ValueError(f"{path}:{lineno}: {e}") from None
      yield f"{i:09d}", {**example, "index": i}


# ------------------------------------------------------------------------------
# Helpers.
# ------------------------------------------------------------------------------

BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
  "arithmetic": ArithmeticBuilder,
  "countdown": CountdownBuilder,
  "modular": ModularBuilder,
  "gsm8k": Gsm8kBuilder,
  "math": MathBuilder,
  "rubric": RubricBuilder,
  "multihop": MultihopBuilder,
  "rft": RftBuilder,
}

ConfigArg = Union[None, str, tfds.core.BuilderConfig]


def _resolve_config(
  cls: type, config: ConfigArg, overrides: Mapping[str, Any]
) -> Optional[tfds.core.BuilderConfig]:
  configs = {c.name: c for c in (cls.BUILDER_CONFIGS or [])}
  if config is None:
    base = configs.get(getattr(cls, "DEFAULT_CONFIG_NAME", None)) or next(
      iter(configs.values()), None
    )
  elif isinstance(config, str):
    if config not in configs:
      raise ValueError(
        f"config {config!r} is not a config of {cls.name}; available: {sorted(configs)}"
      )
    base = configs[config]
  elif isinstance(config, tfds.core.BuilderConfig):
    base = config
  else:
    raise TypeError(
      f"config must be None, a config name or a BuilderConfig, got {type(config).__name__}"
    )
  if not overrides:
    return base
  if base is None:
    raise TypeError(f"{cls.name} takes no config options, got {sorted(overrides)}")
  params = _config_params(base)
  unknown = sorted(set(overrides) - set(params))
  if unknown:
    raise TypeError(f"unknown option(s) {unknown} for {cls.name}; valid options: {sorted(params)}")
  overrides = {k: tuple(v) if isinstance(params[k], tuple) else v for k, v in overrides.items()}
  params.update(overrides)
  digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
  return dataclasses.replace(base, name=f"{base.name}-{digest}", **overrides)


def get_builder(
  name: str, data_dir: PathLike, *, config: ConfigArg = None, **overrides: Any
) -> tfds.core.GeneratorBasedBuilder:
  """Instantiates a builder (ArrayRecord format) without preparing it.

  Args:
    name: One of `BUILDERS` (`arithmetic`, `countdown`, `modular`, `gsm8k`, `math`).
    data_dir: Root directory of the prepared data.
    config: A config name (e.g. `"easy"`), a config object, or None for the default.
    **overrides: Config fields to override (e.g. `seed=1, num_train=100`).

  Returns:
    The builder.

  Raises:
    ValueError: If `name` or `config` is unknown.
    TypeError: On unknown overrides.
  """
  if name not in BUILDERS:
    raise ValueError(f"name must be one of {sorted(BUILDERS)}, got {name!r}")
  if data_dir is None:
    raise ValueError("data_dir is required (the directory the ArrayRecord files go to)")
  cls = BUILDERS[name]
  cfg = _resolve_config(cls, config, overrides)
  kwargs = {"config": cfg} if cfg is not None else {}
  return cls(data_dir=os.fspath(data_dir), file_format="array_record", **kwargs)


def build_dataset(
  name: str,
  data_dir: PathLike,
  *,
  manual_dir: Optional[PathLike] = None,
  config: ConfigArg = None,
  **overrides: Any,
) -> tfds.core.GeneratorBasedBuilder:
  """Prepares a dataset (a no-op when already prepared) and returns its builder.

  Args:
    name: One of `BUILDERS`.
    data_dir: Root directory for the ArrayRecord files.
    manual_dir: Directory with `train.jsonl`/`test.jsonl`; required by `gsm8k`
      and `math`, ignored by the synthetic builders.
    config: A config name, a config object, or None for the default.
    **overrides: Config fields to override (e.g. `seed=1, num_train=100`).

  Returns:
    The prepared builder; read it with `builder.as_data_source(split)`. Safe to call from
    several processes at once on one `data_dir` (each host of a multi-host launch does):
    those that lose the race to prepare it read the winner's copy.

  Raises:
    ValueError: If a manual builder gets no `manual_dir`, or on bad arguments.
    FileNotFoundError: If `manual_dir` or a split file in it is missing.
  """
  builder = get_builder(name, data_dir, config=config, **overrides)
  if isinstance(builder, ManualJsonlBuilder) and not builder.is_prepared():
    if manual_dir is None:
      raise ValueError(
        f"manual_dir is required to build {name!r}: {builder.MANUAL_DOWNLOAD_INSTRUCTIONS}"
      )
    builder.split_paths(manual_dir)  # Names the missing file, if any.
  download_config = tfds.download.DownloadConfig(
    manual_dir=os.fspath(manual_dir) if manual_dir is not None else None
  )
  try:
    builder.download_and_prepare(download_config=download_config)
  except FileExistsError:
    # Several processes preparing the same (deterministic) dataset on a shared file system, as
    # every host of a multi-host launch does: TFDS writes to a private incomplete.* folder and
    # renames it into place, and the processes that lose that race fail here. The winner's
    # copy is the same data: read it.
    builder = get_builder(name, data_dir, config=config, **overrides)
    if not builder.is_prepared():
      raise
  else:
    if not builder.info.splits:
      # The other side of that race: another process renamed its copy into place after this
      # builder was made (so it read no split info) and before `download_and_prepare` looked,
      # which then reuses the folder without reading it, leaving a builder with no splits.
      # A fresh builder reads the prepared folder's info.
      builder = get_builder(name, data_dir, config=config, **overrides)
  if hasattr(builder, "after_prepare"):  # rft: provenance kept and checked.
    builder.after_prepare(os.fspath(manual_dir) if manual_dir is not None else None)
  return builder


def data_source(
  name: str,
  split: str,
  data_dir: PathLike,
  *,
  manual_dir: Optional[PathLike] = None,
  config: ConfigArg = None,
  **overrides: Any,
) -> Any:
  """Prepares a dataset if needed and returns `builder.as_data_source(split)`.

  The result supports `len()` and random access (`source[i]`, a dict with
  `bytes` text fields; see `decode_example`) and pickles, so grain workers can
  use it.

  Args:
    name: One of `BUILDERS`.
    split: E.g. `"train"`, `"test"` or `"train[:100]"`.
    data_dir: Root directory for the ArrayRecord files.
    manual_dir: See `build_dataset`.
    config: See `build_dataset`.
    **overrides: See `build_dataset`.

  Returns:
    The ArrayRecord data source.
  """
  builder = build_dataset(name, data_dir, manual_dir=manual_dir, config=config, **overrides)
  return builder.as_data_source(split)
