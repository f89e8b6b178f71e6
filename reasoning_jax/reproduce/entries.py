"""The registered reproduction experiments and their verdicts.

Each verdict reads only the payload its experiment returned (also its `results.json`) and
compares means over seeds against the seed spread: a difference is "reproduced" when it has
the claim's sign and exceeds two standard errors (`_difference`), "partly" when it has the sign
but not the margin (or holds in some settings only), "not reproduced" otherwise. The quick
suite runs the same code at tiny sizes, so its verdicts check the plumbing, not the papers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reasoning_jax.reproduce.registry import Reproduction, Verdict, register

__all__ = ["difference", "status_of"]

# Recipe names of rl.trainer.RECIPES -> method pages (docs/methods/<page>.md).
_RECIPE_PAGES = {"drgrpo": "dr_grpo"}


def difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
  """mean(a) - mean(b) and its standard error over seeds (0 when either has one seed)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.size == 0 or b.size == 0:
    raise ValueError("difference needs at least one value on each side")
  se = 0.0
  if a.size > 1 and b.size > 1:
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
  return float(a.mean() - b.mean()), se


def status_of(diff: float, se: float, n: int) -> str:
  """ "reproduced" for diff > 2 se with >= 2 seeds, "partly" for diff > 0, else "not ..."."""
  if not np.isfinite(diff) or diff <= 0:
    return "not reproduced"
  return "reproduced" if n >= 2 and diff > 2 * se else "partly"


def _fmt(values: Sequence[float]) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.3f} ± {values.std():.3f}"


def _vs(a: Sequence[float], b: Sequence[float]) -> tuple[str, str]:
  """(status, "a vs b (diff ± se)") for the claim mean(a) > mean(b)."""
  diff, se = difference(a, b)
  text = f"{_fmt(a)} vs {_fmt(b)} (difference {diff:+.3f}, standard error {se:.3f})"
  return status_of(diff, se, min(len(a), len(b))), text


def _combine(statuses: Sequence[str]) -> str:
  """All "reproduced" -> reproduced; none better than "not" -> not; else partly."""
  if all(s == "reproduced" for s in statuses):
    return "reproduced"
  if all(s == "not reproduced" for s in statuses):
    return "not reproduced"
  return "partly"


# -- RL: the main job and the recipe comparison ---------------------------------------------


def _runs(payload, recipe: str, key: str) -> list[float]:
  return [float(r[key]) for r in payload["results"].get(recipe, [])]


def main_job_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """DISPO from the noisy-demonstration warm start: does held-out sampled accuracy rise?"""
  (recipe,) = payload["results"]
  final, start = _runs(payload, recipe, "final"), _runs(payload, recipe, "start")
  status, text = _vs(final, start)
  return [
    Verdict(
      _RECIPE_PAGES.get(recipe, recipe),
      status,
      f"held-out sampled accuracy after RL vs the SFT warm start: {text}, {len(final)} seeds.",
    )
  ]


def _against(payload, method, metric, better_than, claim) -> Verdict | None:
  """The claim "`method` above every recipe of `better_than` at `metric`" (None when `method`
  did not run; "not measured" when a comparator did not)."""
  present = set(payload["results"])
  if method not in present:
    return None
  page = _RECIPE_PAGES.get(method, method)
  missing = [b for b in better_than if b not in present]
  if missing:
    return Verdict(page, "not measured", f"{claim}: the run lacks {', '.join(missing)}.")
  parts = [
    (b, *_vs(_runs(payload, method, metric), _runs(payload, b, metric))) for b in better_than
  ]
  detail = "; ".join(f"vs {b}: {text}" for b, _, text in parts)
  return Verdict(page, _combine([s for _, s, _ in parts]), f"{claim} ({metric}): {detail}.")


def _rl_over_warm_start(payload) -> Verdict | None:
  """GRPO: RL raises held-out sampled accuracy over the warm start."""
  if "grpo" not in payload["results"]:
    return None
  status, text = _vs(_runs(payload, "grpo", "final"), _runs(payload, "grpo", "start"))
  return Verdict(
    "grpo", status, f"RL raises held-out sampled accuracy over the warm start: {text}."
  )


def compare_rl_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """Each recipe's paper claim, read as the direction of a difference at equal budget."""
  present = set(payload["results"])
  verdicts = [
    _rl_over_warm_start(payload),
    _against(payload, "dapo", "final", ("grpo",), "DAPO above GRPO"),
  ]
  if "drgrpo" in present and "grpo" in present:
    # Dr. GRPO: same accuracy, fewer tokens (the length bias removed).
    shorter, length = _vs(
      _runs(payload, "grpo", "response_length"), _runs(payload, "drgrpo", "response_length")
    )
    diff, se = difference(_runs(payload, "drgrpo", "final"), _runs(payload, "grpo", "final"))
    kept = diff > -2 * se if se > 0 else diff >= 0
    status = shorter if kept else ("partly" if shorter != "not reproduced" else "not reproduced")
    verdicts.append(
      Verdict(
        "dr_grpo",
        status,
        f"shorter responses than GRPO at no accuracy cost: length GRPO vs Dr. GRPO {length}; "
        f"accuracy difference {diff:+.3f} (standard error {se:.3f}).",
      )
    )
  verdicts += [
    _against(payload, "cispo", "final", ("dapo",), "CISPO above DAPO"),
    _against(payload, "dispo", "final", ("cispo", "dapo"), "DISPO above CISPO and DAPO"),
    _against(payload, "arm", "pass_at_k", ("grpo",), "ARM above GRPO at pass@k"),
    _against(payload, "mrpo", "final", ("grpo",), "MRPO above GRPO"),
  ]
  return [v for v in verdicts if v is not None]


def compare_rl_countdown_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """Countdown from a weak warm start: does RL move, and do the orderings of the DISPO paper's
  table (DISPO > CISPO > DAPO, DAPO > GRPO) hold? DISPO's claim here: above DAPO and GRPO."""
  verdicts = [
    _rl_over_warm_start(payload),
    _against(payload, "dapo", "final", ("grpo",), "DAPO above GRPO"),
    _against(payload, "cispo", "final", ("dapo",), "CISPO above DAPO"),
    _against(payload, "dispo", "final", ("dapo", "grpo"), "DISPO above DAPO and GRPO"),
  ]
  return [v for v in verdicts if v is not None]


# -- Memory layers --------------------------------------------------------------------------


def _spec(models: Mapping[str, Any], prefix: str) -> str | None:
  """The first model spec of a sweep equal to `prefix` or starting with `prefix@`."""
  for spec in models:
    if spec == prefix or spec.startswith(prefix + "@"):
      return spec
  return None


def _finals(runs) -> list[float]:
  return [float(r["final_accuracy"]) for r in runs]


def induction_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """One-layer momentum attention solves induction where one-layer softmax attention fails."""
  threshold = float(payload["config"]["threshold"])
  statuses, parts = [], []
  for task, models in payload["results"].items():
    momentum, softmax = _spec(models, "momentum_key_only@1"), _spec(models, "attention@1")
    if momentum is None or softmax is None:
      continue
    m, s = _finals(models[momentum]), _finals(models[softmax])
    if np.mean(m) >= threshold and np.mean(s) < threshold:
      statuses.append("reproduced")
    else:  # Short of the threshold: does momentum at least beat softmax at one layer?
      statuses.append(_vs(m, s)[0] == "reproduced" and "partly" or "not reproduced")
    parts.append(f"{task}: 1-layer momentum {_fmt(m)} vs 1-layer softmax {_fmt(s)}")
  if not statuses:
    return [Verdict("momentum_attention", "not measured", "the sweep lacks the two models.")]
  return [
    Verdict(
      "momentum_attention",
      _combine(statuses),
      f"1-layer momentum reaches {threshold:.0%} and 1-layer softmax does not: "
      + "; ".join(parts)
      + ".",
    )
  ]


def mqar_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """OVQ attention above GLA at equal state size, on every MQAR size."""
  statuses, parts, gla_parts = [], [], []
  for task, models in payload["results"].items():
    ovq = next((m for m in models if "ovq" in m), None)
    gla = next((m for m in models if "gla" in m), None)
    attention = _spec(models, "attention")
    if ovq is None or gla is None:
      continue
    status, text = _vs(_finals(models[ovq]), _finals(models[gla]))
    statuses.append(status)
    parts.append(f"{task}: {text}")
    if attention is not None:
      gla_parts.append(
        f"{task}: {_fmt(_finals(models[gla]))} (attention {_fmt(_finals(models[attention]))})"
      )
  if not statuses:
    return [Verdict("ovq", "not measured", "the sweep lacks an OVQ or a GLA model.")]
  verdicts = [
    Verdict(
      "ovq",
      _combine(statuses),
      "OVQ above GLA at equal state (recall accuracy, OVQ vs GLA): " + "; ".join(parts) + ".",
    )
  ]
  if gla_parts:
    verdicts.append(
      Verdict(
        "gla",
        "not measured",
        "GLA is the equal-state baseline here; its paper's claims (language-model quality "
        "and throughput at 340M-1.3B) need an accelerator. Recall: " + "; ".join(gla_parts) + ".",
      )
    )
  return verdicts


def mqar_hybrid_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """The paper's reading: OVQ above GLA at equal state, both behind sliding-window attention.

  The status is OVQ's recall against GLA's in the same position (`_vs`); softmax attention,
  the upper bound, and OVQ's share of its recall are quoted.
  """
  statuses, parts = [], []
  for task, models in payload["results"].items():
    ovq = _spec(models, "sliding_attention+ovq_eq")
    gla = _spec(models, "sliding_attention+gla")
    if ovq is None or gla is None:
      continue
    status, text = _vs(_finals(models[ovq]), _finals(models[gla]))
    statuses.append(status)
    attention = _spec(models, "attention")
    if attention is not None:
      bound = float(np.mean(_finals(models[attention])))
      share = float(np.mean(_finals(models[ovq]))) / bound if bound > 0 else float("nan")
      text += f"; softmax attention {_fmt(_finals(models[attention]))}, OVQ {share:.0%} of it"
    parts.append(f"{task}: {text}")
  if not statuses:
    return [Verdict("ovq", "not measured", "the sweep lacks the OVQ or the GLA hybrid.")]
  claim = (
    "OVQ above GLA at equal state, both behind sliding-window attention (recall, OVQ vs GLA): "
  )
  return [Verdict("ovq", _combine(statuses), claim + "; ".join(parts) + ".")]


# The attack must hurt the fine-tuned baseline before a lower success rate on the monotone
# model means anything (issue 21: "show that the attack is strong enough to hurt the baseline").
MIN_BASELINE_SUCCESS = 0.2


def monotone_attack_verdict(payload: Mapping[str, Any]) -> list[Verdict]:
  """The monotone FFN lowers HotFlip's success rate against the fine-tuned baseline.

  Reproduced when the baseline's mean success rate (the paper's HotFlip, any token) is at least
  `MIN_BASELINE_SUCCESS` and the monotone model's is lower by more than two standard errors
  over seeds; "not measured" when the attack does not hurt the baseline. The meaning-
  preserving HotFlip, UAT and the clean-loss cost are quoted alongside when present.
  """
  runs = payload["per_seed"]

  def values(model, *keys):
    out = []
    for r in runs:
      v = r[model]
      for k in keys:
        v = v[k]
      out.append(float(v))
    return out

  base, mono = values("baseline", "any", "success_rate"), values("monotone", "any", "success_rate")
  status, text = _vs(base, mono)
  parts = [f"HotFlip success rate, baseline vs monotone: {text} (paper: 0.63 vs 0.19)"]
  if np.mean(base) < MIN_BASELINE_SUCCESS:
    status = "not measured"
    parts.insert(
      0,
      f"the attack does not hurt the baseline (mean success {np.mean(base):.3f} < "
      f"{MIN_BASELINE_SUCCESS}), so the comparison says nothing",
    )
  if all("mean_degradation" in r["baseline"]["any"] for r in runs):
    _, deg = _vs(
      values("baseline", "any", "mean_degradation"), values("monotone", "any", "mean_degradation")
    )
    parts.append(f"HotFlip mean relative loss increase: {deg} (paper: 0.162 vs 0.052)")
  if all("meaning_preserving" in r["baseline"] for r in runs):
    _, mp = _vs(
      values("baseline", "meaning_preserving", "success_rate"),
      values("monotone", "meaning_preserving", "success_rate"),
    )
    parts.append(f"meaning-preserving HotFlip success: {mp}")
  if all("uat" in r["baseline"] for r in runs):
    _, uat = _vs(
      values("baseline", "uat", "mean_degradation"), values("monotone", "uat", "mean_degradation")
    )
    parts.append(f"UAT mean relative loss increase: {uat}")
  loss_b, loss_m = (
    np.mean(values("baseline", "clean_loss")),
    np.mean(values("monotone", "clean_loss")),
  )
  parts.append(
    f"clean loss {loss_b:.3f} vs {loss_m:.3f} nats/token ({(loss_m - loss_b) / loss_b:+.1%})"
  )
  return [Verdict("monotone_ffn", status, "; ".join(parts) + f"; {len(runs)} seeds.")]


# -- What each experiment runs (imported when it runs) ----------------------------------------


def _run_comparison(config):
  from reasoning_jax.rl.compare import run_comparison

  return run_comparison(config)


def _run_recall_experiment(config):
  from reasoning_jax.train.sweeps import run_recall_experiment

  return run_recall_experiment(config)


def _run_monotone_attack(config):
  from reasoning_jax.evaluate.monotone_attack import run

  return run(config)


# -- The registry entries -------------------------------------------------------------------

_RL_PATHS = {"workdir": "{dir}", "rl.sft.workdir": "{root}/rl_arith_warmstart"}

register(
  Reproduction(
    name="main_job",
    title="The main job: DISPO on synthetic arithmetic from a noisy SFT warm start",
    claim=(
      "RL with an exact-match verifier removes errors the warm start imitated: held-out "
      "sampled accuracy rises over the SFT warm start (this project's demonstration; DISPO, "
      "Karaman et al., arXiv:2602.00983)."
    ),
    methods=("dispo",),
    config="configs/compare_rl.py",
    variants={"quick": "main_job_quick", "full": "main_job"},
    run=_run_comparison,
    command="python -m experiments.compare_rl --config=configs/compare_rl.py:main_job",
    verdict=main_job_verdict,
    figures=("accuracy.png",),
    paths=_RL_PATHS,
    full_time="about 11 min on 2 CPU cores (measured 635 s: the SFT warm start + 3 seeds)",
  )
)

register(
  Reproduction(
    name="compare_rl",
    title="Seven RL recipes at equal budget",
    claim=(
      "Each paper's ordering at equal budget: DAPO > GRPO; Dr. GRPO shorter at equal "
      "accuracy; CISPO > DAPO; DISPO > CISPO > DAPO (AIME'24 61.0 / 55.4 / 50.2 on "
      "Qwen3-14B); ARM > GRPO at pass@k (+13.9 Pass@32); MRPO > GRPO."
    ),
    methods=("grpo", "dapo", "dr_grpo", "cispo", "dispo", "arm", "mrpo"),
    config="configs/compare_rl.py",
    variants={"quick": "quick", "full": ""},
    run=_run_comparison,
    command="python -m experiments.compare_rl",
    verdict=compare_rl_verdict,
    figures=("accuracy.png",),
    paths=_RL_PATHS,
    full_time="about 40-65 min on 2 CPU cores (measured 3828 s with the test suite running; 21 runs)",
  )
)

register(
  Reproduction(
    name="compare_rl_countdown",
    title="GRPO, DAPO, CISPO and DISPO on countdown from a weak warm start",
    claim=(
      "Where exploration matters, DISPO's per-regime bounds beat the PPO-clip recipes: DISPO "
      "above DAPO (and GRPO) at equal budget, as in DISPO's table (AIME'24 61.0 vs DAPO 50.2, "
      "CISPO 55.4 on Qwen3-14B; Karaman et al., arXiv:2602.00983)."
    ),
    methods=("grpo", "dapo", "cispo", "dispo"),
    config="configs/compare_rl.py",
    variants={"quick": "countdown_quick", "full": "countdown"},
    run=_run_comparison,
    command="python -m experiments.compare_rl --config=configs/compare_rl.py:countdown",
    verdict=compare_rl_countdown_verdict,
    figures=("curves.png",),
    paths={"workdir": "{dir}", "rl.sft.workdir": "{root}/rl_countdown_warmstart"},
    full_time=(
      "about 40 min on 2 CPU cores (36-47 min extrapolated from single runs: warm start 316 s, "
      "GRPO 117 s, DAPO 139 s, DISPO 124 s; 20 runs)"
    ),
  )
)

register(
  Reproduction(
    name="compare_rl_countdown_hf",
    title="The countdown comparison through the Hugging Face checkpoint path",
    claim=(
      "The DISPO ordering of the countdown comparison (DISPO above DAPO and GRPO; Karaman et "
      "al., arXiv:2602.00983), with the model handed to the trainers as a Hugging Face folder: "
      "its own byte-level BPE, ChatML chat template and generation_config.json (a folder "
      "built here: no weights are downloaded)."
    ),
    methods=("grpo", "dapo", "cispo", "dispo"),
    config="configs/compare_rl.py",
    variants={"quick": "countdown_hf_quick", "full": "countdown_hf"},
    run=_run_comparison,
    command="python -m experiments.compare_rl --config=configs/compare_rl.py:countdown_hf",
    verdict=compare_rl_countdown_verdict,
    figures=("curves.png",),
    paths={"workdir": "{dir}", "rl.sft.workdir": "{root}/rl_countdown_hf_warmstart"},
    full_time=(
      "about 36 min on 2 CPU cores (measured 2147 s with tests sharing the cores: folder and "
      "warm start 4 min, 20 runs of 1.5-2 min)"
    ),
  )
)

register(
  Reproduction(
    name="induction",
    title="Single-layer induction: momentum attention vs softmax attention",
    claim=(
      "One-layer momentum attention forms induction heads, which softmax attention needs two "
      "layers for (Maitra, arXiv:2602.04902)."
    ),
    methods=("momentum_attention",),
    config="configs/induction.py",
    variants={"quick": "quick", "full": ""},
    run=_run_recall_experiment,
    command="python -m experiments.induction",
    verdict=induction_verdict,
    figures=("accuracy.png",),
    full_time="about 5 min on 2 CPU cores (measured 276 s; 2 tasks x 4 models x 3 seeds)",
  )
)

register(
  Reproduction(
    name="mqar",
    title="MQAR recall: attention, GLA and OVQ at equal state",
    claim=(
      "OVQ attention recalls better than linear-attention baselines at a fraction of "
      "attention's memory (arXiv:2602.03922, 70M-480M models)."
    ),
    methods=("ovq", "gla"),
    config="configs/mqar.py",
    variants={"quick": "quick", "full": "cpu"},
    run=_run_recall_experiment,
    command="python -m experiments.mqar",
    verdict=mqar_verdict,
    figures=("accuracy.png",),
    full_time="about 30-55 min on 2 CPU cores (measured 3271 s with other jobs running; 27 runs)",
  )
)

register(
  Reproduction(
    name="mqar_hybrid",
    title="MQAR kv = 16 in the paper's hybrid: OVQ and GLA behind sliding-window attention",
    claim=(
      "OVQ attention, alternating with sliding-window attention as the paper builds it, "
      "recalls far better than linear attention at equal state and close to softmax attention "
      "(arXiv:2602.03922); here kv = 16 at T = 128, trained on Zoology's kv = 4 / 8 / 16 mixture."
    ),
    methods=("ovq",),
    config="configs/mqar.py",
    variants={"quick": "hybrid_quick", "full": "hybrid"},
    run=_run_recall_experiment,
    command="python -m experiments.mqar --config=configs/mqar.py:hybrid",
    verdict=mqar_hybrid_verdict,
    figures=("accuracy.png",),
    full_time="about 80 min on 2 CPU cores (measured 4808 s with the test suite sharing the cores)",
  )
)

register(
  Reproduction(
    name="monotone_attack",
    title="Monotone FFNs under HotFlip and UAT attacks",
    claim=(
      "Monotone FFNs cut HotFlip's success rate (63% for the fine-tuned baseline -> 19%) at a "
      "small quality cost (Cooper et al., arXiv:2602.02686); here on a synthetic summary task "
      "where the attack is shown to hurt the baseline, with UAT alongside."
    ),
    methods=("monotone_ffn",),
    config="configs/monotone_attack.py",
    variants={"quick": "quick", "full": ""},
    run=_run_monotone_attack,
    command="python -m experiments.monotone_attack",
    verdict=monotone_attack_verdict,
    figures=("attack.png",),
    full_time="about 9 min on 2 CPU cores (measured 519 s with other jobs running; 3 seeds)",
  )
)
