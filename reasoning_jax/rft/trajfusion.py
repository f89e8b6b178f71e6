"""TrajFusion: fused wrong -> reflect -> right SFT samples built from rejection-sampling output.

"Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Jie Deng,
Hanshuang Tong, Jun Li, Shining Liang, Ning Wu, Hongzhi Li, Yutao Xie, arXiv:2602.04391
(Findings of ACL 2026).

Rejection-sampling fine-tuning (RFT) keeps only a teacher's verified-correct trajectories.
TrajFusion keeps the same problems and the same number of samples per problem, but prefixes
each correct trajectory `c` with `k` of the problem's wrong trajectories, each followed by a
fixed reflection text `R`:

    response = w_1 + R + w_2 + R + ... + w_k + R + c

and supervises the *whole* response with next-token prediction (the wrong segments are not
masked: that is the paper's design). Everything here is pure Python over text; the sampler
(`rft.sampling`) produces the input and `rft.dataset` writes the output for the SFT trainer.

Per problem with N samples, correct set C and wrong set W (the verifier's verdict):
`e = |W| / N`; the distinct wrong answers D (the verifier's own extraction, `rewards.answers`)
with counts n_d; the error diversity `H = -sum_d (n_d/|W|) log(n_d/|W|)`. A wrong trajectory
is *informative* when it has an extractable final answer and was not truncated; D' are the
distinct answers of the informative ones. The paper gives no formula for k; the spec's
**DESIGN CHOICE** (every knob a field of `TrajFusionConfig`):

    |C| == 0                       -> the problem is dropped (a fused sample ends correct)
    |W'| == 0 or e < e_min         -> k = 0 (the plain RFT sample)
    otherwise                      -> k = min(K_max, |D'|, max(1, round(e * K_max)))

with `round` half-up. The k wrong trajectories are one per distinct wrong answer, the most
frequent answers first (ties in a seeded random order), the trajectory of each answer drawn
with a seeded generator per (problem, correct sample), so the fused samples of one problem
carry different wrong trajectories where there are several. A fused sample longer than the
context limit loses wrong segments from the front until it fits; `c` is never cut.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import random
from typing import Any, Callable, Mapping, Optional, Sequence

from reasoning_jax.validation import check_float_in, check_positive_int

__all__ = [
  "DEFAULT_REFLECTION",
  "ErrorStats",
  "FusedSample",
  "ProblemSamples",
  "Trajectory",
  "TrajFusionConfig",
  "check_reflection",
  "error_stats",
  "fuse",
  "num_wrong_segments",
  "rft_samples",
  "select_wrong",
  "trajfusion_samples",
]

# DESIGN CHOICE (spec 7.1): the reflection / transition text between segments.
DEFAULT_REFLECTION = (
  "\n\nWait, this result does not look right. Let me re-examine the problem and solve it again.\n\n"
)


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """One sampled response.

  Attributes:
    text: the completion as decoded (verbatim; wrong segments are kept as sampled).
    correct: the verifier's verdict against the ground truth.
    answer: the canonical final answer the verifier read (`rewards.answer_key`), or None.
    truncated: the sampling budget ran out before EOS.
    num_tokens: generated tokens (incl. EOS).
  """

  text: str
  correct: bool
  answer: Optional[str]
  truncated: bool = False
  num_tokens: int = 0

  @property
  def informative(self) -> bool:
    """An extractable final answer and not truncated (spec 7.1)."""
    return self.answer is not None and not self.truncated


@dataclasses.dataclass(frozen=True)
class ProblemSamples:
  """A problem with its ground truth and the teacher's N trajectories.

  `fields` holds the example's other fields that travel with it (e.g. countdown `numbers`).
  """

  index: int
  question: str
  answer: str
  trajectories: tuple[Trajectory, ...]
  fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrajFusionConfig:
  """The construction's knobs; defaults are the spec's DESIGN CHOICEs.

  Attributes:
    e_min: below this error rate the sample stays plain RFT (k = 0). DESIGN CHOICE 0.125.
    k_max: most wrong trajectories in one fused sample. DESIGN CHOICE 3.
    reflection: the text R after every wrong segment. DESIGN CHOICE `DEFAULT_REFLECTION`.
    max_tokens: context limit of a fused response in tokens (L_ctx; the spec's example is
      32k); wrong segments are dropped from the front until the response fits, never `c`.
    seed: seeds the tie-break between equally frequent answers and the choice of trajectory
      per answer (the dataset is a function of the samples and this seed).
    dedup_correct: one sample per *distinct* correct text (RFT's usual de-duplication);
      False keeps every correct trajectory. DESIGN CHOICE True.
    max_per_problem: at most this many samples per problem (0: no limit), for both RFT and
      TrajFusion.
  """

  e_min: float = 0.125
  k_max: int = 3
  reflection: str = DEFAULT_REFLECTION
  max_tokens: int = 32768
  seed: int = 0
  dedup_correct: bool = True
  max_per_problem: int = 0

  def __post_init__(self):
    check_float_in(self.e_min, "TrajFusionConfig.e_min", 0.0, 1.0)
    check_positive_int(self.k_max, "TrajFusionConfig.k_max", minimum=0)
    check_positive_int(self.max_tokens, "TrajFusionConfig.max_tokens")
    check_positive_int(self.max_per_problem, "TrajFusionConfig.max_per_problem", minimum=0)
    if not isinstance(self.reflection, str) or not self.reflection.strip():
      raise ValueError(
        f"TrajFusionConfig.reflection must be a non-empty text, got {self.reflection!r}"
      )


@dataclasses.dataclass(frozen=True)
class ErrorStats:
  """Error statistics of one problem's samples (spec 7.1)."""

  num_samples: int
  num_correct: int
  num_wrong: int
  num_informative_wrong: int
  error_rate: float  # e = |W| / N
  wrong_answers: tuple[tuple[str, int], ...]  # D' with counts, most frequent first
  diversity: float  # H over the wrong answers of W (None answers form one group)


def error_stats(problem: ProblemSamples) -> ErrorStats:
  """e, the distinct informative wrong answers D' (most frequent first, then by answer) and
  the error diversity H of `problem`."""
  trajs = problem.trajectories
  wrong = [t for t in trajs if not t.correct]
  informative = [t for t in wrong if t.informative]
  counts = collections.Counter(t.answer for t in informative)
  ordered = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
  all_counts = collections.Counter(t.answer for t in wrong).values()
  diversity = -sum((n / len(wrong)) * math.log(n / len(wrong)) for n in all_counts) if wrong else 0
  return ErrorStats(
    num_samples=len(trajs),
    num_correct=len(trajs) - len(wrong),
    num_wrong=len(wrong),
    num_informative_wrong=len(informative),
    error_rate=len(wrong) / len(trajs) if trajs else 0.0,
    wrong_answers=ordered,
    diversity=float(diversity) + 0.0,
  )


def num_wrong_segments(
  error_rate: float, num_distinct: int, num_informative: int, config: TrajFusionConfig
) -> int:
  """k of the spec's rule: non-decreasing in the error rate and in |D'|, at most K_max and
  |D'|; 0 when no informative wrong trajectory exists or e < e_min."""
  if num_informative == 0 or num_distinct == 0 or error_rate < config.e_min or config.k_max == 0:
    return 0
  by_rate = max(1, math.floor(error_rate * config.k_max + 0.5))  # round half up
  return min(config.k_max, num_distinct, by_rate)


def _rng(config: TrajFusionConfig, problem_index: int, sample_index: int) -> random.Random:
  digest = hashlib.sha256(f"{config.seed}:{problem_index}:{sample_index}".encode()).digest()
  return random.Random(int.from_bytes(digest[:8], "little"))


def select_wrong(
  problem: ProblemSamples, k: int, config: TrajFusionConfig, sample_index: int = 0
) -> list[Trajectory]:
  """k informative wrong trajectories, one per distinct answer, most frequent answers first
  (equal counts in a seeded random order); the trajectory of each answer is a seeded draw per
  (problem, sample)."""
  if k <= 0:
    return []
  groups: dict[str, list[Trajectory]] = collections.defaultdict(list)
  for t in problem.trajectories:
    if not t.correct and t.informative:
      groups[t.answer].append(t)
  rng = _rng(config, problem.index, sample_index)
  answers = sorted(groups)
  # Shuffle first (seeded), then a stable sort by count: ties keep the random order.
  rng.shuffle(answers)
  answers.sort(key=lambda a: -len(groups[a]))
  return [rng.choice(groups[a]) for a in answers[:k]]


def fuse(wrong: Sequence[str], correct: str, reflection: str) -> str:
  """`w_1 + R + ... + w_k + R + c` (k = 0: `c` itself, byte for byte)."""
  return "".join(w + reflection for w in wrong) + correct


@dataclasses.dataclass(frozen=True)
class FusedSample:
  """One SFT record: the problem, the response (target) and how it was built."""

  problem_index: int
  sample_index: int
  question: str
  answer: str
  response: str
  num_wrong: int  # k after truncation
  num_wrong_dropped: int  # wrong segments removed by the context limit
  wrong_answers: tuple[str, ...]
  fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def record(self) -> dict[str, Any]:
    """The JSON record `rft.dataset` writes (the same keys for RFT and TrajFusion)."""
    return {
      "question": self.question,
      "answer": self.answer,
      "solution": self.response,
      "problem_index": self.problem_index,
      "sample_index": self.sample_index,
      "num_wrong": self.num_wrong,
      **dict(self.fields),
    }


def _correct_texts(problem: ProblemSamples, config: TrajFusionConfig) -> list[str]:
  texts = [t.text for t in problem.trajectories if t.correct]
  if config.dedup_correct:
    texts = list(dict.fromkeys(texts))
  if config.max_per_problem:
    texts = texts[: config.max_per_problem]
  return texts


def rft_samples(problems: Sequence[ProblemSamples], config: TrajFusionConfig) -> list[FusedSample]:
  """The RFT baseline: one sample per retained correct trajectory; problems without a correct
  trajectory are dropped."""
  out = []
  for p in problems:
    for j, c in enumerate(_correct_texts(p, config)):
      out.append(FusedSample(p.index, j, p.question, p.answer, c, 0, 0, (), p.fields))
  return out


def trajfusion_samples(
  problems: Sequence[ProblemSamples],
  config: TrajFusionConfig,
  *,
  length_fn: Callable[[str], int] | None = None,
) -> list[FusedSample]:
  """TrajFusion's samples: the same problems and count per problem as `rft_samples`, each
  correct trajectory prefixed by k wrong ones and the reflection text.

  Args:
    problems: the sampler's output.
    config: the construction's knobs.
    length_fn: tokens of a response (the SFT tokenizer's count); None counts characters.
      A fused response over `config.max_tokens` drops wrong segments from the front until it
      fits; the correct segment is never cut (a correct trajectory alone over the limit stays
      as it is, like its RFT sample).
  """
  length_fn = length_fn or len
  out = []
  for p in problems:
    correct = _correct_texts(p, config)
    if not correct:
      continue
    stats = error_stats(p)
    k = num_wrong_segments(
      stats.error_rate, len(stats.wrong_answers), stats.num_informative_wrong, config
    )
    for j, c in enumerate(correct):
      wrong = select_wrong(p, k, config, sample_index=j)
      dropped = 0
      while wrong and length_fn(fuse([w.text for w in wrong], c, config.reflection)) > (
        config.max_tokens
      ):
        wrong, dropped = wrong[1:], dropped + 1
      out.append(
        FusedSample(
          p.index,
          j,
          p.question,
          p.answer,
          fuse([w.text for w in wrong], c, config.reflection),
          len(wrong),
          dropped,
          tuple(w.answer for w in wrong),
          p.fields,
        )
      )
  return out


def check_reflection(tokenizer: Any, reflection: str, argument: str = "reflection") -> list[int]:
  """The reflection's token ids; ValueError naming `argument` when the text contains a special
  token of the tokenizer (e.g. the chat template's `<|im_end|>`), which would end the
  assistant turn in the middle of a fused response, or when it does not survive an
  encode/decode round trip."""
  if not isinstance(reflection, str) or not reflection:
    raise ValueError(f"{argument} must be a non-empty str, got {reflection!r}")
  specials = dict(getattr(tokenizer, "special_tokens", {}) or {})
  inside = sorted(s for s in specials if s and s in reflection)
  if inside:
    raise ValueError(
      f"{argument} contains the tokenizer's special token(s) {inside}: a fused response would "
      "close or open a chat turn mid-sample; write the reflection as plain text"
    )
  ids = tokenizer.encode(reflection)
  special_ids = set(specials.values()) | {
    i for i in (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) if i is not None
  }
  bad = sorted(set(ids) & special_ids)
  if bad:
    raise ValueError(f"{argument} encodes to special token ids {bad}; write it as plain text")
  if tokenizer.decode(ids, skip_special_tokens=False) != reflection:
    raise ValueError(
      f"{argument}={reflection!r} does not survive an encode/decode round trip with this "
      "tokenizer (characters outside its vocabulary?)"
    )
  return ids
