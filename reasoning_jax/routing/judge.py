"""A model judge for R2-Bench: P(the response is correct) read from a judge LLM's next token.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.3: every R2-Bench answer is graded by a judge LLM
(Qwen3-80B-Instruct, chosen for its Pearson correlation with human annotations, rho = 0.82 on
500 responses). Here any zoo model with its tokenizer (or a local HF folder) is the judge. It
reads `template(question, answer, response)` and its score is the probability of the positive
verdict token normalised over the two verdicts at the next position:

    score = p(positive) / (p(positive) + p(negative)) = sigmoid(logit_pos - logit_neg)

The verdict words are resolved in the context they follow (`tokenizers.verdict_token_id`):
"Yes" and " Yes" are different BPE tokens. Rows are right-padded (causal attention: padding
never reaches the verdict position) to `[batch_size, L]` with `L` rounded up to a multiple of
`length_bucket`, and each batch is ONE teacher-forced forward (`model.forward`, then
`model.unembed` at each row's last prompt position only), so calls share compiled programs.

DESIGN CHOICES (constructor flags, defaults): `template = DEFAULT_TEMPLATE` (question,
reference answer, response, "Is the response correct? Answer Yes or No."); `positive = " Yes"`,
`negative = " No"` (use single characters, e.g. "Y" / "N", for a byte tokenizer);
`chat = False` (True: the request is a user turn of the tokenizer's chat template and the
verdict follows the assistant header); a BOS is prepended when the tokenizer has one and the
prompt is not a chat. `judge_agreement` compares judge scores with verifier scores the way the
paper validates its judge against humans (Pearson correlation, accuracy at 0.5).

  >>> judge = ModelJudge(model, tokenizer, name="qwen")           # or ModelJudge.from_hf(dir)
  >>> judge.score(questions, answers, responses)                  # [N] in [0, 1]
  >>> judge_agreement(judge_scores, verifier_scores)              # pearson, accuracy, ...
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.tokenizers.verdict import JudgeError, verdict_token_id

__all__ = ["DEFAULT_TEMPLATE", "JudgeError", "ModelJudge", "judge_agreement"]

DEFAULT_TEMPLATE = (
  "Question: {question}\nReference answer: {answer}\nResponse: {response}\n"
  "Is the response correct? Answer Yes or No.\nVerdict:"
)
_FIELDS = ("question", "answer", "response")


def _check_template(template: Any) -> None:
  if not isinstance(template, str) or not template.strip():
    raise JudgeError(f"template must be a non-empty string, got {template!r}")
  if "{response}" not in template:
    raise JudgeError(f"template must contain a {{response}} field, got {template!r}")
  try:
    template.format(question="q", answer="a", response="r")
  except (KeyError, IndexError, ValueError) as e:
    raise JudgeError(
      f"template has a field other than {{question}}, {{answer}}, {{response}} (or an empty "
      f"one, '{{}}'): {e!r} in {template!r}"
    ) from None


def _check_positive_int(value: Any, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise JudgeError(f"{name} must be a positive int, got {value!r}")
  return int(value)


class ModelJudge:
  """A frozen judge model scoring (question, reference answer, response) triples.

  Args:
    model: a zoo `Transformer` (anything with `forward`, `unembed` and `config.vocab_size`).
    tokenizer: its tokenizer (`encode`, `vocab_size`; `apply_chat_template` for `chat`).
    name: the judge's name (shard files and manifests key its scores by it).
    template: the prompt, with `{response}` and optionally `{question}`, `{answer}`; the verdict
      token follows its last character.
    positive / negative: the verdict words, each one token after the template.
    chat: render the request as a user turn of the tokenizer's chat template.
    batch_size: rows per forward (the last batch is padded to it).
    length_bucket: the padded width is a multiple of this.

  Raises:
    JudgeError (a ValueError) naming the argument: a bad template, verdict words that are not
    one token each in context (or the same token), a tokenizer with more ids than the model's
    vocabulary, a judge input longer than the model's context.
  """

  def __init__(
    self,
    model,
    tokenizer,
    *,
    name: str = "judge",
    template: str = DEFAULT_TEMPLATE,
    positive: str = " Yes",
    negative: str = " No",
    chat: bool = False,
    batch_size: int = 8,
    length_bucket: int = 64,
  ):
    if not isinstance(name, str) or not name:
      raise JudgeError(f"name must be a non-empty string, got {name!r}")
    _check_template(template)
    if chat and not hasattr(tokenizer, "apply_chat_template"):
      raise JudgeError(
        f"chat=True needs a tokenizer with a chat template, got {type(tokenizer).__name__}"
      )
    self.name, self.template, self.chat = name, template, bool(chat)
    self.positive, self.negative = positive, negative
    self.batch_size = _check_positive_int(batch_size, "batch_size")
    self.length_bucket = _check_positive_int(length_bucket, "length_bucket")
    self.tokenizer = tokenizer
    vocab = int(model.config.vocab_size)
    if tokenizer.vocab_size > vocab:
      raise JudgeError(
        f"judge {name!r}: its tokenizer has {tokenizer.vocab_size} ids but the model's "
        f"vocabulary has vocab_size={vocab} rows; pass the model's own tokenizer"
      )
    context = self.render("q", "a", "r")
    self.positive_id = verdict_token_id(tokenizer, positive, context=context, argument="positive")
    self.negative_id = verdict_token_id(tokenizer, negative, context=context, argument="negative")
    if self.positive_id == self.negative_id:
      raise JudgeError(
        f"positive={positive!r} and negative={negative!r} resolve to the same token id "
        f"{self.positive_id}"
      )
    if max(self.positive_id, self.negative_id) >= vocab:
      raise JudgeError(
        f"judge {name!r}: verdict ids {self.positive_id}/{self.negative_id} are outside the "
        f"model's vocabulary ({vocab})"
      )
    self.max_length = getattr(model.config, "max_position_embeddings", None)
    graphdef, params = nnx.split(model, nnx.Param)
    self._params = params
    pos, neg = self.positive_id, self.negative_id

    def scores(params, tokens, last):
      m = nnx.merge(graphdef, params)
      hidden, _ = m.forward(tokens)
      h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]  # [B, H]
      logits = m.unembed(h).astype(jnp.float32)  # [B, V]
      return jax.nn.sigmoid(logits[:, pos] - logits[:, neg])

    self._scores = jax.jit(scores)

  @classmethod
  def from_hf(cls, hf_dir: str, **kwargs) -> ModelJudge:
    """A judge from a local Hugging Face folder (weights, `tokenizer.json`)."""
    from reasoning_jax.models.source import build_model, resolve_source

    src = resolve_source(hf_dir=hf_dir, flag="judge hf_dir")
    kwargs.setdefault("name", hf_dir.rstrip("/").split("/")[-1] or "judge")
    return cls(build_model(src), src.tokenizer, **kwargs)

  @property
  def settings(self) -> dict[str, Any]:
    """What a stored score depends on besides the weights (recorded in bench manifests)."""
    return {
      "template": self.template,
      "positive": self.positive,
      "negative": self.negative,
      "chat": self.chat,
    }

  @property
  def fingerprint(self) -> str:
    return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]

  def render(self, question: str, answer: str, response: str) -> str:
    """The judge's prompt text (through the chat template when `chat`)."""
    text = self.template.format(question=question, answer=answer, response=response)
    if self.chat:
      messages = [{"role": "user", "content": text}]
      return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    return text

  def encode(self, question: str, answer: str, response: str) -> list[int]:
    """The judge input ids; the verdict is predicted from the last one."""
    ids = list(self.tokenizer.encode(self.render(question, answer, response)))
    bos = getattr(self.tokenizer, "bos_id", None)
    if not self.chat and bos is not None:
      ids = [bos] + ids
    return ids

  def score(
    self, questions: Sequence[str], answers: Sequence[Any], responses: Sequence[str]
  ) -> np.ndarray:
    """`[N]` float32 judge scores in [0, 1], one forward per `batch_size` rows."""
    n = len(responses)
    if len(questions) != n or len(answers) != n:
      raise JudgeError(
        f"questions ({len(questions)}), answers ({len(answers)}) and responses ({n}) must "
        "have one entry per row"
      )
    rows = [self.encode(str(q), str(a), str(r)) for q, a, r in zip(questions, answers, responses)]
    for i, ids in enumerate(rows):
      if self.max_length is not None and len(ids) > self.max_length:
        raise JudgeError(
          f"responses[{i}]: the judge input has {len(ids)} tokens, more than the judge's "
          f"max_position_embeddings={self.max_length}"
        )
    out = np.zeros(n, np.float32)
    for start in range(0, n, self.batch_size):
      chunk = rows[start : start + self.batch_size]
      width = -(-max(len(r) for r in chunk) // self.length_bucket) * self.length_bucket
      tokens = np.zeros((self.batch_size, width), np.int32)
      last = np.zeros(self.batch_size, np.int32)
      for r, ids in enumerate(chunk):
        tokens[r, : len(ids)] = ids
        last[r] = len(ids) - 1
      p = np.asarray(self._scores(self._params, jnp.asarray(tokens), jnp.asarray(last)))
      out[start : start + len(chunk)] = p[: len(chunk)]
    return out


def judge_agreement(judge_scores: Any, verifier_scores: Any, threshold: float = 0.5) -> dict:
  """How well a judge matches the verifier over all cells (the paper's judge-vs-human check).

  Returns `pearson` (NaN when either side is constant), `accuracy` (judge score >= threshold
  vs verifier score >= threshold), `cells`, `judge_mean`, `verifier_mean` and the verifier's
  positive rate `positive_rate` (the accuracy of always answering its majority class is
  `max(positive_rate, 1 - positive_rate)`).
  """
  j = np.asarray(judge_scores, np.float64).ravel()
  v = np.asarray(verifier_scores, np.float64).ravel()
  if j.shape != v.shape or not j.size:
    raise ValueError(
      f"judge_scores and verifier_scores must have the same non-zero size, got "
      f"{np.shape(judge_scores)} and {np.shape(verifier_scores)}"
    )
  if not (np.isfinite(j).all() and np.isfinite(v).all()):
    raise ValueError("judge_scores and verifier_scores must be finite")
  if not 0.0 < threshold < 1.0:
    raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
  pearson = math.nan
  if j.std() > 0 and v.std() > 0:
    pearson = float(np.corrcoef(j, v)[0, 1])
  return {
    "pearson": pearson,
    "accuracy": float(np.mean((j >= threshold) == (v >= threshold))),
    "cells": int(j.size),
    "judge_mean": float(j.mean()),
    "verifier_mean": float(v.mean()),
    "positive_rate": float(np.mean(v >= threshold)),
  }
