"""The quantization experiment (`python -m experiments.quantize`): RTN vs GPTQ vs BPDQ."""

from reasoning_jax.evaluate.quantize.experiment import markdown, perplexity, run, summarize
from reasoning_jax.evaluate.quantize.settings import Setting, parse_setting, parse_settings
from reasoning_jax.evaluate.quantize.subject import Subject, load_subject

__all__ = [
  "Setting",
  "Subject",
  "load_subject",
  "markdown",
  "parse_setting",
  "parse_settings",
  "perplexity",
  "run",
  "summarize",
]
