"""The memory-layer reproductions added with the wave-2 methods: ROSA-Tuning.

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching" (Zheng et al.,
arXiv:2602.02499), `python -m experiments.rosa`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reasoning_jax.reproduce.registry import Reproduction, Verdict, register


def rosa_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """Window + ROSA against window-only and global attention on long-range copying.

  At the training length, the share of the window-to-global accuracy gap that the verdict
  arm (the released code's init) recovers: "reproduced" at >= 50% (the paper: "most of the
  gap"), "partly" at >= 15% or when another ROSA arm (e.g. the shared q/k init) reaches 50%,
  "not reproduced" below; "not measured" with fewer than 3 seeds or when the global model is
  not above the window model by 0.05 (the task then does not separate them).
  """
  v = payload["verdict"]
  seeds = len(payload["runs"])
  reason = v["text"] + f" ({seeds} seeds; paper, LongBench subset: global 59.21, window 29.41, "
  reason += "window + ROSA 57.14, i.e. 93% of the gap.)"
  if seeds < 3:
    return [Verdict("rosa", "not measured", reason + " Fewer than 3 seeds.")]
  if v["gap"] <= 0.05:
    return [Verdict("rosa", "not measured", reason)]
  main = v["recovered"][payload["verdict_arm"]]
  others = [r for a, r in v["recovered"].items() if a != payload["verdict_arm"]]
  if main >= 0.5:
    status = "reproduced"
  elif main >= 0.15 or any(r >= 0.5 for r in others):
    status = "partly"
  else:
    status = "not reproduced"
  return [Verdict("rosa", status, reason)]


def _run_rosa(config):
  from reasoning_jax.evaluate.rosa import run_rosa_experiment

  out = run_rosa_experiment(config)
  return {
    "verdict": out["verdict"],
    "summary": out["summary"],
    "runs": {str(s): r for s, r in out["runs"].items()},
    "verdict_arm": config.verdict_arm,
  }


register(
  Reproduction(
    name="rosa",
    title="ROSA-Tuning: window + suffix-automaton branch vs window-only and global attention",
    claim=(
      "A sliding-window model with a ROSA branch (host suffix-automaton retrieval, trained by "
      "the counterfactual backward) recovers most of the gap to global attention on "
      "long-context tasks (Qwen3-1.7B, window 2048: LongBench subset global 59.21, window "
      "29.41, window + ROSA 57.14; NIAH-single 32k 100 / 6.2 / 100; Zheng et al., "
      "arXiv:2602.02499)."
    ),
    methods=("rosa",),
    config="configs/rosa.py",
    variants={"quick": "quick", "full": ""},
    run=_run_rosa,
    command="python -m experiments.rosa",
    verdict=rosa_verdict,
    figures=("accuracy_vs_length.png", "perplexity_vs_length.png"),
    full_time="about 50 min on 2 CPU cores (measured 3008 s with other jobs on the cores)",
  )
)
