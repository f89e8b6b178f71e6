"""The two players of CPMöbius and their data: the player's warm start, the coach's warm-up, the
task generator's problems (validation, held-out, the fixed-curriculum pool).

* **Player**: `config.player` is an RL-style warm-start config (`sft`, optional `model` and
  `warm_start`): the SFT model of `player.sft.workdir` (trained there first when missing) or,
  with `warm_start="source"`, the model source itself (a Hugging Face folder,
  `player.model.hf_dir`), with its own tokenizer, chat template and EOS ids.
* **Coach**: a separate parameter set (it may start from the same checkpoint). The paper warms
  the coach up once with SFT on ~4K problems written by others (PRIME's Eurus-2-RL-Data) —
  question writing only — before the data-free co-evolution. Here those problems are drawn
  from the task generator and **marked as such** in the warm-up dataset's provenance
  (`coach_warmup/data/provenance.json`): `instruction -> problem` pairs trained with the SFT
  trainer on the `rft` TFDS builder. `coach.warm_start="source"` skips the warm-up (the
  "no coach warm-up" ablation, or an HF folder used as it is).
* **Problems**: the task generator (`config.problems`) gives the validation set (the
  environment feedback, never trained on), a disjoint held-out set (only reported) and the
  pool of the fixed-curriculum baseline (`proposer="generator"`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
from absl import logging

from reasoning_jax import distributed
from reasoning_jax.data import build_dataset
from reasoning_jax.data.examples import decode_example
from reasoning_jax.rft.dataset import write_sft_dataset
from reasoning_jax.rl.cpmobius.config import CpmConfigError
from reasoning_jax.rl.recipes import sft_config
from reasoning_jax.rl.warm_start import warm_start
from reasoning_jax.train.sft_config import model_source
from reasoning_jax.train.task import prepare_task

__all__ = ["Models", "build_models"]


@dataclasses.dataclass
class Models:
  """What the loop needs of both models and the task."""

  player: Any
  player_tokenizer: Any
  player_prompt: Any
  player_add_bos: bool | None
  player_eos: Any
  reward: str
  validation: list[dict]
  heldout: list[dict]
  generator: list[str]
  coach: Any = None
  coach_tokenizer: Any = None
  coach_prompt: Any = None
  coach_add_bos: bool | None = None
  coach_eos: Any = None


def _problems(config, workdir: str):
  p = config.problems
  builder = build_dataset(
    p.task,
    os.path.join(workdir, "problems_data"),
    config=p.task_config or None,
    **dict(p.task_overrides),
  )
  test, train = builder.as_data_source("test"), builder.as_data_source("train")
  v, h = config.validation_examples, config.heldout_examples
  if v + h > len(test):
    raise CpmConfigError(
      f"config.validation_examples + config.heldout_examples = {v + h} exceed the "
      f"{len(test)} test problems of config.problems (raise problems.task_overrides.num_test)"
    )
  examples = [decode_example(test[i]) for i in range(v + h)]
  pool = [decode_example(train[i])["question"] for i in range(len(train))]
  return examples[:v], examples[v:], pool


def _coach_warmup_config(config, workdir: str, pool: list[str]) -> ml_collections.ConfigDict:
  """The coach's SFT config over a warm-up dataset of generated problems (written here)."""
  coach = config.coach
  count = min(coach.num_warmup_problems, len(pool))
  root = coach.get("warmup_dir") or os.path.join(workdir, "coach_warmup")
  folder = os.path.join(root, "data")
  # On several processes process 0 decides and `write_sft_dataset` writes from process 0
  # while the others wait (every process must take the same branch: it holds a barrier).
  if not distributed.broadcast_json(os.path.exists(os.path.join(folder, "provenance.json"))):
    records = [{"question": config.instruction, "answer": "", "solution": q} for q in pool[:count]]
    write_sft_dataset(
      folder,
      records,
      records[: min(8, count)],
      {
        "kind": "cpmobius coach warm-up",
        "note": "generated problems of the task grammar (config.problems), standing in for "
        "the paper's one-time SFT on ~4K PRIME Eurus-2-RL-Data problems; the only problems "
        "the coach sees besides its own",
        "problems": config.problems.to_dict(),
        "count": count,
      },
    )
  sft = ml_collections.ConfigDict(coach.sft.to_dict())
  sft.task, sft.task_config, sft.task_overrides = "rft", "", {}
  sft.manual_dir, sft.data_dir = folder, os.path.join(folder, "tfds")
  sft.target_field = "solution"
  if not sft.workdir:
    sft.workdir = os.path.join(root, "sft")
  return sft


def build_models(config, workdir: str, mesh) -> Models:
  """The player, the coach (None for `proposer="generator"`) and the task's problems."""
  try:
    p_sft = sft_config(config.player)
    p_source = model_source(p_sft)
    p_task = prepare_task(p_sft, p_source, workdir=os.path.abspath(p_sft.workdir))
  except ValueError as e:
    raise CpmConfigError(f"config.player: {e}") from None
  validation, heldout, pool = _problems(config, workdir)
  holder = ml_collections.ConfigDict(config.player.to_dict())
  holder.seed = config.seed
  player = warm_start(holder, p_source, mesh)
  models = Models(
    player=player,
    player_tokenizer=p_source.tokenizer,
    player_prompt=p_task.prompt,
    player_add_bos=p_task.add_bos,
    player_eos=p_source.eos_id,
    reward=p_task.reward,
    validation=validation,
    heldout=heldout,
    generator=pool,
  )
  if config.proposer != "coach":
    return models
  c_sft = _coach_warmup_config(config, workdir, pool)
  try:
    c_source = model_source(c_sft)
    c_task = prepare_task(c_sft, c_source, workdir=os.path.abspath(c_sft.workdir))
  except ValueError as e:
    raise CpmConfigError(f"config.coach: {e}") from None
  holder = ml_collections.ConfigDict(
    {"sft": c_sft, "seed": config.seed, "warm_start": config.coach.warm_start}
  )
  if config.coach.get("model") is not None:
    holder.model = config.coach.model
  logging.info("cpmobius coach: warm start %r", config.coach.warm_start)
  models.coach = warm_start(holder, c_source, mesh)
  models.coach_tokenizer = c_source.tokenizer
  models.coach_prompt = c_task.prompt
  models.coach_add_bos = c_task.add_bos
  models.coach_eos = c_source.eos_id
  return models
