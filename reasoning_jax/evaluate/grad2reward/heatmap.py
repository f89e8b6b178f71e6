"""Token rewards over responses: what Grad2Reward's self-judge credits, as data and a picture.

`token_reward_examples(rl_config, n)` samples `n` held-out prompts' responses from the warm
start of `rl_config` (the frozen self-judge of the run), judges them with `rl_config.judge` and
returns per token the text piece and its reward, with the item verdicts and the grader's
checks; `plot_heatmap` draws them as coloured text (red negative, green positive). Used by
`experiments.grad2reward` and `colab/token_credit.ipynb`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["judge_examples", "plot_heatmap", "token_reward_examples"]


def judge_examples(
  model,
  tokenizer,
  g2r,
  examples,
  *,
  max_new_tokens: int,
  seed: int = 0,
  temperature: float = 1.0,
  prompt_template: str = "{question}\n",
):
  """Samples one response per example from `model` and scores it with `g2r` (a Grad2Reward)."""
  from reasoning_jax.generate import assemble_sequences, generate
  from reasoning_jax.rewards import Rubric

  prompts = [prompt_template.format(**ex) for ex in examples]
  ids = [tokenizer.encode(p, add_bos=tokenizer.bos_id is not None) for p in prompts]
  width = max(len(i) for i in ids)
  padded = np.zeros((len(ids), width), np.int32)
  for row, i in enumerate(ids):
    padded[row, : len(i)] = i
  lengths = np.asarray([len(i) for i in ids], np.int32)
  out = jax.device_get(
    generate(
      model,
      jnp.asarray(padded),
      jnp.asarray(lengths),
      max_new_tokens=max_new_tokens,
      temperature=temperature,
      eos_id=tokenizer.eos_id,
      key=jax.random.key(seed),
    )
  )
  tokens, mask = assemble_sequences(
    padded, lengths, np.asarray(out.tokens), np.asarray(out.lengths)
  )
  rubrics = [ex["rubric"] for ex in examples]
  scored = g2r(tokens, mask, [ex["question"] for ex in examples], rubrics)
  rows = []
  for n, ex in enumerate(examples):
    cols = np.flatnonzero(mask[n] > 0)
    parsed = Rubric.parse(rubrics[n])
    text = tokenizer.decode(tokens[n, cols])
    checks = parsed.grade(text) if all(i.check is not None for i in parsed.items) else None
    rows.append(
      {
        "question": ex["question"],
        "response": text,
        "pieces": [tokenizer.decode([int(t)]) for t in tokens[n, cols]],
        "rewards": [float(r) for r in scored.token_rewards[n, cols]],
        "sparse_reward": float(scored.rewards[n]),
        "items": [i.criterion for i in parsed.items],
        "weights": [i.weight for i in parsed.items],
        "verdicts": [bool(v) for v in scored.verdicts[n, : len(parsed.items)]],
        "checks": checks,
      }
    )
  return rows


def token_reward_examples(rl_config, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
  """`judge_examples` for the warm start of an RL config with a judge section: the warm start
  judges its own samples (self-judging), attributions on (`dense=True`)."""
  from reasoning_jax.credit import Grad2Reward, Grad2RewardConfig
  from reasoning_jax.data.examples import decode_example
  from reasoning_jax.train.sft import load_sft_params
  from reasoning_jax.train.sft_config import model_source
  from reasoning_jax.train.task import prepare_task

  if n <= 0:
    return []
  model, sft = load_sft_params(rl_config.sft.workdir)
  source = model_source(sft)
  task = prepare_task(sft, source, workdir=os.path.abspath(sft.workdir), check=False)
  options = {k: v for k, v in rl_config.judge.to_dict().items() if k != "model"}
  g2r = Grad2Reward(
    model, source.tokenizer, Grad2RewardConfig(**options), eos_id=source.tokenizer.eos_id
  )
  examples = [decode_example(task.test_source[i]) for i in range(min(n, len(task.test_source)))]
  return judge_examples(
    model,
    source.tokenizer,
    g2r,
    examples,
    max_new_tokens=rl_config.max_new_tokens,
    seed=seed,
    prompt_template=sft.prompt_template,
  )


def plot_heatmap(workdir: str, payload: dict[str, Any], name: str = "token_rewards.png") -> str:
  """Coloured response text, one row per example, with its verdicts under it."""
  from matplotlib import cm, colormaps, colors
  from matplotlib.figure import Figure  # No pyplot: leaves the caller's backend alone.

  rows = payload.get("token_rewards") or []
  fig = Figure(figsize=(11, 0.4 + 1.0 * max(len(rows), 1)))
  ax = fig.subplots()
  ax.axis("off")
  peak = max([abs(r) for row in rows for r in row["rewards"]] + [1e-6])
  norm = colors.TwoSlopeNorm(vmin=-peak, vcenter=0.0, vmax=peak)
  cmap = colormaps["RdYlGn"]
  per_line = 64
  y = 1.0
  for row in rows:
    ax.text(
      0.0,
      y,
      f"Q: {row['question']}  (sparse reward {row['sparse_reward']:.2f})",
      fontsize=8,
      va="top",
      transform=ax.transAxes,
    )
    y -= 0.12 / max(len(rows), 1) * 2
    for start in range(0, len(row["pieces"]), per_line):
      x = 0.0
      for piece, reward in zip(
        row["pieces"][start : start + per_line], row["rewards"][start : start + per_line]
      ):
        shown = "".join(ch if ch.isprintable() else "·" for ch in piece.replace("\n", "⏎"))
        shown = shown or "·"
        ax.text(
          x,
          y,
          shown,
          fontsize=8,
          family="monospace",
          va="top",
          transform=ax.transAxes,
          bbox=dict(facecolor=cmap(norm(reward)), edgecolor="none", pad=0.5),
        )
        x += 0.0095 * max(len(shown), 1) + 0.004
      y -= 0.12 / max(len(rows), 1) * 2
    verdicts = ", ".join(
      f"{c} ({w:+g}): {'T' if v else 'F'}"
      for c, w, v in zip(row["items"], row["weights"], row["verdicts"])
    )
    ax.text(
      0.0, y, "judge: " + verdicts, fontsize=7, va="top", color="0.35", transform=ax.transAxes
    )
    y -= 0.16 / max(len(rows), 1) * 2
  fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.02, label="token reward")
  path = os.path.join(workdir, name)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  return path
