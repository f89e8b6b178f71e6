r"""Short-answer QA checking: the answer after "the answer is" (or in `\boxed{}`), normalised.

`qa_exact` (registered in `REWARDS`) extracts the prediction from the last `\boxed{...}`,
else from the text after the last "answer is" (up to the end of that sentence or line), else
takes the whole completion, and compares it with the gold answer after SQuAD-style
normalisation (lowercase, punctuation and the articles a/an/the removed, whitespace
collapsed) — the exact-match metric of HotpotQA-style long-context QA ("HotpotQA: A Dataset
for Diverse, Explainable Multi-hop Question Answering", arXiv:1809.09600) and of InfMem's
outcome reward. An example field `answers` (a list of aliases) is accepted besides `answer`.
"""

from __future__ import annotations

import re
import string
from typing import Any, Optional, Sequence

from reasoning_jax.registry import REWARDS
from reasoning_jax.rewards.extract import extract_boxed

__all__ = ["extract_qa_answer", "normalize_qa", "qa_exact_reward"]

_ANSWER_IS = re.compile(
  r"answer\s+is\s*:?\s*(.+?)(?:\s*(?:\n|(?<=\w)\s*\.(?:\s|$))|$)", re.I | re.S
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_qa(text: Any) -> str:
  """Lowercase, punctuation and articles removed, whitespace collapsed."""
  if not isinstance(text, str):
    return ""
  text = text.lower().translate(_PUNCT)
  return " ".join(_ARTICLES.sub(" ", text).split())


def extract_qa_answer(text: Any) -> Optional[str]:
  r"""The last `\boxed{}`, else the span after the last "answer is", else the stripped text."""
  if not isinstance(text, str) or not text.strip():
    return None
  boxed = extract_boxed(text)
  if boxed is not None:
    return boxed
  matches = list(_ANSWER_IS.finditer(text[-10_000:]))
  if matches:
    return matches[-1].group(1).strip()
  return text.strip()


def _golds(answer: Any, aliases: Any) -> list[str]:
  golds: Sequence[Any] = aliases if isinstance(aliases, (list, tuple)) and aliases else [answer]
  out = [g for g in golds if isinstance(g, str)]
  if not out:
    raise TypeError(f"answer must be a str (or answers a list of str), got {answer!r:.60}")
  return out


@REWARDS.register("qa_exact")
def qa_exact_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """1.0 when the extracted prediction equals a gold answer after `normalize_qa`."""
  golds = _golds(answer, example_fields.get("answers"))
  prediction = normalize_qa(extract_qa_answer(completion))
  if not prediction:
    return 0.0
  return float(any(prediction == normalize_qa(g) for g in golds))
