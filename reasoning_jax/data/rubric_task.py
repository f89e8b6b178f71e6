"""A synthetic open-ended task scored by rubrics, with judge demonstrations (runs offline).

Built for Grad2Reward (Grad2Reward: From Sparse Judgment to Dense Rewards for Improving
Open-Ended LLM Reasoning, Zhang et al., arXiv 2602.01791): a prompt asks for a short worked
two-step computation, and its rubric rewards the *parts* of a good response, so a response can
be partly right and a sparse judgment hides which tokens earned the reward.

    question: "Add 23 and 24, then double it."
    ideal:    "23+24=47. 47*2=94. Answer: 94"
    rubric:   shows the sum 47 (w 2) | shows the step 47*2 (w 1) | final answer 94 (w 3)
              | repeats the question (w -1, an undesirable criterion)

Every item carries a programmatic `check` (`reasoning_jax.rewards.rubric`) that the
evaluation grader (`rubric_rules`) applies; the training signal comes from a judge model
reading the criterion text, never from the checks.

Demonstrations (what SFT imitates, so that the warm start is imperfect and RL has room):
`response_variant` draws each part of a response independently: the question repeated
(`p_repeat`), the sum shown (`p_sum`), the step shown (`p_step`), the final answer right
(`p_final`, else one digit off), and with `p_slip` the sum is miscomputed and the slip carries
through (so demonstrations, like a weak policy's samples, name numbers near the rubric's).
Judge demonstrations (`judge_example`) pair a drawn response
with one criterion and the check's verdict: the self-judge of Grad2Reward is the SFT model
itself, so it learns to judge in the same warm start. Their prompt is `JUDGE_TEMPLATE`; the
judge format of the RL config must render the same text (`judge_template(prompt_template)`).
"""

from __future__ import annotations

import json
import random
from typing import Any

from reasoning_jax.rewards.rubric import check_item

__all__ = [
  "FALSE_WORD",
  "JUDGE_TEMPLATE",
  "TRUE_WORD",
  "judge_example",
  "judge_template",
  "response_variant",
  "rubric_example",
]

# The judge's request: a question field of the SFT data; the verdict is the SFT target.
JUDGE_TEMPLATE = "Judge. Q: {question} R: {response} C: {criterion} V:"
# One token each under the byte tokenizer (a verdict must be one token).
TRUE_WORD, FALSE_WORD = "Y", "N"

_SECOND = (
  ("double it", lambda s: s * 2, "{s}*2={f}"),
  ("add {c}", lambda s, c: s + c, "{s}+{c}={f}"),
  ("subtract {c}", lambda s, c: s - c, "{s}-{c}={f}"),
)


def judge_template(prompt_template: str = "{question}\n") -> str:
  """The judge format's template that renders exactly like a judge demonstration's prompt."""
  return prompt_template.format(question=JUDGE_TEMPLATE)


def _corrupt(value: int, rng: random.Random) -> int:
  digits = list(str(abs(value)))
  i = rng.randrange(len(digits))
  choices = [d for d in "0123456789" if d != digits[i] and not (i == 0 and d == "0")]
  if not choices:  # A single-digit 0 or similar: move by one.
    return value + 1
  digits[i] = rng.choice(choices)
  out = int("".join(digits))
  return -out if value < 0 else out


def rubric_example(rng: random.Random, *, max_value: int = 49) -> dict[str, Any]:
  """One prompt: `question`, `answer`, `solution` (the ideal response), `rubric` (JSON)."""
  a, b = rng.randint(10, max_value), rng.randint(10, max_value)
  s = a + b
  kind = rng.randrange(len(_SECOND))
  phrase, fn, step = _SECOND[kind]
  if kind == 0:
    f, c = fn(s), None
  else:
    c = rng.randint(2, 9)
    f = fn(s, c)
  second = phrase.format(c=c)
  question = f"Add {a} and {b}, then {second}."
  step_text = step.format(s=s, c=c, f=f)
  solution = f"{a}+{b}={s}. {step_text}. Answer: {f}"
  rubric = {
    "items": [
      {"criterion": f"shows the sum {s}", "weight": 2.0, "check": {"number": s}},
      {
        "criterion": f"shows the step {step_text.split('=')[0]}",
        "weight": 1.0,
        "check": {"text": step_text.split("=")[0]},
      },
      {"criterion": f"final answer {f}", "weight": 3.0, "check": {"final": f}},
      {"criterion": "repeats the question", "weight": -1.0, "check": {"text": f"Add {a} and {b}"}},
    ]
  }
  return {
    "question": question,
    "answer": str(f),
    "solution": solution,
    "rubric": json.dumps(rubric),
    "parts": json.dumps({"a": a, "b": b, "s": s, "f": f, "step": step_text, "kind": kind, "c": c}),
  }


def response_variant(
  example: dict[str, Any],
  rng: random.Random,
  *,
  p_repeat: float = 0.3,
  p_sum: float = 0.6,
  p_step: float = 0.6,
  p_final: float = 0.7,
  p_slip: float = 0.3,
) -> str:
  """A demonstration response with each rubric part present independently at random.

  With probability `p_slip` the sum is miscomputed (one digit off) and the slip carries into
  the second step and the final answer, as a model's arithmetic errors do: such a response
  names numbers near, but not equal to, the rubric's (the judge must compare them).
  Independently, with probability `1 - p_final`, the final answer line has one digit off.
  """
  parts = json.loads(example["parts"])
  s = parts["s"] if rng.random() >= p_slip else _corrupt(parts["s"], rng)
  fn, template = _SECOND[parts["kind"]][1:]
  f = fn(s) if parts["kind"] == 0 else fn(s, parts["c"])
  pieces = []
  if rng.random() < p_repeat:
    pieces.append(example["question"])
  if rng.random() < p_sum:
    pieces.append(f"{parts['a']}+{parts['b']}={s}.")
  if rng.random() < p_step:
    pieces.append(template.format(s=s, c=parts["c"], f=f) + ".")
  final = f if rng.random() < p_final else _corrupt(f, rng)
  pieces.append(f"Answer: {final}")
  return " ".join(pieces)


def judge_example(example: dict[str, Any], rng: random.Random, **variant: float) -> dict[str, Any]:
  """A judge demonstration: `question` = the judge request, `solution` = the verdict word."""
  response = response_variant(example, rng, **variant)
  items = json.loads(example["rubric"])["items"]
  item = items[rng.randrange(len(items))]
  verdict = check_item(item["check"], response)
  request = JUDGE_TEMPLATE.format(
    question=example["question"], response=response, criterion=item["criterion"]
  )
  return {
    "question": request,
    "answer": TRUE_WORD if verdict else FALSE_WORD,
    "solution": TRUE_WORD if verdict else FALSE_WORD,
    "rubric": example["rubric"],
    "parts": example["parts"],
  }
