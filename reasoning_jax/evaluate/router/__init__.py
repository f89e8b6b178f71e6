"""The R2-Router experiment (`python -m experiments.router`): pool, table, evaluation.

* `pool`: arithmetic models of several sizes trained here (`train_or_load`) plus HF folders;
* `table`: `routing.build_bench` over held-out questions and the frozen query embeddings;
* `judge`: `config.judge`, a pool member or HF folder grading every cell beside the verifier,
  and its agreement with the verifier for results.md;
* `evaluation`: R2-Router, reactive, binary (RouteLLM), random and oracle routers on one
  split (pure functions of arrays);
* `experiment`: splits, OOD split, summary, verdict, results.md and plots.
"""

from reasoning_jax.evaluate.router.experiment import run_router_experiment

__all__ = ["run_router_experiment"]
