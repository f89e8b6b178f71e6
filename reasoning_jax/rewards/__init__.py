"""Rule-based rewards: answer extraction, exact answer checking and verifiers.

Model outputs are arbitrary strings, so everything here is total and safe: no
`eval`/`exec`, no computer-algebra parsing of model output, bounded work per
input. The building blocks are

* `extract`: final-answer extractors for `\\boxed{}` (MATH, arXiv:2103.03874),
  `####` (GSM8K, arXiv:2110.14168), `<answer>` tags and the last number;
* `numbers`: exact `Fraction` parsing of numeric answers and `answers_equal`;
* `countdown`: a whitelisted `ast` evaluator, checker and brute-force solver for
  the Countdown task used in TinyZero;
* `rubric`: rubrics `(criterion, weight[, check])`, the sparse rubric reward and the
  `rubric_rules` grader of rubric tasks (Grad2Reward, arXiv 2602.01791);
* `qa`: short-answer exact match after "the answer is" (HotpotQA-style, InfMem's reward);
* `verifiers`: reward functions `fn(completion, answer, **example_fields) ->
  float` registered by name in `REWARDS`, and `score_batch`.

Example:
  >>> from reasoning_jax import rewards
  >>> rewards.REWARDS.get("math_exact")(r"... \\boxed{\\frac{1}{2}}", "0.5")
  1.0
  >>> rewards.score_batch("countdown", ["<answer>(3 + 5) * 2</answer>"], None,
  ...                     numbers=[[2, 3, 5]], target=[16])
  array([1.], dtype=float32)
"""

from reasoning_jax.registry import REWARDS
from reasoning_jax.rewards.countdown import (
  check_countdown,
  evaluate_expression,
  expression_numbers,
  extract_countdown_expression,
  solve_countdown,
)
from reasoning_jax.rewards.extract import (
  ANSWER_FORMATS,
  extract_answer_tag,
  extract_boxed,
  extract_final_answer,
  extract_gsm8k_answer,
  extract_last_number,
)
from reasoning_jax.rewards.numbers import (
  answers_equal,
  normalize_answer,
  parse_number,
)
from reasoning_jax.rewards.qa import extract_qa_answer, normalize_qa, qa_exact_reward
from reasoning_jax.rewards.rubric import (
  Rubric,
  RubricError,
  RubricItem,
  rubric_arrays,
  rubric_rules_reward,
  sparse_rubric_reward,
  verdict_agreement,
)
from reasoning_jax.rewards.verifiers import (
  REWARD_FIELDS,
  RewardFn,
  boxed_reward,
  countdown_reward,
  countdown_strict_reward,
  format_tag_reward,
  gsm8k_reward,
  math_exact_reward,
  score_batch,
)

__all__ = [
  "REWARDS",
  "extract_qa_answer",
  "normalize_qa",
  "qa_exact_reward",
  "REWARD_FIELDS",
  "Rubric",
  "RubricError",
  "RubricItem",
  "rubric_arrays",
  "rubric_rules_reward",
  "sparse_rubric_reward",
  "ANSWER_FORMATS",
  "RewardFn",
  "answers_equal",
  "boxed_reward",
  "check_countdown",
  "countdown_reward",
  "countdown_strict_reward",
  "evaluate_expression",
  "expression_numbers",
  "extract_answer_tag",
  "extract_boxed",
  "extract_countdown_expression",
  "extract_final_answer",
  "extract_gsm8k_answer",
  "extract_last_number",
  "format_tag_reward",
  "gsm8k_reward",
  "math_exact_reward",
  "normalize_answer",
  "parse_number",
  "score_batch",
  "solve_countdown",
  "verdict_agreement",
]
