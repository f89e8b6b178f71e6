"""The `multihop` TFDS builder: multi-hop QA over long documents (`multihop_task`).

Each record holds a question, its answer (a city), the long `document`, the bridging `facts`
(a JSON list, hop order), their piece offsets `fact_positions` in the document, `hops`, and a
`solution` (the facts then `So the answer is <city> .`) for SFT. Configs are named by document
length in word pieces: `1k` (the default), `8k`, `32k`, `128k` and `1m`; the long ones default
to few examples.

InfMem: Learning System-2 Memory Control for Long-Context Agent, arXiv 2602.02704 (the method
this task is built for).
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from reasoning_jax.data import multihop_task
from reasoning_jax.data.builder_base import SyntheticBuilder, text_feature

__all__ = ["MultihopBuilder", "MultihopConfig"]


@dataclasses.dataclass(eq=False)
class MultihopConfig(tfds.core.BuilderConfig):
  """Config of the `multihop` builder.

  Attributes:
    seed: Seed of the generated splits.
    num_train: Train examples.
    num_test: Test examples (distinct questions, none of them in train).
    doc_tokens: Document length in word pieces (exact).
    min_hops: Fewest bridging facts per question (>= 2).
    max_hops: Most bridging facts per question (<= 4).
    unique_train: Also make train questions distinct.
  """

  seed: int = 0
  num_train: int = 2000
  num_test: int = 128
  doc_tokens: int = 1024
  min_hops: int = 2
  max_hops: int = 4
  unique_train: bool = True


class MultihopBuilder(SyntheticBuilder, skip_registration=True):
  """Bridging facts (2-4 hops) planted among distractor sentences of a long document."""

  name = "multihop"
  BUILDER_CONFIGS = [
    MultihopConfig(name="1k", description="1,024-piece documents.", doc_tokens=1024),
    MultihopConfig(
      name="8k", description="8,192-piece documents.", doc_tokens=8192, num_train=1000
    ),
    MultihopConfig(
      name="32k",
      description="32,768-piece documents.",
      doc_tokens=32768,
      num_train=256,
      num_test=64,
    ),
    MultihopConfig(
      name="128k",
      description="131,072-piece documents.",
      doc_tokens=131072,
      num_train=64,
      num_test=32,
    ),
    MultihopConfig(
      name="1m",
      description="1,048,576-piece documents.",
      doc_tokens=1048576,
      num_train=8,
      num_test=16,
    ),
  ]
  DEFAULT_CONFIG_NAME = "1k"

  def _features(self) -> dict[str, Any]:
    return {
      "document": text_feature(),
      "facts": text_feature(),  # JSON list of the bridging sentences, hop order.
      "fact_positions": tfds.features.Sequence(np.int64),
      "hops": np.int32,
    }

  def _make_example(self, rng: random.Random) -> dict[str, Any]:
    c = self.builder_config
    ex = multihop_task.make_example(
      rng, doc_tokens=c.doc_tokens, min_hops=c.min_hops, max_hops=c.max_hops
    )
    return {
      "question": ex["question"],
      "answer": ex["answer"],
      "solution": ex["solution"],
      "document": ex["document"],
      "facts": json.dumps(ex["facts"]),
      "fact_positions": ex["fact_positions"],
      "hops": ex["hops"],
    }
