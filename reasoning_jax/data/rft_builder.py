"""The `rft` TFDS builder: SFT data built from a teacher's verified samples (RFT, TrajFusion).

`reasoning_jax.rft.dataset` writes `train.jsonl`, `test.jsonl` and `provenance.json` into a
folder; this builder reads that folder as its `manual_dir` into ArrayRecord, so the SFT trainer
trains on it through grain like on any task (`config.task="rft"`,
`config.manual_dir=<folder>`). Records keep the task's fields: `question`, `answer`,
`solution` (the SFT target: a correct trajectory, or a fused one), and provenance per record:
`problem_index`, `sample_index`, `num_wrong` (TrajFusion's k; 0 for RFT), plus the countdown
fields `numbers` / `target` the verifiers read (empty for other tasks).

The folder's `provenance.json` (teacher, seeds, sampling settings, construction) is copied
beside the prepared ArrayRecord files, and its `digest` (of the split files) is checked on
every build: a `data_dir` prepared from other files is refused instead of silently reused.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow_datasets as tfds

from reasoning_jax.data import parsing
from reasoning_jax.data.builder_base import ManualJsonlBuilder, text_feature

__all__ = ["PROVENANCE_FILE", "RftBuilder", "read_provenance"]

PROVENANCE_FILE = "provenance.json"


def read_provenance(manual_dir: str) -> dict:
  """The folder's `provenance.json`; FileNotFoundError naming it when missing."""
  path = os.path.join(os.fspath(manual_dir), PROVENANCE_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"rft: missing {path}: the folder was not written by reasoning_jax.rft.dataset"
    )
  with open(path) as f:
    return json.load(f)


class RftBuilder(ManualJsonlBuilder, skip_registration=True):
  """Rejection-sampling SFT data (RFT or TrajFusion) from `reasoning_jax.rft.dataset`."""

  name = "rft"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Write the folder with reasoning_jax.rft.dataset.write_sft_dataset (python -m "
    "experiments.rft) and pass it as manual_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,
      description="SFT data from a teacher's verified samples (reasoning_jax.rft); "
      f"provenance in {PROVENANCE_FILE} beside the records.",
      features=tfds.features.FeaturesDict(
        {
          "question": text_feature(),
          "answer": text_feature(),
          "solution": text_feature(),
          "target": text_feature(),
          "numbers": tfds.features.Sequence(np.int64),
          "problem_index": np.int64,
          "sample_index": np.int64,
          "num_wrong": np.int64,
        }
      ),
    )

  def after_prepare(self, manual_dir: str | None) -> None:
    """Keeps the folder's provenance beside the records; refuses a `data_dir` prepared from
    other files (a different `digest`) instead of silently reusing it."""
    if manual_dir is None:
      return
    want = read_provenance(manual_dir)
    kept = os.path.join(os.fspath(self.data_dir), PROVENANCE_FILE)
    if not os.path.exists(kept):
      with open(kept, "w") as f:
        json.dump(want, f, indent=2, sort_keys=True)
      return
    with open(kept) as f:
      have = json.load(f)
    if have.get("digest") != want.get("digest"):
      raise ValueError(
        f"rft: the dataset prepared in {self.data_dir} was built from other files (digest "
        f"{have.get('digest')}) than manual_dir={manual_dir} (digest {want.get('digest')}); "
        "use a fresh data_dir"
      )

  def _generate_examples(self, path):
    for i, (lineno, rec) in enumerate(parsing.read_jsonl(path, ("question", "answer", "solution"))):
      try:
        example = {
          "question": str(rec["question"]),
          "answer": str(rec["answer"]),
          "solution": str(rec["solution"]),
          "target": str(rec.get("target", "")),
          "numbers": [int(x) for x in rec.get("numbers", [])],
          "problem_index": int(rec.get("problem_index", i)),
          "sample_index": int(rec.get("sample_index", 0)),
          "num_wrong": int(rec.get("num_wrong", 0)),
        }
      except (TypeError, ValueError) as e:
        raise ValueError(f"{path}:{lineno}: malformed rft record ({e})") from None
      yield f"{i:09d}", example
