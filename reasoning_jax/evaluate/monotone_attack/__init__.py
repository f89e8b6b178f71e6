r"""The monotone-FFN attack experiment: monotone vs unconstrained FFNs under HotFlip and UAT.

"Monotonicity as an Architectural Bias for Robust Language Models" (Cooper, Nadali, Trivedi,
Velasquez; arXiv:2602.02686), spec `memory_attention.md` §5. `run(config)` is the whole
experiment (`experiments/monotone_attack.py` is its absl main, `configs/monotone_attack.py`
its config). Modules, by concept:

  * `task`: the frequency-summary task (`frequency_summary_task`): a long source whose
    reference summary lists its most frequent content tokens, with count gaps that vary per
    example (the attack is graded) and filler positions (meaning-preserving flips exist);
  * `hotflip`: HotFlip as in the paper (5 positions by gradient norm, candidate by g . e_c);
  * `uat`: universal adversarial triggers (coordinate search, restarts);
  * `stats`: bootstrap confidence intervals;
  * `models`: model configs, the forward from embeddings, the monotone conversion, the
    jitted evaluation and attack functions;
  * `experiment`: the protocol (`run`), the report and the plot.

Protocol (§5.2): a small decoder-only model learns the task;

  1. "pretrained": an unconstrained ReLU-FFN model trained on the task;
  2. baseline: the pretrained model fine-tuned further (warm-up 10% of steps);
  3. monotone: the pretrained model with every FFN converted, V = softplus^-1(|W| + 1e-4)
     (signs discarded, `MonotoneFFN.load_dense`), then recovery fine-tuned (warm-up 15%,
     no weight decay on V: `monotone_weight_decay_mask`);
  AdamW, weight decay 0.01, grad clip 1.0 for all; baseline and monotone get the same steps.

Attacks on held-out examples, each model:
  * HotFlip "any": the paper's attack, every source position and source token allowed;
    success = relative increase of the example's target loss > 10% (the paper's results-
    section definition; its setup's ROUGE-L variant is not used). Some of these flips
    change the reference summary (a topic token turned into its rival); the report also gives
    the success rate on the examples whose count margin is too large for the flips to do so.
  * HotFlip "meaning_preserving": only filler positions, only filler tokens: the reference
    summary stays correct, so any damage is non-robustness.
  * UAT: a trigger prepended to the source, learned on 80 examples, tested on 120; reported as
    the mean relative loss increase, next to that of a random trigger of the same length.
Bootstrap 95% intervals (1000 resamples) per model and seed; mean ± std over seeds.

Writes `<workdir>/results.md`, `<workdir>/results.json`, `<workdir>/attack.png` and
`<workdir>/CITATIONS.bib`. Reports what the runs show, whatever it shows.
"""

from reasoning_jax.evaluate.monotone_attack.hotflip import (
  candidate_scores,
  first_order_gains,
  hotflip,
)
from reasoning_jax.evaluate.monotone_attack.models import (
  attack_functions,
  convert_to_monotone,
  example_losses,
  forward_from_embeddings,
  model_config_for,
)
from reasoning_jax.evaluate.monotone_attack.experiment import (
  evaluate_model,
  run,
  run_seed,
  summary_tables,
  validate_config,
)
from reasoning_jax.evaluate.monotone_attack.stats import bootstrap_ci, mean_std
from reasoning_jax.evaluate.monotone_attack.task import (
  EOS,
  IGNORE,
  SEP,
  bayes_loss_floor,
  flips_to_tie,
  frequency_summary_task,
  task_vocab,
)
from reasoning_jax.evaluate.monotone_attack.uat import learn_trigger, prepend_trigger, shift_targets

__all__ = [
  "EOS",
  "IGNORE",
  "SEP",
  "attack_functions",
  "bayes_loss_floor",
  "bootstrap_ci",
  "candidate_scores",
  "convert_to_monotone",
  "evaluate_model",
  "example_losses",
  "first_order_gains",
  "flips_to_tie",
  "forward_from_embeddings",
  "frequency_summary_task",
  "hotflip",
  "learn_trigger",
  "mean_std",
  "model_config_for",
  "prepend_trigger",
  "run",
  "run_seed",
  "shift_targets",
  "summary_tables",
  "task_vocab",
  "validate_config",
]
