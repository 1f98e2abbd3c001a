"""Training batches from dataset records, through grain.

Source → shard by process → shuffle → repeat → decode, augment, encode
(threads, optionally worker processes) → drop records over the size limits
→ batch → jnp → prefetch.

The source is any random-access sequence of `records.record_to_bytes` bytes:
`rasp_gen.dataset.data_source(out_dir, split)` for a generated dataset, or a
plain list in tests. Every step is a function of the element index and the
seed, so the iterator's `get_state()` is a small dict, and `set_state()` on a
fresh iterator resumes with exactly the batches that would have come next.

A batch is a dict of jnp arrays, B = batch_size, N = a block bucket,
R = max_rows:

  blocks          float32 [B, N, block_size]
  block_layer     int32   [B, N]     0 embeddings, l + 1 layer l
  block_kind      int32   [B, N]     index into weights.KINDS, 0 padding
  block_position  int32   [B, N]     slice index within its matrix
  block_is_last   int32   [B, N]     1 on each matrix's last block
  block_shape     int32   [B, N, 2]  oriented matrix [d_model, features]
  block_mask      bool    [B, N]     real blocks
  program         int32   [B, R, 5]  token ids (encoding/tokens.py)
  program_mask    bool    [B, R]     rows PROGRAM_START .. PROGRAM_END

`program_mask` marks every non-PAD row. A decoder fed `program[:, :-1]`
predicts `program[:, 1:]`, whose loss rows are `program_mask[:, 1:]` (the
START row is never a target).

N is the smallest of `config.block_buckets` that holds the batch's largest
model, so there are at most len(block_buckets) shapes to compile
(`element_spec` gives each). Records over the size limits are dropped;
`drops_by_length` reports how many, per program length.
"""

import collections
import dataclasses
import functools
from typing import Any, Optional, Sequence

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from encoding import augment as augment_lib
from encoding import tokens, weights
from encoding.limits import LimitExceeded
from encoding.vocabulary import NUM_COLUMNS, PAD
from rasp_gen import records

Example = dict[str, np.ndarray]
AUGMENTATIONS = ("none", "permute", "rotate")
_BLOCK_KEYS = tuple(f.name for f in dataclasses.fields(weights.WeightBlocks))


def default_input_config() -> ml_collections.ConfigDict:
  """Input pipeline settings; configs include this as their `input` group."""
  config = ml_collections.ConfigDict()
  config.batch_size = 32  # Examples per batch on each process.
  # Program rows: PROGRAM_START, up to 8 instructions, PROGRAM_END.
  config.max_rows = 10
  # Block counts a batch is padded to; the last must be weights.max_blocks.
  config.block_buckets = (512, 1024, 2048)
  config.seed = 0  # Shuffle order and augmentation draws.
  config.num_epochs = 0  # Passes over the data; 0 repeats forever.
  # Random residual basis per example: "none", "permute" or "rotate"
  # (encoding/augment.py). The encoded program is unchanged by it.
  config.augment = "none"
  config.num_workers = 0  # grain worker processes; 0 encodes in-process.
  config.worker_buffer_size = 4  # Batches each worker prepares ahead.
  # Threads encoding examples in each process, and examples they read ahead
  # (an example is ~max_blocks * block_size * 4 bytes, 1 MiB by default).
  config.read_threads = 8
  config.read_buffer_size = 64
  config.prefetch_batches = 2  # jnp batches prepared ahead in a thread.
  return config


def encode_record(record: records.Record, max_rows: int,
                  weights_config: ml_collections.ConfigDict) -> Example:
  """One example (unbatched arrays); LimitExceeded if it does not fit."""
  blocks = weights.encode_weights(record.params, weights_config,
                                  record.num_heads)
  program = tokens.encode_program(record.program, max_rows)
  pad_row = tokens.vocabulary_for_rows(max_rows).ids[PAD]
  return dict(vars(blocks), program=program,  # vars: asdict deep-copies.
              program_mask=np.any(program != pad_row, axis=1))


def _example_or_none(data: bytes, rng: np.random.Generator, *,
                     max_rows: int, weights_config: ml_collections.ConfigDict,
                     augment: str) -> Optional[Example]:
  record = records.record_from_bytes(data)
  if augment != "none":
    record = dataclasses.replace(record, params=augment_lib.augment(
        record.params, rng, rotate=augment == "rotate"))
  try:
    return encode_record(record, max_rows, weights_config)
  except LimitExceeded:
    return None


def batch_examples(examples: Sequence[Example],
                     buckets: tuple[int, ...]) -> Example:
  """Stacks examples, cutting block arrays to the smallest bucket that fits."""
  largest = max(int(e["block_mask"].sum()) for e in examples)
  size = min(b for b in buckets if b >= largest)
  return {key: np.stack([e[key][:size] if key in _BLOCK_KEYS else e[key]
                         for e in examples])
          for key in examples[0]}


def _check_config(config: ml_collections.ConfigDict,
                  weights_config: ml_collections.ConfigDict) -> None:
  buckets = tuple(config.block_buckets)
  if list(buckets) != sorted(set(buckets)) or (
      buckets[-1] != weights_config.max_blocks):
    raise ValueError(f"block_buckets must increase and end at max_blocks="
                     f"{weights_config.max_blocks}, got {buckets}")
  if config.augment not in AUGMENTATIONS:
    raise ValueError(f"augment must be one of {AUGMENTATIONS}, got "
                     f"{config.augment!r}")


def make_dataset(source: Sequence[bytes], config: ml_collections.ConfigDict,
                 weights_config: ml_collections.ConfigDict
                 ) -> grain.IterDataset:
  """Batches of this process's shard of `source`; see the module docstring.

  Args:
    source: random access to record bytes (`__len__`, `__getitem__`).
    config: `default_input_config()` or a config's `input` group.
    weights_config: `weights.default_weights_config()` or a config's
      `weights` group.
  """
  _check_config(config, weights_config)
  example = functools.partial(
      _example_or_none, max_rows=config.max_rows,
      weights_config=weights_config, augment=config.augment)
  # `seed` gives shuffle and random_map each their own derived seed; both
  # reseed every epoch.
  dataset = (grain.MapDataset.source(source)
             [jax.process_index()::jax.process_count()]
             .seed(config.seed)
             .shuffle()
             .repeat(config.num_epochs or None)
             .random_map(example)
             .filter(lambda e: e is not None)
             .to_iter_dataset(grain.ReadOptions(
                 num_threads=config.read_threads,
                 prefetch_buffer_size=config.read_buffer_size))
             .batch(config.batch_size, drop_remainder=True,
                    batch_fn=functools.partial(
                        batch_examples,
                        buckets=tuple(config.block_buckets))))
  if config.num_workers:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.num_workers,
        per_worker_buffer_size=config.worker_buffer_size))
  dataset = dataset.map(lambda batch: {k: jnp.asarray(v)
                                       for k, v in batch.items()})
  return grain.experimental.ThreadPrefetchIterDataset(
      dataset, prefetch_buffer_size=config.prefetch_batches)


def drops_by_length(source: Sequence[bytes],
                    config: ml_collections.ConfigDict,
                    weights_config: ml_collections.ConfigDict,
                    max_records: Optional[int] = None
                    ) -> dict[int, tuple[int, int]]:
  """Program length -> (records dropped for size limits, records).

  Reads the first `max_records` records of `source` (all by default); what
  the pipeline drops depends neither on order nor on augmentation.
  """
  counts: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
  for i in range(min(len(source), max_records or len(source))):
    record = records.record_from_bytes(source[i])
    count = counts[len(record.program)]
    count[1] += 1
    try:
      encode_record(record, config.max_rows, weights_config)
    except LimitExceeded:
      count[0] += 1
  return {length: (dropped, total)
          for length, (dropped, total) in sorted(counts.items())}


def element_spec(config: ml_collections.ConfigDict,
                 weights_config: ml_collections.ConfigDict,
                 num_blocks: int) -> dict[str, Any]:
  """Shapes and dtypes of a batch with `num_blocks` blocks (a bucket)."""
  b, n = config.batch_size, num_blocks
  return {
      "blocks": jax.ShapeDtypeStruct((b, n, weights_config.block_size),
                                     jnp.float32),
      **{key: jax.ShapeDtypeStruct((b, n), jnp.int32) for key in (
          "block_layer", "block_kind", "block_position", "block_is_last")},
      "block_shape": jax.ShapeDtypeStruct((b, n, 2), jnp.int32),
      "block_mask": jax.ShapeDtypeStruct((b, n), jnp.bool_),
      "program": jax.ShapeDtypeStruct((b, config.max_rows, NUM_COLUMNS),
                                      jnp.int32),
      "program_mask": jax.ShapeDtypeStruct((b, config.max_rows), jnp.bool_),
  }
