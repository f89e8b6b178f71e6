"""The experiment's data: multihop splits through the TFDS builder, oracle SFT trajectories.

Protocol SFT data is what the scripted controller (`agents.infmem.oracle`) does on train
documents: every call of its episodes becomes one SFT record, the rendered prompt (chat
template included) as `question` and the controller's output as `solution`, so the loss
falls on the model's own turn only. The records go through the `rft` builder (the SFT
trainer's data path for generated targets, `rft.dataset.write_sft_dataset`).
"""

from __future__ import annotations

import collections
import os
from typing import Any, Sequence

from reasoning_jax.agents.infmem import FunctionLLM, InfMemConfig, PromptSet, run_episodes
from reasoning_jax.agents.infmem.oracle import OracleController
from reasoning_jax.data import build_dataset, decode_example
from reasoning_jax.rewards import extract_qa_answer


def multihop_split(
  data_dir: str, doc_tokens: int, *, split: str, num: int, seed: int, num_other: int = 1
) -> list[dict[str, Any]]:
  """`num` examples of the `multihop` builder's `split` with `doc_tokens`-piece documents."""
  sizes = (
    {"train": num, "test": num_other} if split == "train" else {"test": num, "train": num_other}
  )
  builder = build_dataset(
    "multihop",
    data_dir,
    config="1k",
    doc_tokens=int(doc_tokens),
    num_train=sizes["train"],
    num_test=sizes["test"],
    seed=int(seed),
  )
  source = builder.as_data_source(split)
  return [decode_example(source[i]) for i in range(len(source))]


def oracle_records(
  examples: Sequence[dict[str, Any]],
  tokenizer: Any,
  config: InfMemConfig,
  prompt_set: PromptSet,
  *,
  top_k: int | None = None,
) -> tuple[list[dict[str, str]], dict[str, Any]]:
  """SFT records of the oracle's episodes (one per call) and their statistics."""
  llm = FunctionLLM(OracleController(config, top_k=top_k), tokenizer)
  episodes = run_episodes(
    llm,
    [e["question"] for e in examples],
    [e["document"] for e in examples],
    config,
    prompt_set=prompt_set,
  )
  records, kinds = [], collections.Counter()
  for ep in episodes:
    for call in ep.calls:
      target = call.completion.text
      answer = extract_qa_answer(target) if call.kind == "answer" else target
      records.append(
        {"question": call.prompt, "answer": answer or target, "solution": target, "kind": call.kind}
      )
      kinds[call.kind] += 1
  correct = sum(f" {e['answer']} ." in ep.output for e, ep in zip(examples, episodes))
  stats = {
    "episodes": len(episodes),
    "calls": dict(kinds),
    "oracle_accuracy": correct / max(1, len(episodes)),
    "max_prompt_tokens": max(len(tokenizer.encode(r["question"])) for r in records),
    "max_target_tokens": max(len(tokenizer.encode(r["solution"])) for r in records),
  }
  return records, stats


def write_protocol_sft(
  out_dir: str, train: Sequence[dict[str, str]], test: Sequence[dict[str, str]], provenance: dict
) -> str:
  """Writes the records as an `rft` SFT dataset folder (prepared under `out_dir/tfds`)."""
  from reasoning_jax import distributed
  from reasoning_jax.rft.dataset import write_sft_dataset

  # Process 0's answer on every process: write_sft_dataset holds a barrier all must reach.
  if distributed.broadcast_json(os.path.exists(os.path.join(out_dir, "provenance.json"))):
    return out_dir
  strip = lambda rs: [{k: r[k] for k in ("question", "answer", "solution")} for r in rs]  # noqa: E731
  return write_sft_dataset(out_dir, strip(train), strip(test), provenance)


def jsonable(value: Any) -> Any:
  """`value` as JSON reads it back (tuples become lists), for comparing with a saved file."""
  import json

  return json.loads(json.dumps(value, default=list))


def check_provenance(saved: dict[str, Any], wanted: dict[str, Any], folder: str) -> None:
  """ValueError when the SFT folder `folder` (its `provenance.json`, `saved`) was built
  under other settings than `wanted` (controller, reader flags, train documents): its
  records would silently be another dataset."""
  differ = [k for k in wanted if jsonable(saved.get(k)) != jsonable(wanted[k])]
  if differ:
    details = "; ".join(f"{k}: saved {saved.get(k)!r}, config {wanted[k]!r}" for k in differ)
    raise ValueError(
      f"the protocol SFT folder {folder!r} was built under other settings ({details}); "
      "delete it (it is rebuilt from the config) or point config.workdir elsewhere"
    )
