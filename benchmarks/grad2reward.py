"""Grad2Reward's dense rewards: judge cost per rollout token, batched vs looped over items.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md section 6. `reasoning_jax.credit.Grad2Reward` scores a
rollout batch in two phases: one judge forward per (response, rubric item) pair for the
verdicts (all a sparse rubric reward needs), then one forward + input-only backward per
*satisfied* pair for the token attributions (what the dense rewards add).

All figures come from one run, on one rollout batch:

  * rollout: `generate` of `--batch` prompts x `--group` completions of exactly `--new-tokens`
    tokens (no EOS stop, so every row has the same work), temperature 1; seconds and seconds
    per generated token;
  * sparse judge (`dense=False`): the verdict forwards over every (row, item) pair;
  * dense judge, batched (`pair_chunk=--pair-chunk` pairs per judge call): verdicts +
    attribution; the dense / sparse ratio and both judge costs / rollout cost (the same ratio
    per rollout token);
  * dense judge, looped (`batched=False`: one pair per judge call, the baseline): the same pairs
    and the same satisfied set, so the same real work; looped / batched attribution seconds.

A random judge's verdicts are arbitrary, so the satisfied set is forced: the judge's verdict
forwards run as usual, but their margins are replaced by a seeded draw in which exactly
round(`--satisfied` x pairs) pairs are True (the same pairs in every mode and repeat). Cost does
not depend on what the weights say, so random weights are fine; `--hf-dir` loads a Hugging
Face folder and its tokenizer instead of the preset (default `tiny-qwen3` at the rubric task's
size, hidden 128, 4 layers, byte tokenizer). Prompts and rubrics (4 items each) are the rubric
task's (`reasoning_jax.data.rubric_task`), judged in its format (`judge_template()`, verdict
words Y/N).

Every timed call is warmed up first (compile excluded) and the median of `--repeats` runs is
reported. Token counts give FLOP-style context: judge tokens processed (real and padded to the
bucketed shapes the judge ran) against rollout tokens (prefill + generated), and a rough
forward-token equivalent (an input-only backward costs about one forward: the parameter
gradients are never built). No asserts: figures only; a JSON line of results comes last
(`--out` also writes it to a file).

  python benchmarks/grad2reward.py                       # CPU-sized defaults
  python benchmarks/grad2reward.py --batch 2 --group 2 --new-tokens 16 --repeats 1
  python benchmarks/grad2reward.py --hf-dir=/models/qwen3-0.6b --batch 8 --group 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._timing import median_seconds  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from reasoning_jax.credit import Grad2Reward, Grad2RewardConfig  # noqa: E402
from reasoning_jax.data import rubric_task  # noqa: E402
from reasoning_jax.generate import generate  # noqa: E402
from reasoning_jax.models import count_params  # noqa: E402
from reasoning_jax.models.source import build_model, resolve_source  # noqa: E402
from reasoning_jax.generate import assemble_sequences  # noqa: E402

# The rubric task's model (configs/sft_arith.py, used by configs/sft_rubric.py).
RUBRIC_MODEL = {
  "hidden_size": 128,
  "intermediate_size": 384,
  "num_layers": 4,
  "num_heads": 4,
  "num_kv_heads": 2,
  "head_dim": 32,
  "max_position_embeddings": 1024,
}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--hf-dir", default="", help="an HF folder (its weights and tokenizer)")
  p.add_argument("--preset", default="tiny-qwen3")
  p.add_argument(
    "--overrides", default=json.dumps(RUBRIC_MODEL), help="JSON preset overrides (vocab: byte)"
  )
  p.add_argument("--batch", type=int, default=4, help="prompts")
  p.add_argument("--group", type=int, default=4, help="completions per prompt")
  p.add_argument("--new-tokens", type=int, default=64)
  p.add_argument("--satisfied", type=float, default=0.5, help="fraction of pairs judged True")
  p.add_argument("--pair-chunk", type=int, default=64, help="pairs per batched judge call")
  p.add_argument("--length-bucket", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="", help="also write the JSON results here")
  return p.parse_args(argv)


def rubric_prompts(tokenizer, batch, seed):
  """`batch` rubric-task prompts (right-padded ids, lengths), questions and rubrics."""
  rng = random.Random(seed)
  examples = [rubric_task.rubric_example(rng) for _ in range(batch)]
  rows = [tokenizer.encode(f"{ex['question']}\n") for ex in examples]
  prompts = np.zeros((batch, max(len(r) for r in rows)), np.int32)
  for i, row in enumerate(rows):
    prompts[i, : len(row)] = row
  lengths = np.asarray([len(r) for r in rows], np.int32)
  return prompts, lengths, [ex["question"] for ex in examples], [ex["rubric"] for ex in examples]


def force_verdicts(g2r, fraction, seed):
  """Keeps the judge's verdict forwards but makes exactly round(fraction x P) pairs True.

  The satisfied set depends only on the number of pairs and `seed`: every mode and repeat
  attributes the same pairs.
  """
  run = g2r.verdicts

  def verdicts(pairs, *args):
    values, _ = run(pairs, *args)
    order = np.random.default_rng(seed).permutation(len(pairs))
    margin = -np.ones((len(pairs),), np.float32)
    margin[order[: round(fraction * len(pairs))]] = 1.0
    return values, margin

  g2r.verdicts = verdicts


def count_tokens(g2r):
  """Wraps the judge calls to count their `[M, L]` inputs: padded and real tokens per phase."""
  counts = {"verdict_padded": 0, "verdict_real": 0, "attribution_padded": 0, "attribution_real": 0}
  fns = g2r.fns
  for phase, name in (("verdict", "scores"), ("attribution", "attribute")):
    fn = getattr(fns, name)

    def counted(params, tokens, verdict_pos, fn=fn, phase=phase):
      counts[f"{phase}_padded"] += int(np.prod(tokens.shape))
      # A real pair's tokens end at its verdict position (> 0); padding pairs have 0.
      pos = np.asarray(verdict_pos)
      counts[f"{phase}_real"] += int(np.sum(np.where(pos > 0, pos + 1, 0)))
      return fn(params, tokens, verdict_pos)

    setattr(fns, name, counted)
  return counts


def judge_run(g2r, batch, repeats):
  """Median seconds of the whole call and of each phase (after a warm-up call)."""
  g2r(*batch)
  totals, phases = [], {}
  for _ in range(repeats):
    start = time.perf_counter()
    out = g2r(*batch)
    totals.append(time.perf_counter() - start)
    for key in ("seconds_verdicts", "seconds_attribution"):
      if key in out.stats:
        phases.setdefault(key, []).append(out.stats[key])
  result = {"seconds": statistics.median(totals)}
  result.update({k: statistics.median(v) for k, v in phases.items()})
  result["judge_pairs"] = int(out.stats["judge_pairs"])
  if "attributed_pairs" in out.stats:
    result["attributed_pairs"] = int(out.stats["attributed_pairs"])
  return result


def main(argv=None) -> dict:
  args = parse_args(argv)
  source = resolve_source(
    hf_dir=args.hf_dir,
    preset="" if args.hf_dir else args.preset,
    model_overrides=None if args.hf_dir else json.loads(args.overrides),
    flag="--hf-dir/--preset",
  )
  model, tokenizer = build_model(source, seed=args.seed), source.tokenizer
  eos_id = source.eos_ids[0] if source.eos_ids else None
  n_rows = args.batch * args.group
  prompts, lengths, questions, rubrics = rubric_prompts(tokenizer, args.batch, args.seed)
  prompts = np.repeat(prompts, args.group, axis=0)
  lengths = np.repeat(lengths, args.group)
  questions = [q for q in questions for _ in range(args.group)]
  rubrics = [r for r in rubrics for _ in range(args.group)]
  print(
    f"{jax.devices()[0].device_kind}: {'HF ' + args.hf_dir if args.hf_dir else args.preset} "
    f"({count_params(model) / 1e6:.2f}M params, {model.config.num_layers} layers, hidden "
    f"{model.config.hidden_size}); {args.batch} prompts x {args.group} completions x "
    f"{args.new_tokens} new tokens; satisfied fraction {args.satisfied}"
  )

  # Rollout: every row generates exactly new_tokens tokens (no EOS stop).
  key = jax.random.key(args.seed)
  sample = dict(max_new_tokens=args.new_tokens, temperature=1.0, key=key)
  p_ids, p_len = jnp.asarray(prompts), jnp.asarray(lengths)
  rollout_s = median_seconds(
    lambda: generate(model, p_ids, p_len, **sample).tokens, repeats=args.repeats
  )
  out = jax.device_get(generate(model, p_ids, p_len, **sample))
  tokens, mask = assemble_sequences(
    prompts, lengths, np.asarray(out.tokens), np.asarray(out.lengths)
  )
  generated = int(np.asarray(out.lengths).sum())
  prefill = int(lengths.sum())
  print(
    f"rollout: {rollout_s:.3f} s for {generated} generated tokens "
    f"({rollout_s / generated * 1e3:.3f} ms/token; prefill {prefill} tokens)"
  )

  common = dict(
    template=rubric_task.judge_template(),
    true_word=rubric_task.TRUE_WORD,
    false_word=rubric_task.FALSE_WORD,
    length_bucket=args.length_bucket,
    pair_chunk=args.pair_chunk,
    pair_bucket=min(8, args.pair_chunk),
  )
  modes = {
    "sparse": Grad2RewardConfig(dense=False, **common),
    "dense_batched": Grad2RewardConfig(dense=True, **common),
    "dense_looped": Grad2RewardConfig(dense=True, batched=False, **common),
  }
  batch = (tokens, mask, questions, rubrics)
  results: dict = {
    "device": jax.devices()[0].device_kind,
    "model": args.hf_dir or args.preset,
    "params": count_params(model),
    "rows": n_rows,
    "rollout": {
      "seconds": rollout_s,
      "generated_tokens": generated,
      "prefill_tokens": prefill,
      "seconds_per_token": rollout_s / generated,
    },
  }
  for name, config in modes.items():
    g2r = Grad2Reward(model, tokenizer, config, eos_id=eos_id)
    force_verdicts(g2r, args.satisfied, args.seed)
    counts = count_tokens(g2r)
    row = judge_run(g2r, batch, args.repeats)
    calls = 1 + args.repeats  # Warm-up + timed calls, each counted by the wrapper.
    row.update({k: v // calls for k, v in counts.items() if v})
    row["seconds_per_rollout_token"] = row["seconds"] / generated
    row["judge_over_rollout"] = row["seconds"] / rollout_s
    results[name] = row
    parts = f"verdicts {row['seconds_verdicts']:.3f} s"
    if "seconds_attribution" in row:
      parts += f", attribution {row['seconds_attribution']:.3f} s"
    print(
      f"{name:>13}: {row['seconds']:.3f} s ({parts}); {row['judge_pairs']} pairs"
      + (f", {row['attributed_pairs']} attributed" if "attributed_pairs" in row else "")
      + f"; {row['seconds_per_rollout_token'] * 1e3:.3f} ms per rollout token = "
      f"{row['judge_over_rollout']:.2f} x rollout"
    )

  sparse, dense, looped = results["sparse"], results["dense_batched"], results["dense_looped"]
  ratios = {
    "dense_over_rollout": dense["judge_over_rollout"],
    "sparse_over_rollout": sparse["judge_over_rollout"],
    "dense_over_sparse": dense["seconds"] / sparse["seconds"],
    "looped_over_batched_attribution": looped["seconds_attribution"] / dense["seconds_attribution"],
    "looped_over_batched_verdicts": looped["seconds_verdicts"] / dense["seconds_verdicts"],
    "looped_over_batched_dense": looped["seconds"] / dense["seconds"],
    # Looped pads each pair to its own length bucket, batched to its chunk's longest pair.
    "looped_over_batched_attribution_per_padded_token": (
      looped["seconds_attribution"] / looped["attribution_padded"]
    )
    / (dense["seconds_attribution"] / dense["attribution_padded"]),
  }
  rollout_tokens = generated + prefill
  # Forward-token equivalents: a verdict token is one forward, an attributed token one
  # forward + one input-only backward (~ one more forward); the rollout's are one forward each.
  for name in ("sparse", "dense_batched", "dense_looped"):
    row = results[name]
    real = row.get("verdict_real", 0) + 2 * row.get("attribution_real", 0)
    padded = row.get("verdict_padded", 0) + 2 * row.get("attribution_padded", 0)
    ratios[f"{name}_forward_tokens_real_over_rollout"] = real / rollout_tokens
    ratios[f"{name}_forward_tokens_padded_over_rollout"] = padded / rollout_tokens
  results["ratios"] = ratios
  print(
    f"per rollout token: dense judge {ratios['dense_over_rollout']:.2f} x rollout, sparse "
    f"{ratios['sparse_over_rollout']:.2f} x; dense / sparse {ratios['dense_over_sparse']:.2f} x"
  )
  print(
    f"looped / batched: attribution {ratios['looped_over_batched_attribution']:.2f} x, "
    f"verdicts {ratios['looped_over_batched_verdicts']:.2f} x, dense total "
    f"{ratios['looped_over_batched_dense']:.2f} x"
  )
  print(
    f"judge tokens (real / padded batched / padded looped): verdicts {dense['verdict_real']} / "
    f"{dense['verdict_padded']} / {looped['verdict_padded']}, attribution "
    f"{dense.get('attribution_real', 0)} / {dense.get('attribution_padded', 0)} / "
    f"{looped.get('attribution_padded', 0)}; rollout {rollout_tokens} tokens ({prefill} prefill "
    f"+ {generated} generated)"
  )
  print(
    "forward-token equivalents / rollout tokens (attribution = 2 forwards): dense "
    f"{ratios['dense_batched_forward_tokens_real_over_rollout']:.2f} real, "
    f"{ratios['dense_batched_forward_tokens_padded_over_rollout']:.2f} padded batched, "
    f"{ratios['dense_looped_forward_tokens_padded_over_rollout']:.2f} padded looped; sparse "
    f"{ratios['sparse_forward_tokens_real_over_rollout']:.2f} real"
  )
  line = json.dumps(results)
  print(line)
  if args.out:
    with open(args.out, "w") as f:
      f.write(line + "\n")
  return results


if __name__ == "__main__":
  main()
