"""InfMem: the PreThink -> Retrieve -> Write bounded-memory reader, and the MemAgent baseline.

"InfMem: Learning System-2 Memory Control for Long-Context Agent", Wang et al., arXiv
2602.02704 (memory_attention.md section 1). A controller around any decoder, not a layer:

* `config.py`: `InfMemConfig`, every flag with the released code's default;
  `InfMemConfig.memagent()` the passive reader;
* `chunking.py`: center truncation, recurrent chunks, retrieval units;
* `retrieval.py`: the in-document BM25 index (`bm25s`) with current-chunk exclusion,
  Jaccard de-duplication, a per-chunk cap and a candidate pool;
* `document.py`: a document tokenized, chunked and indexed once per episode;
* `prompts.py`: the PreThink / Write / Answer templates and chat rendering;
* `toolcall.py`: PreThink output -> STOP or a search, tolerant of malformed output;
* `episode.py`: one question's protocol as a state machine (`pending` call, `feed`);
* `llm.py`: `GenerateLLM` (any zoo model or HF folder through `generate`), `FunctionLLM`;
* `runner.py`: batched episodes in lock-step, input and context checks before any call;
* `reward.py`: the early-stop, tool and memory reward terms of the RL rollouts;
* `oracle.py`: the scripted controller that solves the generated multi-hop data.
"""

from reasoning_jax.agents.infmem.config import NO_MEMORY, InfMemConfig
from reasoning_jax.agents.infmem.document import Document, prepare_document
from reasoning_jax.agents.infmem.episode import Call, Completion, Episode
from reasoning_jax.agents.infmem.llm import ContextError, FunctionLLM, GenerateLLM
from reasoning_jax.agents.infmem.prompts import PromptSet
from reasoning_jax.agents.infmem.retrieval import DocumentIndex, bm25_terms
from reasoning_jax.agents.infmem.reward import (
  RewardWeights,
  early_stop_reward,
  episode_rewards,
  first_hit,
)
from reasoning_jax.agents.infmem.runner import call_budgets, check_fits, run_episodes
from reasoning_jax.agents.infmem.toolcall import format_tool_call, parse_prethink

__all__ = [
  "NO_MEMORY",
  "Call",
  "Completion",
  "ContextError",
  "Document",
  "DocumentIndex",
  "Episode",
  "FunctionLLM",
  "GenerateLLM",
  "InfMemConfig",
  "PromptSet",
  "RewardWeights",
  "bm25_terms",
  "call_budgets",
  "check_fits",
  "early_stop_reward",
  "episode_rewards",
  "first_hit",
  "format_tool_call",
  "parse_prethink",
  "prepare_document",
  "run_episodes",
]
