r"""SFT of a local Hugging Face checkpoint on GSM8K with its chat template.

  python -m experiments.sft --config=configs/sft_gsm8k.py \
      --config.model.hf_dir=/data/Qwen3-0.6B --config.manual_dir=/data/gsm8k
  python -m experiments.sft --config=configs/sft_gsm8k.py:tiny \
      --config.model.hf_dir=/tmp/tiny_qwen3                  # CI size, fixture data
  python -m experiments.sft --config=configs/sft_gsm8k.py:lora ...   # or :tiny_lora

Variants: "" (full fine-tuning), "tiny" (CI size), "lora" / "tiny_lora" (the same with LoRA
adapters on every projection, frozen bf16 base; `config.lora`, see
`reasoning_jax/train/lora_setup.py`).

Download the checkpoint yourself (`huggingface-cli download Qwen/Qwen3-0.6B --local-dir
/data/Qwen3-0.6B`) and GSM8K's train.jsonl / test.jsonl into `manual_dir`; nothing here
touches the network. Prompts are the checkpoint's chat template with the instruction below;
targets are GSM8K's worked solutions with the final `#### N` rewritten as `\boxed{N}`, which
is what the `boxed` verifier (reward "auto") extracts.
"""

import os

import ml_collections

FIXTURES = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "fixtures"
)


def model_source(hf_dir: str) -> ml_collections.ConfigDict:
  """`config.model`: a local HF folder (empty: the preset fields, trained from scratch)."""
  return ml_collections.ConfigDict(
    {
      "hf_dir": hf_dir,
      "tokenizer": "",  # "": the folder's tokenizer.json.
      "dtype": "",  # "": the checkpoint's (config.json `dtype` / `torch_dtype`).
      "param_dtype": "float32",  # Master weights for full fine-tuning.
      "remat": "",  # "": none; full | dots_saveable for every block, or "full,none,..." per block.
      "opt_state_dtype": "",  # "": Adam's moments in param_dtype; e.g. float32 for bf16.
      "eos_ids": (),  # (): generation_config.json's eos_token_id, else the tokenizer's.
    }
  )


def prompt_config() -> ml_collections.ConfigDict:
  """`config.prompt`: chat template, system prompt, instruction, answer format."""
  return ml_collections.ConfigDict(
    {
      "chat": True,
      "system_prompt": "",
      "instruction": "Please reason step by step, and put your final answer within \\boxed{}.",
      "enable_thinking": False,  # Qwen3: no <think> block (None: the template's default).
      "answer_format": "boxed",  # boxed | gsm8k | last_number (targets and reward "auto").
      "max_prompt_len": 256,  # Longer prompts are an error at launch, not truncated.
    }
  )


def lora_config(rank: int = 16, **changes) -> ml_collections.ConfigDict:
  """`config.lora`: adapters on every attention and MLP projection, frozen bf16 base."""
  c = ml_collections.ConfigDict(
    {
      "rank": rank,
      "alpha": 2.0 * rank,  # alpha / r = 2.
      "targets": r"layers\.\d+\.(mixer\.(q|k|v|o)_proj|ffn\.(gate|up|down))",
      "dropout": 0.05,
      "base_dtype": "bfloat16",  # The frozen base; adapters stay float32.
      "export_dir": "",  # Set to write the merged model (HF folder) at the end.
    }
  )
  c.update(changes)
  return c


VARIANTS = ("", "tiny", "lora", "tiny_lora")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/sft_gsm8k"
  c.seed = 0
  c.task = "gsm8k"
  c.task_config = ""
  c.task_overrides = {}
  c.data_dir = ""  # Empty: <workdir>/data.
  c.manual_dir = "/data/gsm8k"  # train.jsonl / test.jsonl.
  c.prompt_template = "{question}"  # The user turn (the instruction is appended).
  c.prompt = prompt_config()
  c.target_field = "solution"
  c.reward = "auto"  # From prompt.answer_format: boxed.
  c.seq_len = 768
  c.worker_count = 0
  c.model = model_source("/data/Qwen3-0.6B")
  # Used only when model.hf_dir is empty (a preset trained from scratch).
  c.preset = "qwen3-0.6b"
  c.model_overrides = {}
  c.batch_size = 32
  c.micro_batches = 4
  c.num_steps = 500
  c.learning_rate = 1e-5
  c.warmup_steps = 20
  c.weight_decay = 0.0
  c.grad_clip = 1.0
  c.chunk_size = 16384  # Vocabulary-projection chunk (151k vocabulary).
  c.mesh = {"data": 1, "fsdp": -1, "tensor": 1}
  c.log_every = 10
  c.eval_every = 100
  c.eval_examples = 256
  c.eval_max_new_tokens = 512
  c.eval_temperature = 0.0
  c.checkpoint_every = 100
  c.keep_checkpoints = 2
  c.plot = True
  c.lora = None  # Full fine-tuning; the ':lora' variants set lora_config().
  if variant in ("lora", "tiny_lora"):
    c.workdir += "_lora"
    c.lora = lora_config()
    c.learning_rate = 1e-4  # Adapters take a larger step than full fine-tuning.
  if variant in ("tiny", "tiny_lora"):
    c.workdir = "outputs/sft_gsm8k_tiny" + ("_lora" if c.lora else "")
    c.manual_dir = os.path.join(FIXTURES, "gsm8k")
    c.model = model_source("")  # Pass --config.model.hf_dir=<a tiny random checkpoint>.
    c.model.param_dtype = ""
    c.seq_len = 384
    c.batch_size, c.micro_batches, c.num_steps = 8, 1, 8
    c.learning_rate, c.warmup_steps = 3e-3, 0
    c.chunk_size = 0
    c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
    c.log_every, c.eval_every, c.eval_examples, c.eval_max_new_tokens = 1, 1000, 3, 16
    c.checkpoint_every, c.plot = 4, False
    if c.lora:
      c.lora = lora_config(rank=4, dropout=0.1, base_dtype="float32")
      c.learning_rate = 1e-2
  return c
