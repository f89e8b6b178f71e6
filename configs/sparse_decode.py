r"""Config for `python -m experiments.sparse_decode`: accuracy vs KV budget of LycheeDecode,
Quest, DuoAttention and full attention on long-context passkey retrieval.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding", Lin
et al., arXiv:2602.04541; baselines Quest (Tang et al., arXiv:2406.10774) and DuoAttention
(Xiao et al., arXiv:2410.10819); `shared/methods/inference.md` sections 7 and 8.

  python -m experiments.sparse_decode                                   # CPU scale, 3 seeds
  python -m experiments.sparse_decode --config=configs/sparse_decode.py:quick
  python -m experiments.sparse_decode --config=configs/sparse_decode.py:accelerator
  python -m experiments.sparse_decode --config=configs/sparse_decode.py:pose   # PoSE, to 2048
  python -m experiments.sparse_decode --config.hf.dir=/data/Qwen3-0.6B  # text passkey, HF model

Task: multi-needle passkey (`reasoning_jax.data.passkey.multi_needle`): 4 needles
[KEY_MARK, key, v_1 .. v_4] at depths 5-95% of a filler haystack (one random 8-16-token sentence repeated), the prompt
ending in
[QUERY_MARK, key_q]; the answer is the queried needle's 4 values. The first value comes from
the dense prefill, the other 3 from sparse decode steps (what the methods change).

Per seed (`seeds`): LycheeDecode roles (HardKuma, `roles.target_density` of the heads outside
the forced layer 0) and DuoAttention roles (`roles.duo_fraction` of all heads) learned with
`sparse.train_roles` on the frozen model; fresh evaluation prompts; every method x budget x
context length; decode time per token (ratios to full, measured in the same run) at
`timing.lengths` on the first `timing.num_seeds` seeds.

DEVIATIONS (CPU scale, default variant): the paper evaluates 8B models at 4k-128k tokens with
a 4096-token budget in 64-token blocks, 128 sinks and 256 recent tokens. Here one 4-layer
attention-only RoPE model (width 64, 4 query / 2 KV heads, tiny-llama blocks without FFN,
trained here for 2500 steps of batch 16 on prompts of 64-256 tokens with the loss on every
token, every needle queried after the prompt (MQAR style) and a haystack that repeats one
random 8-16-token "sentence" per row (as the classic passkey repeats its filler text), keys,
values and filler distinct ids of one pool (probes: with an i.i.d. haystack and the loss on
the answer only the model stayed at chance after 800 steps; with disjoint filler and value
id ranges it learned to copy the filler, never the values); shared by the seeds) is evaluated at 256, 512 and 1024 tokens with budgets 64-512 in 16-token blocks, 16 sinks and 32
recent tokens (budget 64 = sinks + recent only: 4 blocks, none selected), Quest pages of 16
with 1 dense layer (the paper's 2 of 32 would make half of this model dense), DuoAttention's
streaming heads filling the same token budget ("budget"). Role learning: 100 steps of batch 4
at 256 tokens (paper: 2000-3000 steps at 1k-10k). 64 prompts per length and seed. On 2 CPU
cores the whole run takes about 25 minutes (training 11, each seed 4-6).
FINDING (first default run): the model solves the task at its training length (full attention
0.98 exact match at T = 256) but not beyond it (0.00 at 512 and 1024: no length
generalization), so only T = 256 is judged; training at 1024 tokens is the next step (about 4x
the training time).
"pose": the default model and sweep with one change to training, PoSE skip-wise position ids
(Zhu et al., arXiv:2309.10400; `data.skipwise_positions`, 2 chunks, skips reaching 2048 prompt
tokens) on the same 64-256-token rows, evaluated at 256-2048 tokens: a CPU-priced way to test
the budgets where most of the cache is dropped. FINDING (first run, 4808 s): full attention
0.859 / 0.391 / 0.219 / 0.036 exact match at 256 / 512 / 1024 / 2048 (partial length
generalization, 0.14 lost at 256); LycheeDecode within 0.021 of full everywhere; Quest above
full beyond 256 (+0.083 at 1024, budget 128), see docs/methods/lycheedecode.md.
"accelerator": the issue's 4k-32k (trained at 4k), budgets 512-4096 in 64-token blocks with
128 sinks + 256 recent (budget 256 is below sinks + recent: 7 blocks of 64 are needed), 2
Quest dense layers, a width-256 model of 8 layers trained 3000 steps, prompts prefilled in
chunks of 2048 tokens (`prefill_chunk`); decode timing at 8k and 32k. "quick": the pipeline
end to end in about a minute; its numbers say nothing.

`hf`: `--config.hf.dir=/path/to/folder` decodes the text passkey (`data.passkey.text_passkey`)
with the folder's model and tokenizer instead: roles learned on text passkey batches of
`hf.role_seq_len` tokens, then the same sweep at `hf.lengths` tokens (exact match = the
digits parsed from the completion).
"""

import ml_collections

_VARIANTS = ("", "quick", "accelerator", "pose")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown sparse_decode variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/sparse_decode" if not variant else f"outputs/sparse_decode_{variant}"
  c.seeds = (0, 1, 2)
  c.model_seed = 0
  c.task = ml_collections.ConfigDict(
    {
      "num_needles": 4,
      "value_len": 4,
      "vocab_size": 256,
      "depth_range": (0.05, 0.95),
      "filler_period": 16,
    }
  )
  c.model = ml_collections.ConfigDict(
    {
      "spec": "attention@4",
      "preset": "tiny-llama",
      "hidden_size": 64,
      "num_heads": 4,
      "ffn": "none",
      "overrides": {
        "num_kv_heads": 2,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
      },
    }
  )
  c.train = ml_collections.ConfigDict(
    {
      "seq_len": 256,
      "min_len": 64,
      "batch_size": 16,
      "num_steps": 2500,
      "loss_on": "all",
      "learning_rate": 3e-3,
      "warmup_steps": 50,
      "weight_decay": 0.0,
      "grad_clip": 1.0,
      "log_every": 100,
    }
  )
  c.eval_lens = (256, 512, 1024)
  c.num_test = 64
  c.eval_batch_size = 32
  # The sweep: token budgets (sinks + recent included) and the methods' settings.
  c.budgets = (64, 128, 256, 512)
  c.block_size = 16
  c.sink_tokens = 16
  c.recent_tokens = 32
  c.page_size = 16
  c.quest_dense_layers = 1
  c.duo_streaming = "budget"
  c.implementation = "xla"
  # Prompt tokens per prefill forward (`generate(prefill_chunk=)`; 0 = one forward). One
  # forward holds batch x heads x T x T float32 attention scores: 128 GiB per layer for 8
  # prompts of 32k on 4 heads; chunks of 2048 hold 1/16 of that. Same outputs either way.
  c.prefill_chunk = 0
  c.roles = ml_collections.ConfigDict(
    {
      "steps": 100,
      "lr": None,
      "target_density": 0.25,
      "ratio": 0.3,
      "duo_fraction": 0.375,
      "batch_size": 4,
      "seq_len": 256,
      "log_every": 50,
    }
  )
  c.timing = ml_collections.ConfigDict(
    {"lengths": (1024,), "num_seeds": 1, "rows": 1, "new_tokens": 16, "repeats": 2}
  )
  # A local Hugging Face folder decoded on the text passkey instead of the model trained here.
  c.hf = ml_collections.ConfigDict(
    {
      "dir": "",
      "dtype": "",
      "lengths": (1024, 2048),
      "num_test": 16,
      "new_tokens": 8,
      "digits": 5,
      "role_seq_len": 1024,
    }
  )
  c.notes = ""
  if variant == "quick":
    c.seeds = (0, 1)
    c.train.update(seq_len=128, min_len=64, batch_size=8, num_steps=20, log_every=10)
    c.model.hidden_size = 32
    c.eval_lens = (256,)
    c.num_test, c.eval_batch_size = 4, 4
    c.budgets = (64, 128)
    c.roles.update(steps=3, batch_size=2, seq_len=128, log_every=1)
    c.timing.update(lengths=(256,), new_tokens=4, repeats=1)
    c.hf.update(lengths=(192, 320), num_test=2, new_tokens=4, role_seq_len=160)
  elif variant == "accelerator":
    c.model.update(spec="attention@8", hidden_size=256)
    c.train.update(seq_len=4096, min_len=1024, num_steps=3000, batch_size=8)
    c.eval_lens = (4096, 8192, 16384, 32768)
    c.num_test, c.eval_batch_size = 64, 8
    c.budgets = (512, 1024, 2048, 4096)
    c.block_size, c.sink_tokens, c.recent_tokens = 64, 128, 256
    c.quest_dense_layers = 2
    c.prefill_chunk = 2048
    c.roles.update(steps=1000, batch_size=1, seq_len=4096)
    c.timing.update(lengths=(8192, 32768), rows=1, new_tokens=32)
    c.hf.update(lengths=(4096, 8192, 16384, 32768), role_seq_len=4096)
  elif variant == "pose":
    # The default model and sweep, trained with PoSE skip-wise position ids (arXiv:2309.10400)
    # reaching 2048 prompt tokens on the same 64-256-token rows, evaluated up to 2048.
    c.train.update(pose_target_len=2048, pose_chunks=2)
    c.eval_lens = (256, 512, 1024, 2048)
    c.eval_batch_size = 16
  return c
