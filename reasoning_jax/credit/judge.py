"""The judge's input: a template per rubric item, verdict tokens, and the position map.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md sections 6.1 and 6.4.

A judge reads `template(question, response, criterion)` and its next token after the template
is the verdict: `true_word` or `false_word`. Three things must be exact:

* **The response tokens.** The judge input is built as ids, not re-tokenised text:
  `encode(prefix) + response_ids + encode(suffix)`, where `prefix` / `suffix` are the rendered
  template (optionally through the tokenizer's chat template) split at the response. Under
  self-judging (the judge shares the policy's tokenizer) the response span of the judge input
  is the policy's own tokens, so judge position `start + j` is the policy's j-th response token
  with no alignment heuristics. A judge with another tokenizer cannot be mapped this way and is
  refused (`JudgeError`, naming the argument).
* **The verdict token.** "True" and " True" are different tokens in BPE vocabularies; which
  one the judge emits depends on the text before it. `verdict_token_id` (defined in
  `reasoning_jax.tokenizers.verdict`, shared with `routing`) resolves a word in the context it
  follows (the template's tail): `encode(tail + word)` must be
  `encode(tail)` plus exactly one token, which is the verdict id. A word that spans several
  tokens, or merges with the tail, is an error that says how to fix the template.
* **Static shapes.** Pairs (response, item) are padded to `[M, L]` with `M` and `L` rounded
  up to buckets, so one compiled judge pass serves every step.

DESIGN CHOICES (flags of `JudgeFormat`, defaults below): the template text; the verdict words
`" True"` / `" False"` (the paper's judge answers True/False); `chat=False` (render as plain
text; `chat=True` wraps the request in the tokenizer's chat template as a user turn, with the
verdict right after the assistant header); `include_eos=False` (a response's trailing EOS is
not shown to the judge and gets no attribution).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

# The verdict token and the judge's error live in the tokenizers room, shared with `routing`.
from reasoning_jax.tokenizers.verdict import JudgeError, verdict_token_id

__all__ = [
  "DEFAULT_TEMPLATE",
  "JudgeBatch",
  "JudgeError",
  "JudgeFormat",
  "build_judge_batch",
  "check_same_tokenizer",
  "response_columns",
  "verdict_token_id",
]

DEFAULT_TEMPLATE = (
  "Question: {question}\nResponse: {response}\nCriterion: {criterion}\n"
  "Does the response meet the criterion? Answer True or False.\nVerdict:"
)
_RESPONSE = "\x00RESPONSE\x00"  # Never produced by a tokenizer's decode of real text.


@dataclasses.dataclass(frozen=True)
class JudgeFormat:
  """How a (question, response, criterion) triple is shown to the judge.

  Attributes:
    template: text with `{response}` exactly once and `{criterion}`; `{question}` optional.
      The verdict token follows the template's last character.
    true_word / false_word: the verdict words, each a single token after the template.
    chat: render through the tokenizer's chat template (user turn + assistant header).
    system_prompt: the chat's system prompt (chat only); None for none.
    include_eos: show a response's trailing EOS token to the judge.
    add_bos: start the judge input with the tokenizer's BOS; None: when it has one (as the
      trainers' prompts do), so a self-judge reads requests the way it was trained on them.
  """

  template: str = DEFAULT_TEMPLATE
  true_word: str = " True"
  false_word: str = " False"
  chat: bool = False
  system_prompt: str | None = None
  include_eos: bool = False
  add_bos: bool | None = None

  def __post_init__(self):
    if self.template.count("{response}") != 1 or "{criterion}" not in self.template:
      raise JudgeError(
        "JudgeFormat.template must contain {response} exactly once and {criterion}, got "
        f"{self.template!r}"
      )
    try:
      self.template.format(question="q", response="r", criterion="c")
    except (KeyError, IndexError, ValueError) as e:
      raise JudgeError(
        f"JudgeFormat.template has a placeholder other than question/response/criterion: {e}"
      ) from None
    if not self.true_word or not self.false_word or self.true_word == self.false_word:
      raise JudgeError(
        f"JudgeFormat verdict words must be two different non-empty strings, got "
        f"{self.true_word!r} / {self.false_word!r}"
      )

  def render(self, tokenizer, question: str, criterion: str) -> tuple[str, str]:
    """`(prefix, suffix)` text around the response."""
    text = self.template.format(question=question, response=_RESPONSE, criterion=criterion)
    if self.chat:
      if not hasattr(tokenizer, "apply_chat_template"):
        raise JudgeError(
          f"JudgeFormat.chat=True needs a tokenizer with a chat template, got "
          f"{type(tokenizer).__name__}"
        )
      messages = [{"role": "user", "content": text}]
      if self.system_prompt:
        messages.insert(0, {"role": "system", "content": self.system_prompt})
      text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    prefix, suffix = text.split(_RESPONSE)
    return prefix, suffix

  def verdict_ids(self, tokenizer) -> tuple[int, int]:
    """`(true_id, false_id)` in the context of the template's tail."""
    _, tail = self.render(tokenizer, "q", "c")
    true_id = verdict_token_id(
      tokenizer, self.true_word, context=tail, argument="JudgeFormat.true_word"
    )
    false_id = verdict_token_id(
      tokenizer, self.false_word, context=tail, argument="JudgeFormat.false_word"
    )
    if true_id == false_id:
      raise JudgeError(f"true_word and false_word resolve to the same token id {true_id}")
    return true_id, false_id


def check_same_tokenizer(policy_tokenizer, judge_tokenizer, *, argument: str = "judge") -> None:
  """Self-judging maps positions by identity: the tokenizers must agree."""
  if policy_tokenizer is judge_tokenizer:
    return
  probe = "Question: 12 + 35 = 47. The answer is True\n"
  same = (
    policy_tokenizer.vocab_size == judge_tokenizer.vocab_size
    and list(policy_tokenizer.encode(probe)) == list(judge_tokenizer.encode(probe))
    and getattr(policy_tokenizer, "eos_id", None) == getattr(judge_tokenizer, "eos_id", None)
  )
  if not same:
    raise JudgeError(
      f"{argument}: the judge's tokenizer ({type(judge_tokenizer).__name__}, vocab "
      f"{judge_tokenizer.vocab_size}) differs from the policy's "
      f"({type(policy_tokenizer).__name__}, vocab {policy_tokenizer.vocab_size}); token "
      "attributions are mapped to policy tokens by position, which needs the same tokenizer"
    )


def response_columns(mask: np.ndarray, row: int) -> np.ndarray:
  """Policy columns of row `row`'s response; JudgeError if the response has holes."""
  cols = np.flatnonzero(np.asarray(mask[row]) > 0)
  if cols.size and cols[-1] - cols[0] + 1 != cols.size:
    holes = sorted(set(range(int(cols[0]), int(cols[-1]) + 1)) - set(cols.tolist()))
    raise JudgeError(
      f"mask: row {row} has padding inside its response (columns {holes[:8]}); an "
      "attribution window must be one contiguous span of response tokens"
    )
  return cols


@dataclasses.dataclass(frozen=True)
class JudgeBatch:
  """Judge inputs of `M` (response, item) pairs, padded to `[M_pad, L]` (numpy).

  tokens: `[M_pad, L]` int32 judge ids (0 after the end).
  valid: `[M_pad, L]` bool, real tokens.
  span: `[M_pad, L]` bool, judge positions holding response tokens (attributed).
  policy_col: `[M_pad, L]` int32, the policy column of each span position (0 elsewhere).
  verdict_pos: `[M_pad]` int32, the last template position (predicts the verdict).
  row / item: `[M]` int32, the policy row and rubric item of each real pair.
  """

  tokens: np.ndarray
  valid: np.ndarray
  span: np.ndarray
  policy_col: np.ndarray
  verdict_pos: np.ndarray
  row: np.ndarray
  item: np.ndarray

  @property
  def num_pairs(self) -> int:
    return int(self.row.shape[0])


def _bucket(n: int, size: int) -> int:
  return max(size, -(-n // size) * size)


def build_judge_batch(
  tokenizer,
  fmt: JudgeFormat,
  *,
  questions: Sequence[str],
  criteria: Sequence[Sequence[str]],
  tokens: Any,
  mask: Any,
  pairs: Sequence[tuple[int, int]],
  eos_id: int | None = None,
  length_bucket: int = 64,
  pair_bucket: int = 8,
  max_length: int | None = None,
) -> JudgeBatch:
  """Judge inputs for `pairs` of (policy row n, rubric item k).

  Args:
    tokenizer: the judge's tokenizer (the policy's, under self-judging).
    fmt: the template and verdict words.
    questions: `[N]` question text of each policy row.
    criteria: `[N][K_n]` criterion text of each row's rubric items.
    tokens / mask: the policy batch `[N, S]` and its response mask (1 on response tokens).
    pairs: the (row, item) pairs to build, e.g. every item, or the satisfied ones.
    eos_id: the policy's EOS id (dropped from the end of a response unless include_eos).
    length_bucket / pair_bucket: `L` and `M_pad` are rounded up to multiples of these.
    max_length: refuse judge inputs longer than this (the judge's context), naming the row.
  """
  tokens = np.asarray(tokens)
  mask = np.asarray(mask)
  if tokens.ndim != 2 or mask.shape != tokens.shape:
    raise JudgeError(f"tokens and mask must both be [N, S], got {tokens.shape} and {mask.shape}")
  n_rows = tokens.shape[0]
  if len(questions) != n_rows or len(criteria) != n_rows:
    raise JudgeError(
      f"questions ({len(questions)}) and criteria ({len(criteria)}) need one entry per policy "
      f"row ({n_rows})"
    )
  bos = getattr(tokenizer, "bos_id", None) if fmt.add_bos in (None, True) else None
  if fmt.add_bos and bos is None:
    raise JudgeError("JudgeFormat.add_bos=True but the tokenizer has no BOS token")
  seqs, spans, cols_of, verdict = [], [], [], []
  prefix_cache: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
  for n, k in pairs:
    if not (0 <= n < n_rows and 0 <= k < len(criteria[n])):
      raise JudgeError(f"pairs: ({n}, {k}) is out of range for {n_rows} rows and their items")
    cols = response_columns(mask, n)
    if not cols.size:
      raise JudgeError(f"mask: row {n} has no response token to judge")
    # A trailing EOS is hidden from the judge, unless it is the whole response (then it is
    # the only token that can carry the reward).
    if (
      not fmt.include_eos and cols.size > 1 and eos_id is not None and tokens[n, cols[-1]] == eos_id
    ):
      cols = cols[:-1]
    if (n, k) not in prefix_cache:
      prefix, suffix = fmt.render(tokenizer, questions[n], criteria[n][k])
      prefix_cache[(n, k)] = (list(tokenizer.encode(prefix)), list(tokenizer.encode(suffix)))
    pre, suf = prefix_cache[(n, k)]
    if bos:
      pre = [bos] + pre
    ids = pre + tokens[n, cols].tolist() + suf
    if max_length is not None and len(ids) > max_length:
      raise JudgeError(
        f"the judge input of row {n}, item {k} has {len(ids)} tokens, more than the judge's "
        f"max_length={max_length}"
      )
    seqs.append(ids)
    spans.append((len(pre), len(pre) + cols.size))
    cols_of.append(cols)
    verdict.append(len(ids) - 1)
  m = len(seqs)
  length = _bucket(max((len(s) for s in seqs), default=1), length_bucket)
  m_pad = _bucket(m, pair_bucket)
  out_tokens = np.zeros((m_pad, length), np.int32)
  valid = np.zeros((m_pad, length), bool)
  span = np.zeros((m_pad, length), bool)
  policy_col = np.zeros((m_pad, length), np.int32)
  verdict_pos = np.zeros((m_pad,), np.int32)
  for i, (ids, (a, b), cols) in enumerate(zip(seqs, spans, cols_of)):
    out_tokens[i, : len(ids)] = ids
    valid[i, : len(ids)] = True
    span[i, a:b] = True
    policy_col[i, a:b] = cols
    verdict_pos[i] = verdict[i]
  valid[m:, 0] = True  # Padding pairs: one token, outputs ignored.
  rows = np.asarray([p[0] for p in pairs], np.int32)
  items = np.asarray([p[1] for p in pairs], np.int32)
  return JudgeBatch(out_tokens, valid, span, policy_col, verdict_pos, rows, items)
