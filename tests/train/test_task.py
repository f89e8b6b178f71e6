"""The task side of the trainers (reasoning_jax/train/task.py) on MATH from a tiny HF folder:
what SFT trains on, the answer rollouts are scored against, and bad files."""

import json
import os
import re
import shutil

import numpy as np
import pytest

from reasoning_jax.data import make_prompt_dataset, make_sft_dataset
from reasoning_jax.rewards import score_batch
from reasoning_jax.train.sft import run_sft
from reasoning_jax.train.sft_config import ConfigError, model_source
from reasoning_jax.train.task import prepare_task
from tests.helpers.hf_configs import sft_hf_config
from tests.helpers.tiny_hf import FIXTURES


def test_math_targets_answers_and_rewards_follow_the_trainers_path(tiny_hf_folder, tmp_path):
  config = sft_hf_config(tiny_hf_folder("qwen3"), tmp_path, "math")
  source = model_source(config)
  task = prepare_task(config, source, workdir=str(tmp_path))
  tok = source.tokenizer
  assert task.reward == "boxed"  # reward "auto" with prompt.answer_format "boxed".
  # SFT (the arguments run_sft passes): the trained tokens are the solution, ending with its
  # boxed answer, then the eos; the prompt is the chat template around problem + instruction.
  sft = make_sft_dataset(
    task.train_source,
    tok,
    seq_len=config.seq_len,
    batch_size=1,
    seed=0,
    shuffle=False,
    prompt_template=task.prompt,
    target_field=config.target_field,
    target_format=task.target_format,
    add_bos=task.add_bos,
  )
  batch = next(iter(sft))
  tokens, mask = batch["tokens"][0], batch["loss_mask"][0].astype(bool)
  with open(os.path.join(FIXTURES, "math", "train.jsonl")) as f:
    first = json.loads(f.readline())
  assert tok.decode(tokens[mask][:-1]) == first["solution"]
  assert first["solution"].endswith("\\boxed{\\frac{1}{2}}$.")
  assert tok.decode(tokens[mask][-1:], skip_special_tokens=False) == "<|im_end|>"
  prompt = tok.decode(tokens[~mask & (batch["segment_ids"][0] > 0)], skip_special_tokens=False)
  assert prompt.startswith(f"<|im_start|>user\n{first['problem']}\nPlease reason step by step")
  assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")

  # RL and evaluation: the prompt batches carry `answer`, scored by the task's verifier.
  def answers(split):
    ds = make_prompt_dataset(
      split, tok, batch_size=8, max_prompt_len=task.max_prompt_len, prompt_template=task.prompt
    )
    return [str(a) for a in next(iter(ds))["answer"]]

  train, test = answers(task.train_source), answers(task.test_source)
  assert train[0] == "\\frac{1}{2}"  # MATH layout: the last \boxed{} of the solution.
  assert test == ["15", "3", "(-\\infty, 2]"]  # MATH-500 layout: the `answer` field.
  completions = [
    "So the sum is $\\boxed{0.5}$.",
    "Thus $\\boxed{\\dfrac12}$.",
    "$\\frac{1}{4} + \\frac{1}{4} = \\boxed{\\frac{2}{4}}$",
    "First $\\boxed{3}$, then correcting: $\\boxed{\\tfrac{1}{2}}$.",
    "$\\boxed{\\frac{1}{3}}$",
    "The answer is 1/2.",  # No box: the boxed verifier gives 0.
    "$\\boxed{\\frac{1}{2}}$, or rather $\\boxed{2}$.",  # The last box counts.
  ]
  np.testing.assert_array_equal(
    score_batch(task.reward, completions, [train[0]] * len(completions)), [1, 1, 1, 1, 0, 0, 0]
  )
  np.testing.assert_array_equal(
    score_batch(
      task.reward, ["$x \\in \\boxed{(-\\infty,2]}$", "$\\boxed{(-\\infty, 2)}$"], [test[2]] * 2
    ),
    [1, 0],
  )


@pytest.mark.parametrize(
  "record, message",
  [
    ({"solution": "So $\\boxed{4}$.", "level": "Level 1"}, r"missing key\(s\) \['problem'\]"),
    ({"problem": "Find $x$.", "solution": "So $x = 4$."}, r"no complete \\boxed.*no 'answer'"),
  ],
)
def test_bad_math_file_fails_before_training_naming_file_and_line(
  tiny_hf_folder, tmp_path, record, message
):
  manual = tmp_path / "math"
  shutil.copytree(os.path.join(FIXTURES, "math"), manual)
  with open(manual / "train.jsonl", "a") as f:
    f.write(json.dumps(record) + "\n")
  config = sft_hf_config(tiny_hf_folder("qwen3"), tmp_path, "math", manual_dir=str(manual))
  pattern = rf"config.manual_dir=.*{re.escape(str(manual))}.*train\.jsonl:6: .*{message}"
  with pytest.raises(ConfigError, match=pattern):
    run_sft(config)
  assert not os.path.exists(os.path.join(config.workdir, "metrics.jsonl"))  # No step ran.
