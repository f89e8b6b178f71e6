"""The main job: RL (DISPO by default) on synthetic arithmetic from an SFT warm start (CPU-sized).

  python -m experiments.rl_train                                   # DISPO, ~10 min on 2 cores
  python -m experiments.rl_train --config.loss=dapo                # grpo|dapo|drgrpo|cispo|dispo|arm|mrpo
  python -m experiments.rl_train --config.loss_overrides.eps_neg_high=2.0

The warm start is SFT (configs/sft_arith.py) on demonstrations with transcription errors: in
half of the training solutions one digit of the final `Answer:` line disagrees with the
(correct) worked steps (`sft.task_overrides.answer_noise`; held-out data is clean). SFT imitates
the errors, so the warm start's greedy answer is mostly right while its samples are often
wrong; RL with the exact-match verifier removes the imitated errors, which shows as held-out
sampled accuracy (avg@k at the rollout temperature, `eval/sampled_accuracy`) rising within the
CPU budget. On clean demonstrations (`answer_noise=0`) 40 DISPO steps left held-out accuracy
flat: RL then has to teach arithmetic itself, far more slowly than SFT does (notes in README).
The warm start is trained first when `sft.workdir` holds no checkpoint and reused afterwards;
a checkpoint trained under another `sft` config is refused (ConfigError naming the keys).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/rl_arith"
  c.seed = 0
  c.loss = "dispo"  # A recipe name from reasoning_jax.rl.trainer.RECIPES.
  c.loss_overrides = ml_collections.ConfigDict({})  # Fields of the loss config dataclass.
  c.advantage_overrides = ml_collections.ConfigDict({})  # Options of the advantage estimator.
  # Rollouts.
  c.group_size = 8
  c.prompts_per_step = 16
  c.max_new_tokens = 48
  c.temperature = 1.0
  c.top_p = 1.0
  c.top_k = 0
  c.dynamic_sampling = ml_collections.FieldReference(None, field_type=bool)  # None: recipe.
  c.max_dynamic_batches = 3
  c.tis_cap = 2.0  # Truncated IS correction of the sampler/trainer mismatch.
  # With one update per rollout (ppo_epochs * mini_batches == 1) take the old log-probs from
  # the update's own forward pass instead of a separate one after sampling (same params: the
  # ratio is exactly 1); more updates per rollout always recompute them.
  c.reuse_update_logp = True
  # Updates.
  c.num_steps = 40
  c.learning_rate = 5e-5
  c.warmup_steps = 0  # Linear learning-rate warm-up over this many RL steps.
  c.optimizer = "adamw"  # A name in reasoning_jax.rl.trainer.OPTIMIZERS (adamw | sgd).
  c.grad_clip = 1.0
  c.ppo_epochs = 1
  c.mini_batches = 1
  c.micro_batches = 1
  c.chunk_size = 0
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  # Logging, evaluation, checkpoints.
  c.log_every = 1
  c.log_rollouts = 4  # Sample rows (prompt, completion, reward) to rollouts.jsonl; 0: off.
  c.eval_every = 20
  c.eval_examples = 128
  c.eval_samples = 4  # avg@k / pass@k at eval_temperature besides greedy (0: greedy only).
  c.eval_temperature = ml_collections.FieldReference(None, field_type=float)  # None: rollouts'.
  c.checkpoint_every = 20
  c.keep_checkpoints = 2
  c.plot = True
  # The SFT warm start (trained first if its workdir has no checkpoint).
  c.sft = sft_arith.get_config()
  c.sft.workdir = "outputs/rl_arith_warmstart"
  c.sft.num_steps = 300
  c.sft.eval_every = 100
  # DESIGN CHOICE of this demo: half of the SFT demonstrations carry a wrong final answer.
  c.sft.task_overrides = dict(c.sft.task_overrides, answer_noise=0.5)
  return c
