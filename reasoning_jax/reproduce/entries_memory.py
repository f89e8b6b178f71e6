"""The memory-layer reproductions added with the wave-2 methods: ROSA-Tuning and InfMem.

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
    full_time=(
      "about 45 min on 2 CPU cores (measured 3008 s with two other jobs on the cores, 2514 s "
      "with one)"
    ),
  )
)


# Below this mean accuracy at every judged length (2 of 16 questions), neither trained reader
# answers: the comparison is not judged.
MIN_READER_ACCURACY = 0.1


def infmem_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """The trained InfMem reader against the trained MemAgent reader at 32k tokens and beyond.

  The paper's claim has two parts: higher accuracy, and >= 3x fewer model calls (its 3.9x
  average). "reproduced" when the trained InfMem reader (SFT+GRPO where it ran on every seed,
  else SFT) is more accurate
  than MemAgent (SFT) at every long length measured and needs >= 3x fewer calls there;
  "partly" when one of the two holds; "not reproduced" otherwise; "not measured" with fewer
  than 3 seeds or no long length, and when neither trained reader reaches
  `MIN_READER_ACCURACY` at any long length: then the accuracy comparison says nothing, and
  fewer calls from a reader that does not answer are not the paper's efficiency. Only lengths
  that both readers were evaluated at on every seed are judged.
  """
  table, seeds = payload["table"], len(payload["seeds"])
  memagent = table.get("MemAgent (SFT)", {})
  every_seed = lambda cell: len(cell.get("accuracy", [])) >= seeds  # noqa: E731
  long, partial = [], []
  for label, cell in memagent.items():
    if label.endswith("M") or (label.endswith("k") and float(label[:-1]) >= 32):
      (long if every_seed(cell) else partial).append(label)
  # The GRPO arm when it ran on every seed at those lengths, else the SFT reader.
  grpo = table.get("InfMem (SFT+GRPO)", {})
  full = all(every_seed(grpo.get(label, {})) for label in long)
  best = "InfMem (SFT+GRPO)" if grpo and full else "InfMem (SFT)"
  if best not in table or "MemAgent (SFT)" not in table:
    return [Verdict("infmem", "not measured", f"no {best} / MemAgent (SFT) rows")]
  mean = lambda cell, key: sum(cell[key]) / len(cell[key])  # noqa: E731
  rows, better, fewer, answered = [], [], [], []
  for label in long:
    mem, inf = memagent[label], table[best].get(label, {})
    if not every_seed(inf):
      partial.append(label)
      continue
    a_mem, a_inf = mean(mem, "accuracy"), mean(inf, "accuracy")
    ratio = mean(mem, "calls_per_question") / max(1e-9, mean(inf, "calls_per_question"))
    better.append(a_inf > a_mem)
    fewer.append(ratio >= 3.0)
    answered.append(max(a_inf, a_mem) >= MIN_READER_ACCURACY)
    rows.append(f"{label}: {best} {a_inf:.3f} vs MemAgent {a_mem:.3f}, {ratio:.1f}x fewer calls")
  reason = "; ".join(rows) + (
    f" ({seeds} seeds{'' if not partial else '; not on every seed, not judged: '}"
    f"{', '.join(partial)}; paper: +10.2 / +11.8 / +8.2 points over MemAgent for Qwen3-1.7B / "
    "Qwen3-4B / Qwen2.5-7B at 3.9x lower inference time on average.)"
  )
  if seeds < 3 or not rows:
    return [Verdict("infmem", "not measured", reason + " Fewer than 3 seeds or no long length.")]
  if not any(answered):
    return [
      Verdict(
        "infmem",
        "not measured",
        f"Neither trained reader reaches accuracy {MIN_READER_ACCURACY} at a judged length, "
        "so the accuracy comparison says nothing, and fewer calls from a reader that does not "
        "answer are not the paper's efficiency. " + reason,
      )
    ]
  if all(better) and all(fewer):
    status = "reproduced"
  elif all(better) or all(fewer):
    status = "partly"
  else:
    status = "not reproduced"
  return [Verdict("infmem", status, reason)]


def _run_infmem(config):
  from reasoning_jax.rl.infmem.experiment import run

  out = run(config)
  return {"table": out["table"], "seeds": [s["seed"] for s in out["seeds"]]}


register(
  Reproduction(
    name="infmem",
    title="InfMem: PreThink-Retrieve-Write vs the MemAgent passive reader on long documents",
    claim=(
      "With the same backbone and RL recipe, InfMem's bounded-memory reader that plans BM25 "
      "retrieval inside the document and stops early beats MemAgent on ultra-long QA (32K-1M "
      "tokens) by +10.17 / +11.84 / +8.23 points (Qwen3-1.7B / Qwen3-4B / Qwen2.5-7B) at "
      "3.9x lower inference time on average, up to 5.1x (Wang et al., arXiv:2602.02704)."
    ),
    methods=("infmem",),
    config="configs/infmem.py",
    variants={"quick": "quick", "full": ""},
    run=_run_infmem,
    command="python -m experiments.infmem",
    verdict=infmem_verdict,
    figures=("accuracy_vs_length.png", "calls_vs_length.png", "rl_curves.png"),
    full_time="about 85 min on 2 CPU cores (measured: 6 SFT runs of 5-18 min, GRPO 6 min, "
    "evaluation 1-3 min per seed)",
  )
)
