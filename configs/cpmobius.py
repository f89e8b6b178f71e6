"""Config for `python -m experiments.cpmobius`: coach-player self-play (CPMöbius) on arithmetic.

"CPMöbius: Iterative Coach-Player Reasoning for Data-Free Reinforcement Learning", Li et al.,
arXiv:2602.02979 (ICML 2026); spec rl.md section 8.

  python -m experiments.cpmobius                                      # 4 arms x 3 seeds
  python -m experiments.cpmobius --config=configs/cpmobius.py:quick   # tiny, for CI
  python -m experiments.cpmobius --config.arms="('coach',)" --config.selfplay.num_steps=40

The player is the main job's SFT warm start (configs/rl_arith.py: `outputs/rl_arith_warmstart`,
trained first when missing): a tiny byte-level model that adds 1-2 digit numbers. The coach is
a separate, smaller model warmed up once with SFT on generated problems of the arithmetic
grammar (1-3 digits, 2-3 addends; marked as generated in the warm-up dataset's provenance)
under the one instruction "Generate a valid math problem.". Validation (the environment's
feedback, greedy, never trained on) and held-out problems come from the same generator's test
split. Arms (`config.arms`): `coach` (CPMöbius), `generator` (the same player RL'd on a fixed
curriculum: the generator's problems, same pseudo-labels and filter), `no_coach_update`,
`no_filter`. The spec's defaults are kept where they do not set the CPU budget: m = 16
problems and n = 16 answers become 8 and 8; lr 1e-6 (for 1.5B-7B models) becomes 5e-5 (the main
job's RL rate) for both.

The player adds two numbers of 1-2 digits well (held-out avg@8 about 0.7 at the player's
sampling settings) and fails every problem with a 3-digit operand or three addends, yet it
answers those consistently: 75-80% of them pass the [0.2, 0.8] agreement filter with a wrong
plurality label (measured on the warm start, 48 problems per bucket). About a fifth of the
generator's problems (two addends of at most 2 digits) are learnable; the rest are poison for
pseudo-label RL. A coach that follows the validation signal should learn to propose the
former.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith, sft_arith  # noqa: E402

ARMS = {
  "coach": {},
  "generator": {"proposer": "generator"},
  "no_coach_update": {"update_coach": False},
  "no_filter": {"use_filter": False},
}


def selfplay_config() -> ml_collections.ConfigDict:
  """One self-play run (`reasoning_jax.rl.cpmobius.run_cpmobius`)."""
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/cpmobius/run"
  c.seed = 0
  c.num_steps = 30
  c.proposer = "coach"  # coach | generator (the fixed-curriculum baseline)
  c.update_coach = True
  c.use_filter = True
  c.filter_low, c.filter_high = 0.2, 0.8  # spec 8.1 step 3
  c.problems_per_step = 8  # m (spec: 16)
  c.samples_per_problem = 8  # n (spec: 16)
  c.proposals_per_round = 16  # candidates per coach sampling call
  c.max_proposal_rounds = 4  # re-proposal rounds per step before giving up on m
  c.max_empty_steps = 5  # consecutive steps with nothing in the band -> a clear error
  c.instruction = "Generate a valid math problem."  # the released code's user message
  c.player_reward_values = (1.0, 0.0)  # paper; the released code uses (1.0, -1.0)
  c.coach_reward = "success_rate_x_delta"  # | delta_only | mean_adv_x_delta (code variants)
  c.delta_scale = 1.0  # the released code multiplies Delta by 100
  c.player_temperature, c.player_top_p = 0.7, 0.9  # spec 8.1 step 2
  c.player_max_new_tokens = 48
  c.player_max_prompt_len = 48
  c.coach_temperature, c.coach_top_p = 0.7, 1.0  # spec 8.1 step 1
  c.coach_max_new_tokens = 32
  c.coach_max_prompt_len = 40
  c.player_learning_rate = 5e-5  # the main job's RL rate
  c.coach_learning_rate = 5e-5
  c.grad_clip = 1.0
  c.clip_eps = 0.2
  c.player_kl_coef = 0.001  # k3 to the initial player
  c.player_entropy_coef = -0.01  # verl's convention: a small entropy penalty
  # The coach's REINFORCE (paper); the released code adds KL 0.001 and an entropy bonus 0.01.
  c.coach_kl_coef = 0.0
  c.coach_entropy_coef = 0.0
  c.coach_aggregation = "token_mean"  # verl's; seq_mean_token_sum_norm + C=1 is sum log pi
  c.best_player_safeguard = True  # released code
  c.safeguard_after = 100
  c.safeguard_patience = 15
  c.validation_examples = 128
  c.heldout_examples = 256
  c.heldout_every = 5
  c.heldout_samples = 4  # avg@k at the player's sampling settings besides greedy (0: off)
  c.checkpoint_every = 1
  c.keep_checkpoints = 2
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  # The player: the main job's warm start (trained first when missing).
  c.player = ml_collections.ConfigDict()
  c.player.sft = rl_arith.get_config().sft
  c.player.warm_start = "sft"  # | "source" (config.player.model.hf_dir as it is)
  # The coach: a smaller model, SFT warm-up on generated problems.
  c.coach = ml_collections.ConfigDict()
  c.coach.warm_start = "sft"  # | "source": no warm-up (ablation / an HF folder as it is)
  c.coach.num_warmup_problems = 2000  # the paper: ~4K external problems, once
  c.coach.warmup_dir = ""  # "" = <workdir>/coach_warmup; share it across arms of one seed
  coach = sft_arith.sized(64, 2, 2, 1, num_steps=200, batch_size=64)
  coach.seq_len = 80
  coach.eval_examples = 8
  coach.eval_max_new_tokens = 32
  coach.reward = "math_exact"
  c.coach.sft = coach
  # The task generator: validation / held-out problems, the coach's warm-up, the curriculum.
  c.problems = ml_collections.ConfigDict()
  c.problems.task = "arithmetic"
  c.problems.task_config = "easy"
  c.problems.task_overrides = {
    "num_train": 4000,
    "num_test": 512,
    "ops": ("+",),
    "style": "compact",
    "min_digits": 1,
    "max_digits": 3,
    "max_operands": 3,
    "seed": 7,
  }
  return c


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "quick"):
    raise ValueError(f"unknown variant {variant!r}; choose '' or 'quick'")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/cpmobius"
  c.seeds = (0, 1, 2)
  c.arms = tuple(ARMS)
  c.arm_overrides = ARMS
  c.selfplay = selfplay_config()
  if variant == "quick":  # The pipeline end to end at toy size (CI); its numbers mean nothing.
    c.seeds = (0, 1)
    c.arms = ("coach", "generator")  # the two proposers; the ablations only flip flags
    s = c.selfplay
    s.num_steps = 2
    s.problems_per_step, s.samples_per_problem, s.proposals_per_round = 2, 4, 4
    s.max_proposal_rounds = 2
    s.filter_low, s.filter_high = 0.0, 1.0
    s.validation_examples, s.heldout_examples, s.heldout_every = 8, 8, 1
    s.heldout_samples = 2
    s.player_max_new_tokens, s.coach_max_new_tokens = 12, 16
    s.player.sft = sft_arith.sized(32, 1, 2, 1, num_steps=4, batch_size=8)
    s.player.sft.task_overrides = dict(s.player.sft.task_overrides, num_train=64, num_test=8)
    s.player.sft.eval_examples = 4
    s.player.sft.eval_max_new_tokens = 8
    s.coach.num_warmup_problems = 32
    s.coach.sft = sft_arith.sized(32, 1, 2, 1, num_steps=4, batch_size=8)
    s.coach.sft.seq_len = 80
    s.coach.sft.eval_examples = 2
    s.coach.sft.eval_max_new_tokens = 8
    s.problems.task_overrides = dict(s.problems.task_overrides, num_train=64, num_test=32)
  return c
