"""ROSA-Tuning's experiment: long-range copying with window, window + ROSA and global models."""

from reasoning_jax.evaluate.rosa.experiment import run_rosa_experiment

__all__ = ["run_rosa_experiment"]
