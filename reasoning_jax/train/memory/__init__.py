"""Memory planning: the memory policy (dtypes, remat, accumulation), the per-device estimate
from abstract shapes, the compiled step's memory analysis, and the plan that compares them."""

from reasoning_jax.train.memory.compiled import CompiledMemory, compiled_memory
from reasoning_jax.train.memory.estimate import (
  DEFAULT_LORA_TARGETS,
  MemoryEstimate,
  PlanSpec,
  activation_bytes,
  estimate,
  lora_shapes,
)
from reasoning_jax.train.memory.policy import (
  MemoryPolicy,
  make_optimizer,
  optimizer_state_dtype,
  with_model_state_dtype,
  with_state_dtype,
)
from reasoning_jax.train.memory.report import MemoryPlan, format_table, plan, plan_summary
