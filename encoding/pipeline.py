"""Training batches from dataset records, through grain.

Per example (the block encoder, or `input.cache=False`): source → shard by
process → shuffle → repeat → decode, encode (threads, optionally worker
processes) → drop records over the size limits → batch → device → prefetch.

Cached (the graph encoder's default): every record is encoded once
(encoding/cache.py: next to a dataset split, in memory for other sources),
and batch j is cut from those arrays with a few numpy operations: the kept
examples jB .. jB + B - 1 of the very stream the per-example path batches
(the same grain shuffle on record indices), so both paths give the same
batches. ~25x faster on 2 cores: one process feeds one GPU.

The weights are encoded as a weight graph (`input.encoder="graph"`, the
default; encoding/graph.py): a batch is the disjoint union of its examples'
graphs, `graph.take_batch`'s keys (node arrays [N], edge arrays [E],
`summary_index`/`summary_mask` [B, S]), plus `program` and `program_mask`
below. The block encoder (`"blocks"`, encoding/weights.py, settings in the
`blocks` group) is the alternative; its batches are described last.

The source is any random-access sequence of `records.record_to_bytes` bytes:
`rasp_gen.dataset.data_source(out_dir, split)` for a generated dataset, or a
plain list in tests. Every step is a function of the element (or batch)
index and the seed, so the iterator's `get_state()` is a small dict, and
`set_state()` on a fresh iterator of the same path resumes with exactly the
batches that would have come next.

Every batch has, B = batch_size, R = max_rows:

  program         int32   [B, R, 5]  token ids (encoding/tokens.py)
  program_mask    bool    [B, R]     rows PROGRAM_START .. PROGRAM_END

`program_mask` marks every non-PAD row. A decoder fed `program[:, :-1]`
predicts `program[:, 1:]`, whose loss rows are `program_mask[:, 1:]` (the
START row is never a target).

A block batch has instead of the graph, N = a block bucket:

  blocks          float32 [B, N, block_size]
  block_layer     int32   [B, N]     0 embeddings, l + 1 layer l
  block_kind      int32   [B, N]     index into weights.KINDS, 0 padding
  block_position  int32   [B, N]     slice index within its matrix
  block_is_last   int32   [B, N]     1 on each matrix's last block
  block_shape     int32   [B, N, 2]  oriented matrix [d_model, features]
  block_mask      bool    [B, N]     real blocks

N is the smallest of `blocks.buckets` that holds the batch's largest model,
so there are at most len(blocks.buckets) shapes to compile (`element_spec`
gives each); `blocks.augment` draws a random residual basis per example.
Records over the size limits are dropped; `drops_by_length` reports how
many, per program length.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import sys
import threading
from typing import Any, Optional, Sequence

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from compiled import params as params_lib
from compiled import forward, saved
from encoding import augment as augment_lib
from encoding import cache
from encoding import graph as graph_lib
from encoding import tokens, weights
from encoding.limits import LimitExceeded
from encoding.vocabulary import NUM_COLUMNS, PAD
from rasp_gen import dataset, records

Example = dict[str, np.ndarray]
AUGMENTATIONS = ("none", "permute", "rotate")
ENCODERS = ("blocks", "graph")
_BLOCK_KEYS = tuple(f.name for f in dataclasses.fields(weights.WeightBlocks))


def default_input_config() -> ml_collections.ConfigDict:
  """Input pipeline settings; configs include this as their `input` group."""
  config = ml_collections.ConfigDict()
  config.batch_size = 32  # Examples per batch on each process.
  # How the weights are shown to the model: "graph" (encoding/graph.py, the
  # `graph` group) or "blocks" (encoding/weights.py, the `blocks` group).
  config.encoder = "graph"
  # Program rows: PROGRAM_START, up to 8 instructions, PROGRAM_END.
  config.max_rows = 10
  config.seed = 0  # Shuffle order and augmentation draws.
  config.num_epochs = 0  # Passes over the data; 0 repeats forever.
  # Graph encoder: encode each record once (encoding/cache.py, next to a
  # dataset; in memory for other sources) and cut batches from flat arrays.
  # False encodes every example of every epoch, as the block encoder always
  # does; both give the same batches.
  config.cache = True
  # grain worker processes; 0 batches in-process. The cached graph path
  # needs none: in-process it gives ~700 batches/s of 32 graphs on 2 busy
  # cores, more than one GPU steps through at configs/cpu.py's size
  # (~300/s: 3.2 ms a step on an H100), and workers would copy every batch
  # between processes. The per-example paths (blocks, cache=False) manage
  # ~30 batches/s per process: give them a worker per core to spare.
  config.num_workers = 0
  config.worker_buffer_size = 4  # Batches each worker prepares ahead.
  # Per-example paths: threads encoding examples in each process, and
  # examples they read ahead (a block example is ~max_blocks * block_size *
  # 4 bytes, 1 MiB by default).
  config.read_threads = 8
  config.read_buffer_size = 64
  # Device batches prepared ahead in a thread (on the cached path, this
  # thread also cuts them).
  config.prefetch_batches = 2
  return config


def encode_weights_of(record: records.Record,
                      config: ml_collections.ConfigDict) -> Example:
  """The record's weights as `config.input.encoder` encodes them (unbatched).

  `record` may also be a `compiled.saved.SavedModel` (the same fields).
  Blocks come padded to `blocks.max_blocks`, graphs unpadded; LimitExceeded
  if the model does not fit.
  """
  if config.input.encoder == "blocks":
    return dict(vars(weights.encode_weights(  # vars: asdict deep-copies.
        record.params, config.blocks, record.num_heads)))
  if record.output is None:
    raise ValueError("the weights have no output decoding (a rotated "
                     "residual stream); the graph encoder needs one")
  # A SavedModel knows its row order also where tracr's sort does not.
  input_tokens = (record.input_tokens if isinstance(record, saved.SavedModel)
                  else forward.input_tokens(record.vocab, record.compiler_bos,
                                            record.compiler_pad))
  graph = graph_lib.build_graph(
      record.params, input_tokens, record.output, record.num_heads,
      config.graph, record.compiler_bos, record.compiler_pad)
  return {f.name: getattr(graph, f.name) for f in dataclasses.fields(graph)}


def encode_record(record: records.Record,
                  config: ml_collections.ConfigDict) -> Example:
  """One example (unbatched arrays); LimitExceeded if it does not fit.

  `config` is a training config: its `input` group and its encoder's.
  """
  program = tokens.encode_program(record.program, config.input.max_rows)
  pad_row = tokens.vocabulary_for_rows(config.input.max_rows).ids[PAD]
  return dict(encode_weights_of(record, config), program=program,
              program_mask=np.any(program != pad_row, axis=1))


def augment_record(record: records.Record, rng: np.random.Generator,
                   augment: str) -> records.Record:
  """The record in a random residual basis (`augment`: AUGMENTATIONS).

  A permutation moves the output decoding's dims with the residual stream;
  a rotation leaves no output dims, so the record's `output` becomes None.
  """
  if augment == "none":
    return record
  d_model = params_lib.check_params(record.params).d_model
  basis_DxD = augment_lib.random_basis(rng, d_model, augment == "rotate")
  output = None if augment == "rotate" else record.output and (
      dataclasses.replace(record.output, dims=tuple(
          int(np.argmax(basis_DxD[d])) for d in record.output.dims)))
  return dataclasses.replace(
      record, params=augment_lib.change_residual_basis(record.params,
                                                       basis_DxD),
      output=output)


def _example_or_none(data: bytes, rng: np.random.Generator, *,
                     config: ml_collections.ConfigDict) -> Optional[Example]:
  record = records.record_from_bytes(data)
  if config.input.encoder == "blocks":
    record = augment_record(record, rng, config.blocks.augment)
  try:
    return encode_record(record, config)
  except LimitExceeded:
    return None


def batch_examples(examples: Sequence[Example],
                   config: ml_collections.ConfigDict) -> Example:
  """Stacks examples: blocks cut to the smallest bucket that holds them,
  graphs joined into one padded disjoint union (`graph.take_batch`), as the
  cached path cuts them."""
  if config.input.encoder == "graph":
    return cache.stack_examples(examples).take(np.arange(len(examples)),
                                               config.graph.buckets)
  largest = max(int(e["block_mask"].sum()) for e in examples)
  size = min(b for b in config.blocks.buckets if b >= largest)
  return {key: np.stack([e[key][:size] if key in _BLOCK_KEYS else e[key]
                         for e in examples])
          for key in examples[0]}


def check_config(config: ml_collections.ConfigDict) -> None:
  """ValueError naming the first inconsistent setting of the `input` group
  or of the selected encoder's group (the other encoder's is not read)."""
  if config.input.encoder not in ENCODERS:
    raise ValueError(f"input.encoder must be one of {ENCODERS}, got "
                     f"{config.input.encoder!r}")
  if config.input.encoder == "graph":
    graph_lib.check_buckets(config.graph.buckets)
    return
  buckets = tuple(config.blocks.buckets)
  if list(buckets) != sorted(set(buckets)) or (
      buckets[-1] != config.blocks.max_blocks):
    raise ValueError(f"blocks.buckets must increase and end at max_blocks="
                     f"{config.blocks.max_blocks}, got {buckets}")
  if config.blocks.augment not in AUGMENTATIONS:
    raise ValueError(f"blocks.augment must be one of {AUGMENTATIONS}, got "
                     f"{config.blocks.augment!r}")


class _KeptOrder:
  """Epoch by epoch, the rows of the kept examples of this process's shard
  in the order the per-example path reads them: grain's shuffle with the
  same seeds (a fresh order each epoch) on record indices, then the records
  over the limits left out.

  grain shuffles element by element (~10 us a record), so while one epoch
  is read the next one's order is computed in a background thread: no
  stall at epoch boundaries.
  """

  def __init__(self, row: np.ndarray, config: ml_collections.ConfigDict):
    shard = slice(jax.process_index(), None, jax.process_count())
    size = len(range(len(row))[shard])
    self._row = row
    self._order = (grain.MapDataset.range(len(row))[shard]
                   .seed(config.input.seed).shuffle().repeat().batch(size))
    self.kept_per_epoch = int((row[shard] >= 0).sum())
    self._start()

  def _start(self) -> None:
    self._lock = threading.Lock()
    self._executor = concurrent.futures.ThreadPoolExecutor(1)
    self._epochs: dict[int, concurrent.futures.Future] = {}

  def __getstate__(self) -> dict[str, Any]:
    return {key: vars(self)[key]
            for key in ("_row", "_order", "kept_per_epoch")}

  def __setstate__(self, state: dict[str, Any]) -> None:
    vars(self).update(state)
    self._start()

  def _compute(self, epoch: int) -> np.ndarray:
    rows = self._row[self._order[epoch]]
    return rows[rows >= 0]

  def rows(self, epoch: int) -> np.ndarray:
    with self._lock:
      for e in list(self._epochs):
        if e < epoch:
          del self._epochs[e]
      for e in (epoch, epoch + 1):
        if e not in self._epochs:
          self._epochs[e] = self._executor.submit(self._compute, e)
      future = self._epochs[epoch]
    return future.result()


class _CachedBatches:
  """Random access to the cached path's batches: batch j holds kept
  examples jB .. jB + B - 1 of the per-example path's stream (`_KeptOrder`),
  cut from an `EncodedSplit` with a few array operations. So both paths
  give the same batches, and a grain iterator over these needs only the
  batch index as its state.
  """

  def __init__(self, encoded: cache.EncodedSplit,
               config: ml_collections.ConfigDict):
    self._encoded = encoded
    self._order = _KeptOrder(encoded.row, config)
    self._batch_size = config.input.batch_size
    self._buckets = config.graph.buckets
    kept = self._order.kept_per_epoch
    if not kept:
      raise ValueError("every record of this process's shard is over the "
                       "encoder's size limits")
    epochs = config.input.num_epochs
    self._len = epochs * kept // self._batch_size if epochs else sys.maxsize

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> Example:
    first = index * self._batch_size
    epoch_B, rank_B = np.divmod(np.arange(first, first + self._batch_size),
                                self._order.kept_per_epoch)
    rows_B = np.concatenate([self._order.rows(int(e))[rank_B[epoch_B == e]]
                             for e in np.unique(epoch_B)])
    return self._encoded.take(rows_B, self._buckets)


def _encoded_split(source: Sequence[bytes],
                   config: ml_collections.ConfigDict) -> cache.EncodedSplit:
  """Every record of `source` encoded once: from (or into) the cache next to
  a dataset split, else in memory."""
  encode = functools.partial(encode_record, config=config)
  if isinstance(source, dataset.SplitSource):
    settings = {"encoder": config.input.encoder,
                "graph": config.graph.to_dict(),
                "max_rows": config.input.max_rows}
    return cache.load_or_build(source, settings, encode)
  return cache.encode(source, encode)


def _per_example_batches(source: Sequence[bytes],
                         config: ml_collections.ConfigDict
                         ) -> grain.IterDataset:
  """Batches encoded example by example, every epoch."""
  example = functools.partial(_example_or_none, config=config)
  # `seed` gives shuffle and random_map each their own derived seed; both
  # reseed every epoch.
  return (grain.MapDataset.source(source)
          [jax.process_index()::jax.process_count()]
          .seed(config.input.seed)
          .shuffle()
          .repeat(config.input.num_epochs or None)
          .random_map(example)
          .filter(lambda e: e is not None)
          .to_iter_dataset(grain.ReadOptions(
              num_threads=config.input.read_threads,
              prefetch_buffer_size=config.input.read_buffer_size))
          .batch(config.input.batch_size, drop_remainder=True,
                 batch_fn=functools.partial(batch_examples, config=config)))


def make_dataset(source: Sequence[bytes], config: ml_collections.ConfigDict
                 ) -> grain.IterDataset:
  """Batches of this process's shard of `source`; see the module docstring.

  Args:
    source: random access to record bytes (`__len__`, `__getitem__`);
      `rasp_gen.dataset.data_source` keeps the graph encoder's cache next to
      its dataset.
    config: a training config; its `input` group (`default_input_config()`)
      and the `graph` or `blocks` group its encoder reads.
  """
  check_config(config)
  if config.input.encoder == "graph" and config.input.cache:
    # No read threads: a batch takes well under a millisecond to cut, and
    # the prefetch thread below cuts them ahead.
    batches = grain.MapDataset.source(_CachedBatches(
        _encoded_split(source, config), config)).to_iter_dataset(
            grain.ReadOptions(num_threads=0))
  else:
    batches = _per_example_batches(source, config)
  if config.input.num_workers:
    batches = batches.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.input.num_workers,
        per_worker_buffer_size=config.input.worker_buffer_size))
  batches = batches.map(jax.device_put)
  return grain.experimental.ThreadPrefetchIterDataset(
      batches, prefetch_buffer_size=config.input.prefetch_batches)


def drops_by_length(source: Sequence[bytes],
                    config: ml_collections.ConfigDict,
                    max_records: Optional[int] = None
                    ) -> dict[int, tuple[int, int]]:
  """Program length -> (records dropped for size limits, records).

  Reads the first `max_records` records of `source` (all by default); what
  the pipeline drops depends neither on order nor on augmentation. Dropped:
  weights over the encoder's limits, programs over `input.max_rows`, and
  programs the token vocabulary cannot express (a table function).
  """
  counts: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
  for i in range(min(len(source), max_records or len(source))):
    record = records.record_from_bytes(source[i])
    count = counts[len(record.program)]
    count[1] += 1
    try:
      tokens.encode_program(record.program, config.input.max_rows)
      encode_weights_of(record, config)
    except LimitExceeded:
      count[0] += 1
  return {length: (dropped, total)
          for length, (dropped, total) in sorted(counts.items())}


def element_spec(config: ml_collections.ConfigDict,
                 num_blocks: int) -> dict[str, Any]:
  """Shapes and dtypes of a block batch with `num_blocks` blocks (a bucket)."""
  b, n, rows = config.input.batch_size, num_blocks, config.input.max_rows
  return {
      "blocks": jax.ShapeDtypeStruct((b, n, config.blocks.block_size),
                                     jnp.float32),
      **{key: jax.ShapeDtypeStruct((b, n), jnp.int32) for key in (
          "block_layer", "block_kind", "block_position", "block_is_last")},
      "block_shape": jax.ShapeDtypeStruct((b, n, 2), jnp.int32),
      "block_mask": jax.ShapeDtypeStruct((b, n), jnp.bool_),
      "program": jax.ShapeDtypeStruct((b, rows, NUM_COLUMNS), jnp.int32),
      "program_mask": jax.ShapeDtypeStruct((b, rows), jnp.bool_),
  }
