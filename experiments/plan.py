r"""Memory plan: `python -m experiments.plan --config=configs/plan.py:qwen3_8b_full`.

Thin absl main over `reasoning_jax.train.memory`: prints per-device parameter, gradient,
optimizer, activation and KV-cache bytes estimated from abstract shapes, the peak of the
compiled train step's `memory_analysis()` on abstract inputs (`--config.compile=False` skips
it), and whether the step fits `--config.device_memory_gib`. Nothing is allocated. On one
host the device count is forced to the mesh size (`--xla_force_host_platform_device_count`)
before JAX is imported.
"""

import json
import math
import os

from absl import app
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "plan.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Plan config file.")


def _force_host_devices(n: int) -> None:
  """Sets the host device count to `n` unless XLA_FLAGS already chooses one."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def model_config(config):
  """The planned `ModelConfig`: `config.hf_dir`'s config.json (only that file is read), else
  the preset; `config.model_overrides` on top."""
  from reasoning_jax.models import get_preset
  from reasoning_jax.models.hf import CheckpointError, load_hf_config

  overrides = dict(config.model_overrides)
  if not config.get("hf_dir"):
    return get_preset(config.preset, **overrides)
  try:
    model = load_hf_config(os.path.expanduser(config.hf_dir))
  except (FileNotFoundError, CheckpointError) as e:
    raise ValueError(f"config.hf_dir: {e}") from None
  return model.replace(**overrides) if overrides else model


def describe_model(config) -> str:
  """What is planned, for the printed header: the folder or the preset."""
  return config.hf_dir if config.get("hf_dir") else config.preset


def build_spec(config):
  """The PlanSpec and plan keyword arguments of `config` (errors name the field)."""
  from reasoning_jax.train.memory import MemoryPolicy, PlanSpec

  policy = MemoryPolicy(
    param_dtype=config.param_dtype,
    compute_dtype=config.compute_dtype,
    opt_state_dtype=config.opt_state_dtype,
    remat=config.remat,
    micro_batches=config.micro_batches,
  )
  spec = PlanSpec(
    model=model_config(config),
    policy=policy,
    mesh=dict(config.mesh),
    batch_size=config.batch_size,
    seq_len=config.seq_len,
    optimizer=config.optimizer,
    lora_rank=config.lora_rank,
    lora_targets=config.lora_targets,
    lora_dtype=config.lora_dtype,
    kv_batch=config.kv_batch,
    kv_max_len=config.kv_max_len,
    kv_dtype=config.kv_dtype,
    attention=config.attention,
    chunk_size=config.chunk_size or None,
  )
  return spec, {"compile": config.compile, "device_memory_gib": config.device_memory_gib or None}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  _force_host_devices(math.prod(int(v) for v in dict(config.mesh).values()))
  from reasoning_jax.train.memory import format_table, plan, plan_summary

  try:
    spec, kwargs = build_spec(config)
  except (TypeError, ValueError) as e:
    raise app.UsageError(f"config: {e}") from None
  result = plan(spec, **kwargs)
  print(
    f"{config.name}: {describe_model(config)}, mesh {dict(spec.mesh)}, batch {spec.batch_size} x "
    f"{spec.seq_len}, {spec.policy}, lora_rank={spec.lora_rank}"
  )
  print(format_table({config.name: result}))
  if config.output:
    with open(config.output, "w") as f:
      json.dump({config.name: plan_summary(result)}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
