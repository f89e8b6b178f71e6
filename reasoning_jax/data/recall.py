"""Seeded in-memory generators for synthetic recall / induction tasks, plus a grain loader.

Three recipes (all numpy, deterministic from `seed`, no global RNG state):

* `mqar`: multi-query associative recall, the recipe of Zoology ("Zoology: Measuring and
  Improving Recall in Efficient Language Models", Arora et al. 2023, arXiv:2312.04927),
  `zoology/data/multiquery_ar.py`.
* `induction_head`: the induction-head task of H3 ("Hungry Hungry Hippos: Towards Language
  Modeling with State Space Models", Fu et al., arXiv:2212.14052), `generate_induction_head`
  of the H3/safari synthetics.
* `repeated_tokens`: a random sequence repeated twice ("In-context Learning and Induction
  Heads", Olsson et al. 2022, arXiv:2209.11895).

Every generator returns a `RecallData` of numpy arrays

  inputs     [N, T] int32  token ids
  targets    [N, T] int32  next-token targets, IGNORE (-100) where there is none
  eval_mask  [N, T] bool   positions scored by the task's accuracy metric

Convention (all tasks): `targets[n, t]` is what the model should predict *at* position t,
i.e. from `inputs[n, :t + 1]` (logits[:, t] against targets[:, t]; no further shift).

`make_recall_loader` batches a `RecallData` with grain (`MapDataset.source -> shuffle(seed)
-> repeat -> batch`), reshuffling every epoch.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import grain
import numpy as np

IGNORE = -100

__all__ = [
  "IGNORE",
  "RecallData",
  "mqar",
  "induction_head",
  "repeated_tokens",
  "make_recall_loader",
  "TASKS",
  "make_task",
]


@dataclasses.dataclass(frozen=True)
class RecallData:
  """A task's examples: `inputs`/`targets` `[N, T]` int32 and `eval_mask` `[N, T]` bool.

  Random access (`len`, `data[i]` -> dict of `[T]` arrays) makes it a grain source.
  """

  inputs: np.ndarray
  targets: np.ndarray
  eval_mask: np.ndarray

  def __post_init__(self):
    shape = self.inputs.shape
    for name in ("targets", "eval_mask"):
      if getattr(self, name).shape != shape:
        raise ValueError(
          f"{name} must have the shape of inputs {shape}, got {getattr(self, name).shape}"
        )

  def __len__(self) -> int:
    return int(self.inputs.shape[0])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {
      "inputs": self.inputs[index],
      "targets": self.targets[index],
      "eval_mask": self.eval_mask[index],
    }

  @property
  def seq_len(self) -> int:
    return int(self.inputs.shape[1])


def _check_int(name: str, value, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
  return int(value)


def _distinct_rows(rng: np.random.Generator, n: int, k: int, low: int, high: int) -> np.ndarray:
  """`[n, k]` ints from [low, high), distinct within a row, in uniformly random order.

  Rejection sampling (redraw rows with a repeat): every ordered k-tuple of distinct values is
  equally likely, as with Zoology's per-row `np.random.choice(..., replace=False)`.
  """
  out = rng.integers(low, high, size=(n, k))
  while True:
    srt = np.sort(out, axis=1)
    bad = np.nonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))[0]
    if bad.size == 0:
      return out
    out[bad] = rng.integers(low, high, size=(bad.size, k))


def mqar(
  num_examples: int,
  *,
  vocab_size: int = 8192,
  seq_len: int = 64,
  num_kv_pairs: int = 4,
  power_a: float = 0.01,
  random_non_queries: bool = True,
  seed: int = 0,
) -> RecallData:
  """Multi-query associative recall (Zoology, Arora et al. 2023, arXiv:2312.04927).

  `num_kv_pairs` may also be a sequence of counts: a mixture, as Zoology trains on several
  configurations at once (its train set concatenates kv = 4 ... 64 and shuffles them). The
  examples are split as evenly as possible over the counts (the first ones get the remainder),
  each part drawn by this function with its own seed from `seed`, and the rows shuffled.

  Layout of one example (T = `seq_len`, kv = `num_kv_pairs`):
    [k_1 v_1 k_2 v_2 ... k_kv v_kv | query region of T - 2 kv tokens]
  Keys are distinct ids from [1, V/2), values distinct ids from [V/2, V). Key i is placed once
  in the query region at offset 2 g_i, the gaps g_i drawn without replacement from {0, ...,
  space - 1} (space = (T - 2 kv) / 2) with probability proportional to a (g + 1)^(a - 1),
  a = `power_a` (0.01 strongly favours small gaps). `targets` hold v_i at the query position
  of k_i (next-token convention) and IGNORE elsewhere; with `random_non_queries` every other
  query-region token is uniform over [0, V) (as Zoology, which may coincide with a key).
  `eval_mask = targets != IGNORE` (Zoology's accuracy over labelled positions).

  Zoology's defaults: 100k train / 3k test examples, test seed = train seed + 10.

  Args:
    num_examples: N.
    vocab_size: V (Zoology default 8192); must exceed `seq_len`.
    seq_len: T, even.
    num_kv_pairs: kv, with 4 kv <= T; or a sequence of counts (a mixture, above).
    power_a: exponent a of the gap distribution (1.0: uniform gaps).
    random_non_queries: fill non-query positions with random tokens (else 0).
    seed: numpy Generator seed.

  Returns:
    RecallData with `[N, T]` arrays.
  """
  n = _check_int("num_examples", num_examples, 1)
  if isinstance(num_kv_pairs, (tuple, list, np.ndarray)):
    return _mqar_mixture(
      n,
      tuple(num_kv_pairs),
      vocab_size=vocab_size,
      seq_len=seq_len,
      power_a=power_a,
      random_non_queries=random_non_queries,
      seed=seed,
    )
  v = _check_int("vocab_size", vocab_size, 4)
  t = _check_int("seq_len", seq_len, 4)
  kv = _check_int("num_kv_pairs", num_kv_pairs, 1)
  if t % 2:
    raise ValueError(f"seq_len must be even, got {t}")
  if v <= t:
    raise ValueError(f"vocab_size must be > seq_len={t}, got {v}")
  if 4 * kv > t:
    raise ValueError(f"num_kv_pairs must satisfy 4 * num_kv_pairs <= seq_len={t}, got {kv}")
  if kv > v // 2 - 1:
    raise ValueError(f"num_kv_pairs={kv} exceeds the {v // 2 - 1} available keys (vocab_size={v})")
  if not power_a > 0:
    raise ValueError(f"power_a must be > 0, got {power_a!r}")
  rng = np.random.default_rng(seed)
  context = 2 * kv
  keys = _distinct_rows(rng, n, kv, 1, v // 2)
  values = _distinct_rows(rng, n, kv, v // 2, v)
  space = (t - context) // 2
  log_p = np.log(power_a) + (power_a - 1.0) * np.log(np.arange(1, space + 1, dtype=np.float64))
  # Sequential weighted sampling without replacement == Gumbel top-k (Plackett-Luce), in the
  # order drawn; chunked so [chunk, space] stays small.
  gaps = np.empty((n, kv), dtype=np.int64)
  for lo in range(0, n, 8192):
    hi = min(n, lo + 8192)
    scores = log_p[None, :] + rng.gumbel(size=(hi - lo, space))
    gaps[lo:hi] = np.argsort(-scores, axis=1, kind="stable")[:, :kv]
  inputs = np.zeros((n, t), dtype=np.int64)
  inputs[:, 0:context:2] = keys
  inputs[:, 1:context:2] = values
  query_pos = context + 2 * gaps
  np.put_along_axis(inputs, query_pos, keys, axis=1)
  targets = np.full((n, t), IGNORE, dtype=np.int64)
  np.put_along_axis(targets, query_pos, values, axis=1)
  if random_non_queries:
    filler = inputs == 0
    inputs[filler] = rng.integers(0, v, size=int(filler.sum()))
  return RecallData(inputs.astype(np.int32), targets.astype(np.int32), targets != IGNORE)


def _mqar_mixture(n: int, counts: tuple, *, seed: int, **kwargs) -> RecallData:
  """`mqar` over several kv counts (see its docstring): equal parts, rows shuffled."""
  if not counts:
    raise ValueError("num_kv_pairs must be an int or a non-empty sequence of ints, got ()")
  counts = tuple(_check_int("num_kv_pairs", kv, 1) for kv in counts)
  sizes = [n // len(counts) + (i < n % len(counts)) for i in range(len(counts))]
  seeds = np.random.SeedSequence(seed).spawn(len(counts) + 1)
  parts = [
    mqar(m, num_kv_pairs=kv, seed=int(ss.generate_state(1)[0]), **kwargs)
    for m, kv, ss in zip(sizes, counts, seeds)
    if m  # n < len(counts) leaves the last counts without examples.
  ]
  order = np.random.default_rng(seeds[-1]).permutation(n)
  return RecallData(
    *(
      np.concatenate([getattr(p, f) for p in parts])[order]
      for f in ("inputs", "targets", "eval_mask")
    )
  )


def induction_head(
  num_examples: int,
  *,
  vocab_size: int = 20,
  seq_len: int = 30,
  induction_len: int = 1,
  num_triggers: int = 1,
  unique: bool = True,
  seed: int = 0,
) -> RecallData:
  """The H3 induction-head task (Fu et al., arXiv:2212.14052; H3/safari recipe).

  `vocab_size` counts two special tokens: ids [0, V - 2) are ordinary tokens, `V - 2` is the
  copy prefix "=>" and `V - 1` the no-op "." (in the vocabulary, never generated here).
  A sequence is `seq_len` uniform ordinary tokens followed by "=>". With probability 0.5 one
  trigger is used, else `num_triggers`; trigger positions p are drawn from [0, seq_len - 1 -
  induction_len), sorted, and overlapping ones (gap <= induction_len) dropped. At each p,
  x[p] = "=>" and x[p+1 : p+1+induction_len] = the tokens that originally followed the first
  trigger; those tokens are appended at the end. With `unique` duplicate sequences are
  redrawn (H3 deduplicates its examples).

  The model sees the sequence minus its last token: T = seq_len + induction_len.
  `targets` are next-token targets at every position (H3 trains the LM loss on the whole
  sequence); `eval_mask` keeps the last `induction_len` positions (H3's test labels: the
  copied tokens, predicted from the final "=>").

  Returns:
    RecallData with `[N, seq_len + induction_len]` arrays.
  """
  n = _check_int("num_examples", num_examples, 1)
  v = _check_int("vocab_size", vocab_size, 4)
  t = _check_int("seq_len", seq_len, 2)
  length = _check_int("induction_len", induction_len, 1)
  triggers = _check_int("num_triggers", num_triggers, 1)
  if t - 1 - length < 1:
    raise ValueError(f"seq_len must be >= induction_len + 2 = {length + 2}, got {t}")
  ordinary = v - 2
  copy_prefix = v - 2
  if unique and ordinary ** min(t, 40) < 4 * n:
    raise ValueError(
      f"unique=True cannot produce num_examples={n} distinct sequences with "
      f"vocab_size={v}, seq_len={t}"
    )
  rng = np.random.default_rng(seed)
  out = np.empty((n, t + 1 + length), dtype=np.int64)
  seen: set[bytes] = set()
  i = 0
  while i < n:
    seq = np.empty((t + 1 + length,), dtype=np.int64)
    seq[:t] = rng.integers(0, ordinary, size=t)
    seq[t] = copy_prefix
    k = 1 if rng.uniform() < 0.5 else triggers
    pos = np.sort(rng.integers(0, t - 1 - length, size=k))
    kept = [int(pos[0])]
    for p in pos[1:]:
      if p - kept[-1] > length:
        kept.append(int(p))
    to_copy = seq[kept[0] + 1 : kept[0] + 1 + length].copy()
    for p in kept:
      seq[p] = copy_prefix
      seq[p + 1 : p + 1 + length] = to_copy
    seq[t + 1 :] = to_copy
    if unique:
      key = seq.tobytes()
      if key in seen:
        continue
      seen.add(key)
    out[i] = seq
    i += 1
  eval_mask = np.zeros((n, t + length), dtype=bool)
  eval_mask[:, -length:] = True
  return RecallData(out[:, :-1].astype(np.int32), out[:, 1:].astype(np.int32), eval_mask)


def repeated_tokens(
  num_examples: int,
  *,
  vocab_size: int = 64,
  half_len: int = 16,
  min_half_len: Optional[int] = None,
  seed: int = 0,
) -> RecallData:
  """Repeated random tokens (Olsson et al. 2022, arXiv:2209.11895).

  A sequence is [r_1 ... r_n, r_1 ... r_n] with r_i uniform over [0, V), n = `half_len`
  (T = 2n). `targets[t] = x[t + 1]` (IGNORE at the last position). `eval_mask` marks the
  second copy of r_1 ... r_{n-1} (0-indexed positions n ... 2n - 2), where an induction head
  predicts r_{i+1}: Olsson et al.'s positions n+1 ... 2n-1 (1-indexed).

  DESIGN CHOICE `min_half_len` (default None: n = `half_len` for every example, the spec's
  recipe). With a fixed n the answer always sits at relative offset -(n - 1), so a single
  RoPE attention layer can solve the task positionally, without an induction mechanism.
  Given `min_half_len`, each example draws n uniformly from [min_half_len, half_len]; the
  sequence [r, r] is followed by uniform random filler up to T = 2 * half_len (filler
  positions keep next-token targets but are not scored).
  """
  n = _check_int("num_examples", num_examples, 1)
  v = _check_int("vocab_size", vocab_size, 2)
  half = _check_int("half_len", half_len, 2)
  low = half if min_half_len is None else _check_int("min_half_len", min_half_len, 2)
  if low > half:
    raise ValueError(f"min_half_len must be <= half_len={half}, got {low}")
  rng = np.random.default_rng(seed)
  seq = rng.integers(0, v, size=(n, 2 * half))
  lengths = np.full((n,), half) if min_half_len is None else rng.integers(low, half + 1, size=n)
  col = np.arange(2 * half)[None, :]
  ln = lengths[:, None]
  second = (col >= ln) & (col < 2 * ln)
  rows, cols = np.nonzero(second)
  seq[rows, cols] = seq[rows, cols - lengths[rows]]
  targets = np.full_like(seq, IGNORE)
  targets[:, :-1] = seq[:, 1:]
  eval_mask = (col >= ln) & (col < 2 * ln - 1)
  return RecallData(seq.astype(np.int32), targets.astype(np.int32), eval_mask)


TASKS = {"mqar": mqar, "induction": induction_head, "repeated": repeated_tokens}


def make_task(name: str, num_examples: int, *, seed: int, **kwargs) -> RecallData:
  """`TASKS[name](num_examples, seed=seed, **kwargs)` with a named error for unknown tasks."""
  if name not in TASKS:
    raise ValueError(f"task={name!r} is not a recall task; choose one of {sorted(TASKS)}")
  return TASKS[name](num_examples, seed=seed, **kwargs)


def make_recall_loader(
  data: RecallData,
  *,
  batch_size: int,
  seed: int,
  shuffle: bool = True,
  num_epochs: Optional[int] = None,
  drop_remainder: bool = True,
) -> grain.MapDataset:
  """A grain `MapDataset` of batches `{"inputs", "targets", "eval_mask"}` `[B, T]`.

  `MapDataset.source(data) -> shuffle(seed) (a new order every epoch) -> repeat(num_epochs)
  -> batch`. `iter()` it; with `num_epochs=None` it repeats forever.
  """
  if not isinstance(data, RecallData):
    raise TypeError(f"data must be a RecallData, got {type(data).__name__}")
  _check_int("batch_size", batch_size, 1)
  if num_epochs is not None:
    _check_int("num_epochs", num_epochs, 1)
  if drop_remainder and num_epochs is not None and batch_size > len(data) * num_epochs:
    raise ValueError(
      f"batch_size={batch_size} exceeds the {len(data) * num_epochs} examples "
      "available with drop_remainder=True"
    )
  ds = grain.MapDataset.source(data)
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  return ds.batch(batch_size, drop_remainder=drop_remainder)
