"""One process of the two-process SFT test (run by tests/train/test_exact_match.py).

Usage: python multihost_sft.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices; the params are sharded over fsdp across both processes.
`run_sft` trains 4 steps with evaluations; then the trained model is evaluated with its rows
split over the 4 devices and, for comparison, replicated (every device decodes every row).
Both processes prepare the data set in TMP_DIR/data (no pre-built copy).
"""

import json
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

import reasoning_jax.generate as generate_lib  # noqa: E402
from reasoning_jax import sharding as sharding_lib  # noqa: E402
from reasoning_jax.models.source import place_model  # noqa: E402
from reasoning_jax.train.exact_match import evaluate_exact_match  # noqa: E402
from reasoning_jax.train.sft import load_sft_params, run_sft  # noqa: E402
from reasoning_jax.train.sft_config import model_source  # noqa: E402
from reasoning_jax.train.task import prepare_task  # noqa: E402
from tests.train.test_sft import tiny_config  # noqa: E402

mesh_axes = {"data": 1, "fsdp": -1}
config = tiny_config(tmp / "run", tmp / "data", num_steps=4, eval_every=2, mesh=mesh_axes)
result = run_sft(config)

# The trained model, on the global mesh (rows split) and on this process alone (replicated).
model, _ = load_sft_params(config.workdir)
source = model_source(config)
task = prepare_task(config, source, workdir=str(tmp / "run"))
mesh = sharding_lib.make_mesh(mesh_axes)
real, outputs = generate_lib.generate, []


def spy(*args, **kwargs):
  out = real(*args, **kwargs)
  rows = out.tokens.shape[0]
  outputs.append((rows, out.tokens.sharding.shard_shape(out.tokens.shape)[0]))
  return out


common = dict(
  reward=task.reward,
  num_examples=7,  # 7 rows padded to 8 for the 4 devices.
  max_new_tokens=config.eval_max_new_tokens,
  prompt_template=task.prompt,
  eos_id=source.eos_id,
  max_prompt_len=task.max_prompt_len,
  add_bos=task.add_bos,
  truncate=task.truncate,
  keep_records=True,
)
local = evaluate_exact_match(model, source.tokenizer, task.test_source, **common)
generate_lib.generate = spy
sharded = evaluate_exact_match(
  place_model(model, mesh), source.tokenizer, task.test_source, mesh=mesh, **common
)
completions = [r["completions"] for r in sharded["records"]]
print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "step": result["step"],
      "eval_count": result["eval_count"],
      # 7 questions padded to 8 rows, 2 per device: split, not replicated.
      "rows_per_device": outputs,
      "same_records": completions == [r["completions"] for r in local["records"]]
      and sharded["count"] == 7,
      "completions": completions,
    }
  ),
  flush=True,
)
