r"""Passkey retrieval tasks for long-context decoding: token-level multi-needle and text passkey.

(a) `multi_needle`: for models trained here. A haystack of filler tokens (i.i.d., or one
random "sentence" repeated: `filler_period`) holds `num_needles` needles `[KEY_MARK, key,
v_1 .. v_m]` at random depths (their start in `depth_range` of the prompt, default 5%-95%);
the prompt ends with `[QUERY_MARK, key_q]` and the answer is the m value tokens of the queried needle. With m >= 3 the first answer token is
produced by the (dense) prefill and the other m - 1 by decode steps, the steps a sparse
decoding method changes: to produce v_{i+1} after v_i the model must read the needle again.
Keys, values and filler are distinct ids of one pool within a row.

  >>> data = multi_needle(8, prompt_len=1024, num_needles=4, value_len=4, seed=0)
  >>> data.prompts.shape, data.lengths, data.answers.shape   # [8, 1024], [8], [8, 4]
  >>> tokens, loss_mask = training_examples(data)              # [8, 1028] each

(b) `text_passkey`: the classic passkey prompt for Hugging Face tokenizers ("The grass is
green. The sky is blue. ..." with "The pass key is 71432. Remember it." at a depth and the
question at the end); `parse_passkey` reads the digits back from a decoded completion (never
`eval`). "Landmark Attention: Random-Access Infinite Context Length for Transformers"
(Mohtashami & Jaggi, arXiv:2305.16300) introduced the prompt.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

PAD = 0
KEY_MARK = 1
QUERY_MARK = 2
NUM_SPECIAL = 3


def _int(name: str, value, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  return int(value)


def _pool(vocab_size: int) -> np.ndarray:
  """Non-special ids: keys, values and filler are drawn from one pool, distinct within a row
  (shared embeddings: the induction a model learns on the filler also copies the values)."""
  vocab_size = _int("vocab_size", vocab_size, NUM_SPECIAL + 16)
  return np.arange(NUM_SPECIAL, vocab_size)


@dataclasses.dataclass(frozen=True)
class PasskeyData:
  """Multi-needle examples.

  Attributes:
    prompts: `[N, P]` int32, right-padded with PAD beyond each row's length.
    lengths: `[N]` int32 prompt lengths (each ends with QUERY_MARK, key_q).
    answers: `[N, m]` int32, the queried needle's values.
    needle_starts: `[N, num_needles]` int32 positions of each needle's KEY_MARK.
    query_index: `[N]` int32, which needle (in prompt order) the query asks for.
  """

  prompts: np.ndarray
  lengths: np.ndarray
  answers: np.ndarray
  needle_starts: np.ndarray
  query_index: np.ndarray

  def __len__(self) -> int:
    return len(self.prompts)


def multi_needle(
  num: int,
  *,
  prompt_len: int,
  num_needles: int = 4,
  value_len: int = 4,
  vocab_size: int = 256,
  depth_range: tuple[float, float] = (0.05, 0.95),
  min_prompt_len: int | None = None,
  filler_period: int = 0,
  seed: int = 0,
) -> PasskeyData:
  """`num` multi-needle prompts (a function of the arguments and `seed`).

  Args:
    num: examples.
    prompt_len: prompt tokens (the padded width; each row's length when `min_prompt_len` is
      None).
    num_needles: needles per prompt (distinct keys).
    value_len: m >= 3 value tokens per needle (the answer).
    vocab_size: the model's vocabulary; keys, values and filler are distinct ids of 3..V-1
      within a row.
    depth_range: (lo, hi) fractions of the prompt where needles start.
    min_prompt_len: when set, each row's length is uniform in [min_prompt_len, prompt_len].
    filler_period: 0 (i.i.d. uniform filler) or P >= 2: each row's haystack repeats one random
      "sentence" of P // 2 .. P filler tokens (its length drawn per row), like the classic
      passkey's repeated text; a model trained on every token learns content-based induction
      from it quickly (a varying period rules out copying from a fixed offset).
    seed: numpy seed.
  """
  num = _int("num", num, 1)
  num_needles = _int("num_needles", num_needles, 1)
  filler_period = _int("filler_period", filler_period, 0)
  if filler_period == 1:
    raise ValueError("filler_period must be 0 (i.i.d. filler) or >= 2, got 1")
  value_len = _int("value_len", value_len, 3)
  pool = _pool(vocab_size)
  distinct = num_needles * (value_len + 1) + max(filler_period, 2)
  if distinct > len(pool) // 2:
    raise ValueError(
      f"num_needles={num_needles} needles of value_len={value_len} plus the filler need "
      f"{distinct} distinct ids, more than half of the {len(pool)} of vocab_size={vocab_size}"
    )
  lo_d, hi_d = (float(x) for x in depth_range)
  if not 0.0 <= lo_d < hi_d <= 1.0:
    raise ValueError(f"depth_range must be 0 <= lo < hi <= 1, got {depth_range!r}")
  needle = value_len + 2
  shortest = num_needles * needle + 2 + 4
  prompt_len = _int("prompt_len", prompt_len, shortest)
  if min_prompt_len is None:
    min_prompt_len = prompt_len
  min_prompt_len = _int("min_prompt_len", min_prompt_len, shortest)
  if min_prompt_len > prompt_len:
    raise ValueError(f"min_prompt_len={min_prompt_len} exceeds prompt_len={prompt_len}")
  rng = np.random.default_rng(seed)
  prompts = np.full((num, prompt_len), PAD, np.int32)
  lengths = rng.integers(min_prompt_len, prompt_len + 1, num).astype(np.int32)
  answers = np.zeros((num, value_len), np.int32)
  starts = np.zeros((num, num_needles), np.int32)
  query = rng.integers(0, num_needles, num).astype(np.int32)
  for row in range(num):
    length = int(lengths[row])
    body = length - 2  # The query's two tokens end the prompt.
    filler = body - num_needles * needle
    ids = rng.permutation(pool)
    keys = ids[:num_needles]
    values = ids[num_needles : num_needles * (value_len + 1)].reshape(num_needles, value_len)
    rest = ids[num_needles * (value_len + 1) :]
    if filler_period:
      period = int(rng.integers(max(2, filler_period // 2), filler_period + 1))
      seq = list(np.resize(rest[:period], filler))
    else:
      seq = list(rng.choice(rest, filler))
    # Needle starts as depths of the body: slots in the filler chosen so each needle begins
    # inside [lo, hi] * body once the earlier needles are inserted.
    lo = int(np.floor(lo_d * body))
    hi = max(lo, int(np.ceil(hi_d * body)) - num_needles * needle)
    slots = np.sort(
      rng.choice(np.arange(lo, hi + 1), num_needles, replace=hi - lo + 1 < num_needles)
    )
    out, prev = [], 0
    for i, slot in enumerate(slots):
      slot = min(int(slot), filler)
      out.extend(seq[prev:slot])
      starts[row, i] = len(out)
      out.extend([KEY_MARK, int(keys[i]), *values[i].tolist()])
      prev = slot
    out.extend(seq[prev:])
    q = int(query[row])
    out.extend([QUERY_MARK, int(keys[q])])
    prompts[row, :length] = out
    answers[row] = values[q]
  return PasskeyData(prompts, lengths, answers, starts, query)


def training_examples(
  data: PasskeyData, *, all_needles: bool = False, loss_on: str = "answer", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """`(tokens, loss_mask)`: each prompt followed by its answer (then PAD); the mask is True on
  the answer tokens (their next-token targets sit one position earlier: shift with
  `tokens[:, 1:]` as usual). Width P + m.

  `all_needles`: after the answer, every other needle is queried too (`[QUERY_MARK, key,
  values]` blocks in a seeded random order, MQAR style), their values also in the loss: the
  evaluation prompt is the prefix up to the first answer, and a model trained from scratch
  gets num_needles times the signal per example. Width P + m + (n - 1)(m + 2).
  `loss_on`: "answer" (the answers' values) or "all" (every token but the first and PAD).
  """
  if loss_on not in ("answer", "all"):
    raise ValueError(f"loss_on must be 'answer' or 'all', got {loss_on!r}")
  n, p = data.prompts.shape
  m = data.answers.shape[1]
  needles = data.needle_starts.shape[1]
  extra = (needles - 1) * (m + 2) if all_needles else 0
  tokens = np.full((n, p + m + extra), PAD, np.int32)
  mask = np.zeros((n, p + m + extra), bool)
  rng = np.random.default_rng(seed)
  for row in range(n):
    length = int(data.lengths[row])
    tokens[row, :length] = data.prompts[row, :length]
    tokens[row, length : length + m] = data.answers[row]
    mask[row, length : length + m] = True
    if not all_needles:
      continue
    at = length + m
    others = [i for i in range(needles) if i != int(data.query_index[row])]
    for i in rng.permutation(others):
      start = int(data.needle_starts[row, i])
      key, values = data.prompts[row, start + 1], data.prompts[row, start + 2 : start + 2 + m]
      tokens[row, at : at + 2] = (QUERY_MARK, key)
      tokens[row, at + 2 : at + 2 + m] = values
      mask[row, at + 2 : at + 2 + m] = True
      at += m + 2
  if loss_on == "all":
    mask = tokens != PAD
    mask[:, 0] = False
  return tokens, mask


# -- (b) The text passkey for Hugging Face tokenizers -------------------------------------------

FILLER = (
  "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
)
TASK = (
  "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
  "I will quiz you about the important information there. "
)
QUESTION = "What is the pass key? The pass key is"


@dataclasses.dataclass(frozen=True)
class TextPasskey:
  """A text passkey prompt: `text`, the `passkey` digits and the needle's `depth`."""

  text: str
  passkey: str
  depth: float


def text_passkey(
  num_filler: int, *, depth: float | None = None, digits: int = 5, seed: int = 0
) -> TextPasskey:
  """The passkey prompt with `num_filler` filler sentences groups and the needle at `depth`
  (a fraction; None: uniform in [0.05, 0.95]), a `digits`-digit key (no leading zero)."""
  num_filler = _int("num_filler", num_filler, 1)
  digits = _int("digits", digits, 1)
  rng = np.random.default_rng(seed)
  if depth is None:
    depth = float(rng.uniform(0.05, 0.95))
  if not 0.0 <= depth <= 1.0:
    raise ValueError(f"depth must be in [0, 1], got {depth!r}")
  key = str(int(rng.integers(10 ** (digits - 1), 10**digits)))
  at = int(round(depth * num_filler))
  needle = f"The pass key is {key}. Remember it. {key} is the pass key. "
  text = TASK + FILLER * at + needle + FILLER * (num_filler - at) + QUESTION
  return TextPasskey(text, key, depth)


def text_passkey_tokens(tokenizer, num_tokens: int, *, digits: int = 5, seed: int = 0):
  """A `TextPasskey` sized to at most `num_tokens` tokens of `tokenizer` (the largest filler
  count that fits), with its token ids."""
  num_tokens = _int("num_tokens", num_tokens, 8)
  probe = len(tokenizer.encode(FILLER * 4)) / 4
  base = len(tokenizer.encode(TASK + QUESTION)) + 24
  count = max(1, int((num_tokens - base) / max(probe, 1e-6)))
  while True:
    item = text_passkey(count, digits=digits, seed=seed)
    ids = tokenizer.encode(item.text)
    if len(ids) <= num_tokens or count == 1:
      return item, ids
    count = max(1, int(count * num_tokens / len(ids)) - 1)


_DIGITS = re.compile(r"\d+")


def parse_passkey(completion: str) -> str:
  """The first run of digits in a decoded completion ("" when there is none)."""
  if not isinstance(completion, str):
    raise TypeError(f"completion must be a str, got {type(completion).__name__}")
  match = _DIGITS.search(completion)
  return match.group(0) if match else ""
