"""Greedy generation with google-tunix's vanilla sampler from a local HF Qwen3 checkpoint.

Runs under a separate environment with `google-tunix` installed (it never imports
reasoning_jax). `benchmarks/generate_vs_tunix.py` starts it as a subprocess on the checkpoint
and prompts it wrote; on its own:

  /path/to/tunix-venv/bin/python benchmarks/tunix_generate.py --checkpoint DIR \
      [--prompts FILE.json] [--batch 8 --prompt-len 32 --new-tokens 128 --repeats 3]

Setup:
  * model: `tunix.models.qwen3.params.create_model_from_safe_tensors` (tunix's own safetensors
    loader) into `tunix.models.qwen3.model.Qwen3`, its `ModelConfig` filled from the folder's
    config.json (dtype from `--dtype`, default float32 for params and compute); no mesh
    (one device);
  * sampler: `tunix.generate.sampler.Sampler` with a KV cache of exactly
    prompt-len + new-tokens slots, greedy (no top_p, no beam), `echo=False`,
    `max_prompt_length=prompt-len`, `max_generation_steps=new-tokens`;
  * prompts: `[batch, prompt-len]` integer ids (from `--prompts`, a JSON list of lists, or
    random in [3, vocab) with `--seed`), passed as whitespace-separated integer text through a
    minimal tokenizer with no BOS. Its pad id (-1) and eos id (-2) lie outside the vocabulary:
    tunix masks every token-buffer slot equal to the pad id in attention, so a pad id inside
    the vocabulary would hide a generated token that happens to equal it, and an eos that is
    never produced makes every row run the full budget.

Notes on what tunix computes (tunix 0.1.7, read from its source):
  * `Qwen3` ignores `ModelConfig.rope_theta`: `Attention.block` calls `apply_rope` without it,
    which then uses its default 1e6. A checkpoint with another theta loads without error but
    decodes differently; this script reports `rope_theta_ignored` in its output (and warns).
  * prefill computes logits at every prompt position; each decode step attends over all cache
    slots under a mask and computes no log-probs (`return_logprobs=False`). The decode loop
    runs `new-tokens` forward passes (the last one's token is written out of bounds and
    dropped), one more than needed after the prefill's token.

Timing: one warm-up call (compilation) is excluded, then `--repeats` calls of the sampler
(or, with `--serve`, one call per "run" line read from stdin, so that a caller can interleave
them with its own calls) are timed end to end: tokenisation, cache allocation, prefill, decode
loop, device->host copy, detokenisation. prefill_s and decode_s time the two jitted functions
inside those calls (each blocked on). Prints one JSON line (the last line of stdout) with the
generated ids per row, per-call and median seconds, tokens/s (batch * new-tokens / total) and
the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def _version(name):
  try:
    from importlib.metadata import version

    return version(name)
  except Exception:  # pylint: disable=broad-except
    return "?"


def tunix_config(hf, qwen3, dtype):
  """A tunix `Qwen3` ModelConfig from a Hugging Face config.json dict."""
  params = hf.get("rope_parameters")
  theta = params.get("rope_theta") if isinstance(params, dict) else None
  theta = hf.get("rope_theta", 10000.0) if theta is None else theta
  return qwen3.ModelConfig(
    num_layers=hf["num_hidden_layers"],
    vocab_size=hf["vocab_size"],
    embed_dim=hf["hidden_size"],
    hidden_dim=hf["intermediate_size"],
    num_heads=hf["num_attention_heads"],
    head_dim=hf.get("head_dim", hf["hidden_size"] // hf["num_attention_heads"]),
    num_kv_heads=hf["num_key_value_heads"],
    rope_theta=theta,
    norm_eps=hf["rms_norm_eps"],
    use_tied_embedding=bool(hf.get("tie_word_embeddings", False)),
    dtype=dtype,
    param_dtype=dtype,
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", required=True, help="local HF Qwen3 safetensors folder")
  parser.add_argument("--prompts", default="", help="JSON file: list of lists of token ids")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--prompt-len", type=int, default=32)
  parser.add_argument("--new-tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument(
    "--serve",
    action="store_true",
    help="after the warm-up, time one call per 'run' line on stdin (JSON line each) until "
    "'quit'; then print the summary line",
  )
  args = parser.parse_args()

  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx
  from tunix.generate import sampler as sampler_lib
  from tunix.models.qwen3 import model as qwen3
  from tunix.models.qwen3 import params as qwen3_params

  pad_id, eos_id = -1, -2  # Outside [0, vocab): never generated (see the module docstring).

  from tunix_tokenizer import IntTokenizer  # benchmarks/ (the script's folder)

  with open(os.path.join(args.checkpoint, "config.json")) as f:
    hf = json.load(f)
  dtype = jnp.dtype(args.dtype)
  config = tunix_config(hf, qwen3, dtype)
  rope_theta_ignored = float(config.rope_theta) != 1e6
  if rope_theta_ignored:
    print(
      f"warning: tunix's Qwen3 ignores rope_theta={config.rope_theta} (uses 1e6)",
      file=sys.stderr,
    )
  t0 = time.perf_counter()
  model = qwen3_params.create_model_from_safe_tensors(args.checkpoint, config, dtype=dtype)
  jax.block_until_ready(nnx.state(model))
  load_s = time.perf_counter() - t0

  if args.prompts:
    with open(args.prompts) as f:
      prompts = np.asarray(json.load(f), dtype=np.int64)
  else:
    rng = np.random.default_rng(args.seed)
    prompts = rng.integers(3, config.vocab_size, (args.batch, args.prompt_len))
  batch, prompt_len = prompts.shape
  texts = [" ".join(map(str, row)) for row in prompts]

  sampler = sampler_lib.Sampler(
    model,
    IntTokenizer(eos_id=eos_id, pad_id=pad_id),
    sampler_lib.CacheConfig(
      cache_size=prompt_len + args.new_tokens,
      num_layers=config.num_layers,
      num_kv_heads=config.num_kv_heads,
      head_dim=config.head_dim,
    ),
  )
  phase = {"prefill": [], "decode": []}
  prefill_fn, decode_fn = sampler._compiled_prefill_fn, sampler._compiled_decode_fn

  def timed(name, fn):
    def wrapper(*a, **k):
      start = time.perf_counter()
      out = jax.block_until_ready(fn(*a, **k))
      phase[name].append(time.perf_counter() - start)
      return out

    return wrapper

  sampler._compiled_prefill_fn = timed("prefill", prefill_fn)
  sampler._compiled_decode_fn = timed("decode", decode_fn)

  def run():
    return sampler(
      texts,
      max_generation_steps=args.new_tokens,
      max_prompt_length=prompt_len,
      echo=False,
      temperature=0.0,
      eos_tokens=[eos_id],
    )

  start = time.perf_counter()
  out = run()  # Compiles prefill and decode.
  first_s = time.perf_counter() - start
  totals = []

  def timed_call():
    nonlocal out
    start = time.perf_counter()
    out = run()
    totals.append(time.perf_counter() - start)
    return {
      "total_s": totals[-1],
      "prefill_s": phase["prefill"][-1],
      "decode_s": phase["decode"][-1],
    }

  if args.serve:
    # One timed call per "run" line on stdin (one JSON line back each), until "quit" or EOF:
    # lets the caller interleave these calls with its own under the same machine load.
    print(json.dumps({"ready": True, "first_call_s": first_s}), flush=True)
    for line in sys.stdin:
      if line.strip() != "run":
        break
      print(json.dumps(timed_call()), flush=True)
  else:
    for _ in range(args.repeats):
      timed_call()
  tokens = [np.asarray(t).astype(int).tolist() for t in out.tokens]
  total = statistics.median(totals) if totals else float("nan")
  print(
    json.dumps(
      {
        "framework": f"tunix {_version('google-tunix')}",
        "jax": jax.__version__,
        "flax": _version("flax"),
        "backend": jax.default_backend(),
        "batch": batch,
        "prompt_len": prompt_len,
        "new_tokens": args.new_tokens,
        "repeats": len(totals),
        "tokens": tokens,
        "load_s": load_s,
        "first_call_s": first_s,
        "total_s_per_call": totals,
        "prefill_s_per_call": phase["prefill"][1:],
        "decode_s_per_call": phase["decode"][1:],
        "total_s": total,
        "prefill_s": statistics.median(phase["prefill"][1:]) if totals else float("nan"),
        "decode_s": statistics.median(phase["decode"][1:]) if totals else float("nan"),
        "tokens_per_s": batch * args.new_tokens / total,
        "rope_theta_ignored": rope_theta_ignored,
      }
    ),
    flush=True,
  )


if __name__ == "__main__":
  main()
