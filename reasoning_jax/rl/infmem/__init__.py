"""RL of InfMem's protocol: GRPO over whole episodes, and the experiment.

"InfMem: Learning System-2 Memory Control for Long-Context Agent", Wang et al., arXiv
2602.02704 (memory_attention.md 1.2). `trainer.py` runs episodes with the policy
(`agents.infmem`), rewards each episode (outcome + the early-stop, tool and memory terms),
takes GRPO advantages over the episodes of one question and trains every call of an episode
(its prompt masked, its own output trained) with that episode's advantage, through the RL
loss library's `ppo_clip` (`rl.policy`). `experiment.py` is `python -m experiments.infmem`.
"""

from reasoning_jax.rl.infmem.trainer import episode_batch, train_protocol

__all__ = ["episode_batch", "train_protocol"]
