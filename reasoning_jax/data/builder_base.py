"""Base classes of the TFDS builders here: ArrayRecord, no downloads, seeded synthetic splits.

`builders.py` (arithmetic, countdown, modular, gsm8k, math) and `rubric_builder.py` (the rubric
task) derive from these.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from typing import Any

import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from reasoning_jax.data import synthetic

__all__ = ["Builder", "ManualJsonlBuilder", "SyntheticBuilder", "config_params", "text_feature"]

_VERSION = tfds.core.Version("1.0.0")
_RELEASE_NOTES = {"1.0.0": "Initial release."}
# Fields of tfds.core.BuilderConfig that do not affect the generated data.
_BASE_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(tfds.core.BuilderConfig))


def text_feature() -> tfds.features.Text:
  return tfds.features.Text()


def config_params(config: tfds.core.BuilderConfig) -> dict[str, Any]:
  """The data-defining fields of a config (everything but name/version/...)."""
  return {
    f.name: getattr(config, f.name)
    for f in dataclasses.fields(config)
    if f.name not in _BASE_CONFIG_FIELDS
  }


class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of all builders here: ArrayRecord-friendly, no checksums, no registration."""

  VERSION = _VERSION
  RELEASE_NOTES = _RELEASE_NOTES

  # tfds 4.9.10 derives `code_path` (used only to find a checksums file) through
  # `importlib_resources`, which it declares only for Python < 3.9, so it fails
  # for builders defined inside a package. These builders download nothing.
  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> None:
    return None


class ManualJsonlBuilder(Builder, skip_registration=True):
  """Reads `{split}.jsonl` for each split from `manual_dir`; never downloads."""

  SPLIT_FILES = {"train": "train.jsonl", "test": "test.jsonl"}

  @classmethod
  def split_paths(cls, manual_dir: "str | os.PathLike[str]") -> dict[str, str]:
    """`{split: path}` of the split files in `manual_dir`, checking that they exist.

    Raises:
      FileNotFoundError: Naming the first missing file.
    """
    manual_dir = os.fspath(manual_dir)
    if not os.path.isdir(manual_dir):
      raise FileNotFoundError(
        f"{cls.name}: manual_dir {manual_dir} is not a directory.\n"
        f"{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}"
      )
    paths = {split: os.path.join(manual_dir, f) for split, f in cls.SPLIT_FILES.items()}
    for split, path in paths.items():
      if not os.path.isfile(path):
        raise FileNotFoundError(
          f"{cls.name}: missing {cls.SPLIT_FILES[split]} (the {split} split) in manual_dir "
          f"{manual_dir}: expected the file {path}.\n{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    return paths

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    paths = self.split_paths(dl_manager.manual_dir)
    return {split: self._generate_examples(path) for split, path in paths.items()}


class SyntheticBuilder(Builder, skip_registration=True):
  """Shared split logic: test drawn first, train drawn excluding test questions."""

  def _make_example(self, rng: random.Random) -> dict[str, Any]:
    raise NotImplementedError

  def _features(self) -> dict[str, Any]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    params = json.dumps(config_params(self.builder_config), sort_keys=True)
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,  # Records keep generation / file order.
      description=f"Synthetic {self.name} task generated locally from a seed. "
      f"Config {self.builder_config.name}: {params}",
      features=tfds.features.FeaturesDict(
        {
          "question": text_feature(),
          "answer": text_feature(),
          "solution": text_feature(),
          **self._features(),
        }
      ),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    stream = f"{self.name}:{cfg.seed}"
    test = synthetic.generate_split(
      self._make_example, cfg.num_test, seed=f"{stream}:test", arg_name="num_test"
    )
    train = synthetic.generate_split(
      self._make_example,
      cfg.num_train,
      seed=f"{stream}:train",
      exclude={ex["question"] for ex in test},
      unique=cfg.unique_train,
      arg_name="num_train",
    )
    noise = getattr(cfg, "answer_noise", 0.0)
    if noise:
      train = synthetic.add_answer_noise(train, noise, seed=f"{stream}:train:noise")
    splits = {"train": train, "test": test, **self._extra_splits(train, stream)}
    return {name: self._generate_examples(examples) for name, examples in splits.items()}

  # Splits that SFT reads after `train` (e.g. judge demonstrations); RL prompts never do.
  SFT_EXTRA_SPLITS: tuple[str, ...] = ()

  def _extra_splits(self, train: list[dict[str, Any]], stream: str) -> dict[str, list]:
    """More splits drawn from the train examples (none by default)."""
    del train, stream
    return {}

  def _generate_examples(self, examples):
    for i, ex in enumerate(examples):
      yield f"{i:09d}", ex
