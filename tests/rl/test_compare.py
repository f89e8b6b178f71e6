"""The RL comparison's configs and reports: the countdown variants, the task they train on
(prompt, verifier, byte-token budgets), and the per-recipe diagnostics (entropy, clip
fractions) from hand-made runs. The runs themselves are covered end to end by the quick
reproduction suite (tests/test_reproduce.py)."""

from __future__ import annotations

import csv
import os
import pathlib
import random
import sys

import ml_collections
import numpy as np
import pytest

from reasoning_jax.data import synthetic
from reasoning_jax.rewards import score_batch
from reasoning_jax.rl import compare
from reasoning_jax.rl.recipes import RECIPES, validate_config
from reasoning_jax.train.sft_config import model_source

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from configs import compare_rl  # noqa: E402


@pytest.mark.parametrize(
  "variant", ["countdown", "countdown_quick", "countdown_hf", "countdown_hf_quick"]
)
def test_countdown_variants_load_and_validate(variant):
  c = compare_rl.get_config(variant)
  assert set(c.losses) <= set(RECIPES) and {"grpo", "dispo"} <= set(c.losses)
  if variant in ("countdown", "countdown_hf"):
    assert c.losses == ("grpo", "dapo", "cispo", "dispo") and c.seeds == (0, 1, 2, 3, 4)
  if "hf" in variant:  # The same budget and task; the model is a folder built from fresh_hf.
    byte = compare_rl.get_config(variant.replace("_hf", ""))
    for key in ("num_steps", "prompts_per_step", "group_size", "learning_rate", "max_new_tokens"):
      assert c.rl[key] == byte.rl[key], key
    assert c.rl.sft.num_steps == byte.rl.sft.num_steps
    assert c.fresh_hf.model_overrides == byte.rl.sft.model_overrides
    assert c.rl.model.hf_dir == "" and c.rl.sft.prompt.chat
  # Two epochs x two mini-batches per rollout: the ratio leaves 1, the clipping rules act.
  assert (c.rl.ppo_epochs, c.rl.mini_batches) == (2, 2)
  assert c.rl.sft.task == "countdown" and c.rl.sft.reward == "countdown"
  assert c.rl.sft.target_field == "answer"
  run = c.rl.copy_and_resolve_references()
  run.workdir, run.loss = "/tmp/unused", c.losses[0]
  run.mesh = {"data": 1, "fsdp": 1, "tensor": -1}  # No data split over the 8 test devices.
  validate_config(run)  # Keys, ranges, registry names, the nested SFT config.


def test_countdown_prompt_and_answer_fit_the_byte_budgets_and_verify():
  """The countdown config end to end on the text side: the prompt renders from the example's
  fields, the demonstration (the bare expression) passes the verifier, and prompt + answer +
  EOS fit `sft.seq_len` and answer + EOS fit `max_new_tokens` with the byte tokenizer."""
  c = compare_rl.get_config("countdown").rl
  tokenizer = model_source(c.sft).tokenizer
  options = {k: v for k, v in c.sft.task_overrides.items() if k not in ("num_train", "num_test")}
  rng = random.Random(0)
  examples = [synthetic.countdown_example(rng, **options) for _ in range(500)]
  prompts = [c.sft.prompt_template.format(**ex) for ex in examples]
  assert prompts[0].startswith(f"Make {examples[0]['target']} from [")
  answers = [ex["answer"] for ex in examples]
  fields = {
    "numbers": [ex["numbers"] for ex in examples],
    "target": [ex["target"] for ex in examples],
  }
  assert np.all(score_batch("countdown", answers, answers, **fields) == 1.0)
  # A wrong expression over the right numbers, and a well-formed one that reuses a number, fail.
  wrong = [f"{ex['numbers'][0]} + {ex['numbers'][0]}" for ex in examples[:50]]
  first = {k: v[:50] for k, v in fields.items()}
  assert np.mean(score_batch("countdown", wrong, wrong, **first)) < 0.2
  answer_tokens = max(len(tokenizer.encode(a, add_eos=True)) for a in answers)
  total = max(
    len(tokenizer.encode(p, add_bos=True)) + len(tokenizer.encode(a, add_eos=True))
    for p, a in zip(prompts, answers)
  )
  assert answer_tokens <= c.max_new_tokens and total <= c.sft.seq_len, (answer_tokens, total)


def _run(final, entropy, low, high, regimes=None, start=0.1):
  """A per-seed result as run_comparison stores it (curves as [step, value] pairs)."""
  diagnostics = {
    "entropy": [[s + 1, v] for s, v in enumerate(entropy)],
    "clip_frac_low": [[s + 1, v] for s, v in enumerate(low)],
    "clip_frac_high": [[s + 1, v] for s, v in enumerate(high)],
  }
  for name, values in (regimes or {}).items():
    diagnostics[f"dispo_{name}_clip_frac"] = [[s + 1, v] for s, v in enumerate(values)]
  return {
    "final": final,
    "start": start,
    "curve": [[0, start], [len(entropy), final]],
    "diagnostics": diagnostics,
  }


def _results():
  regimes = {"pos_high": [0.1, 0.3], "pos_low": [0.0, 0.2], "neg_high": [0, 0], "neg_low": [0, 0]}
  return {
    "grpo": [
      _run(0.2, [1.0, 0.8], [0.0, 0.02], [0.0, 0.04]),
      _run(0.4, [1.2, 1.0], [0.0, 0.04], [0.0, 0.08]),
    ],
    "dispo": [
      _run(0.5, [1.0, 1.0], [0.0, 0.1], [0.0, 0.2], regimes),
      _run(0.5, [2.0, 2.0], [0.0, 0.1], [0.0, 0.2], regimes),
    ],
  }


def test_diagnostics_table_by_hand():
  rl = ml_collections.ConfigDict({"eval_samples": 4, "temperature": 1.0})
  table = compare.diagnostics_table(_results(), rl).splitlines()
  assert "avg@4" in table[0] and "standard error" in table[0]
  assert "entropy (mean over steps)" in table[0] and "DISPO clipped, correct, r > 1" in table[0]
  grpo = [c.strip() for c in table[2].strip("|").split("|")]
  dispo = [c.strip() for c in table[3].strip("|").split("|")]
  # GRPO final 0.2 and 0.4: mean 0.3, std 0.1, standard error std(ddof=1)/sqrt(2) = 0.1.
  assert grpo[:3] == ["grpo", "0.300 ± 0.100", "0.100"]
  # Entropy: step means 0.9 and 1.1 -> 1.000 ± 0.100; clip low 0.01 and 0.02; high 0.02, 0.04.
  assert grpo[3] == "1.000 ± 0.100"
  assert grpo[5:7] == ["0.0150 ± 0.0050", "0.0300 ± 0.0100"]
  assert grpo[7:11] == ["—"] * 4  # GRPO's loss logs no DISPO regimes.
  # DISPO: equal finals (standard error 0); regimes pos_high (0.1 + 0.3) / 2 = 0.2, pos_low 0.1.
  assert dispo[1:3] == ["0.500 ± 0.000", "0.000"] and dispo[3] == "1.500 ± 0.500"
  assert dispo[7:9] == ["0.2000 ± 0.0000", "0.1000 ± 0.0000"] and dispo[-1] == "2"


def test_curves_csv_and_plots(tmp_path):
  results = _results()
  compare._write_curves(results, str(tmp_path / "curves.csv"))
  rows = list(csv.DictReader(pathlib.Path(tmp_path / "curves.csv").read_text().splitlines()))
  assert [(r["recipe"], int(r["step"])) for r in rows] == [
    ("grpo", 0),
    ("grpo", 1),
    ("grpo", 2),
    ("dispo", 0),
    ("dispo", 1),
    ("dispo", 2),
  ]
  step2 = rows[2]  # GRPO step 2: accuracy 0.2 / 0.4, entropy 0.8 / 1.0, clip high 0.04 / 0.08.
  assert float(step2["accuracy_mean"]) == pytest.approx(0.3)
  assert float(step2["entropy_mean"]) == pytest.approx(0.9)
  assert float(step2["entropy_std"]) == pytest.approx(0.1)
  assert float(step2["clip_frac_high_mean"]) == pytest.approx(0.06)
  assert step2["dispo_pos_high_clip_frac_mean"] == "" and rows[0]["entropy_mean"] == ""
  assert float(rows[5]["dispo_pos_high_clip_frac_mean"]) == pytest.approx(0.3)
  panels = compare._panels(results, "held-out accuracy", diagnostics=True)
  assert [p[0] for p in panels] == [
    "held-out accuracy",
    "policy entropy (nats/token)",
    "clipped below (token share)",
    "clipped above (token share)",
    "DISPO clipped (token share) per regime",
  ]
  assert [label for label, _, _ in panels[-1][1]][:2] == ["correct, r > 1", "correct, r < 1"]
  compare._plot(results, str(tmp_path / "curves.png"), panels)
  assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.parametrize("variant", ["countdown_hf_offpolicy", "countdown_hf_offpolicy_dispo_mask"])
def test_offpolicy_variants_change_only_the_reuse_and_share_the_folder(variant):
  """Eight updates per rollout instead of four; the folder and warm start of countdown_hf; the
  mask variant changes DISPO's band handling only."""
  c, base = compare_rl.get_config(variant), compare_rl.get_config("countdown_hf")
  assert (c.rl.ppo_epochs, c.rl.mini_batches) == (4, 2) and base.rl.ppo_epochs == 2
  assert c.fresh_hf.dir == os.path.join(base.workdir, "fresh_hf")
  assert c.rl.sft.workdir == base.rl.sft.workdir and c.workdir != base.workdir
  for key in ("num_steps", "prompts_per_step", "group_size", "learning_rate", "max_new_tokens"):
    assert c.rl[key] == base.rl[key], key
  if variant.endswith("mask"):
    assert c.losses == ("dispo",)
    assert c.rl.loss_overrides.to_dict() == {"out_of_band": "mask", "eps_neg_low": 0.2}
  run = c.rl.copy_and_resolve_references()
  run.workdir, run.loss = "/tmp/unused", c.losses[-1]
  run.mesh = {"data": 1, "fsdp": 1, "tensor": -1}
  validate_config(run)  # Includes the loss overrides against DISPO's config dataclass.
