"""Encode once: a split's graph examples, computed when first read and kept.

The graph encoder is deterministic and never augments, so a record's weight
graph and program tokens are the same in every epoch. Building the graph in
Python (~1.6 ms a record) for every example of every epoch starved the
accelerator; instead each split is encoded once into an `EncodedSplit` (one
`graph.GraphSet` of its examples and their other arrays stacked), and an
epoch only gathers, pads and stacks (`EncodedSplit.take`).

On disk, next to the dataset (`rasp_gen.dataset.SplitSource`):

  DATA_DIR/cache/{split}-{key}/
    cache.json          what `key` hashes, the counts, the array names
    {name}.npy          the GraphSet's fields and starts, `row`, and the
                        examples' other arrays (program, program_mask)

`key` is 16 hex digits of the SHA-256 of the encoder's settings (given by
the caller: the `graph` group and `input.max_rows`), the split's shards as
the manifest lists them (path, size, SHA-256) and the source of the
`encoding` package, so that changing any of them gives a new cache (old ones
stay; delete DATA_DIR/cache to reclaim the space).

Several processes or hosts may read the same dataset: each missing cache is
written complete into a folder of its own and renamed into place; the first
rename wins and later writers discard theirs (encoding is deterministic, so
the contents are the same). Readers only ever see a complete cache, and its
arrays are memory-mapped, so the processes of a host share their pages. A
build killed midway leaves a `{split}-{key}.tmp-*` folder that nothing reads
(safe to delete); the next reader builds the cache again. A dataset in a
read-only folder needs a writable copy, or `input.cache=False`.
"""

import dataclasses
import functools
import glob
import hashlib
import json
import os
import shutil
import uuid
from typing import Any, Callable, Optional, Sequence

import numpy as np
from absl import logging

from encoding import graph as graph_lib
from encoding.limits import LimitExceeded
from rasp_gen import dataset, records

Example = dict[str, np.ndarray]
EncodeRecord = Callable[[records.Record], Example]
CACHE_DIR = "cache"
_MANIFEST = "cache.json"
_GRAPH_KEYS = tuple(f.name for f in dataclasses.fields(graph_lib.WeightGraph))


@dataclasses.dataclass(frozen=True)
class EncodedSplit:
  """A split's records encoded, the dropped ones left out.

  Attributes:
    graphs: the kept examples' graphs, in record order.
    arrays: the kept examples' other arrays, stacked [K, ...].
    row: int64 [n], record i's index in `graphs` and `arrays`; -1 where
      the record is over the encoder's size limits (LimitExceeded).
    path: the folder it was loaded from, if any (pickling then reopens it
      instead of copying the arrays, e.g. into grain's worker processes).
  """

  graphs: graph_lib.GraphSet
  arrays: dict[str, np.ndarray]
  row: np.ndarray
  path: Optional[str] = None

  def __reduce__(self):
    if self.path is None:
      return EncodedSplit, (self.graphs, self.arrays, self.row)
    return _load, (self.path,)

  def take(self, rows_B: np.ndarray,
           buckets: Sequence[Sequence[int]]) -> Example:
    """The batch of examples `rows_B`, as `pipeline.batch_examples` makes
    it from the same examples."""
    return dict(graph_lib.take_batch(self.graphs, rows_B, buckets),
                **{key: value[rows_B] for key, value in self.arrays.items()})


def encode(source: Sequence[bytes],
           encode_record: EncodeRecord) -> EncodedSplit:
  """Every record of `source`, encoded in memory, in order.

  `encode_record` gives a record's example, or raises LimitExceeded to drop
  it. One process encodes a record in 1-2 ms (10-20 s for configs/quick.py's
  10,000 training records).
  """
  examples, row = [], np.full(len(source), -1, np.int64)
  for i in range(len(source)):
    try:
      examples.append(encode_record(records.record_from_bytes(source[i])))
    except LimitExceeded:
      continue
    row[i] = len(examples) - 1
  return dataclasses.replace(stack_examples(examples), row=row)


def stack_examples(examples: Sequence[Example]) -> EncodedSplit:
  """Graph examples as one `EncodedSplit`, in order, none dropped: their
  graphs concatenated, their other arrays stacked."""
  graphs = graph_lib.concatenate_graphs([graph_lib.WeightGraph(
      **{key: e[key] for key in _GRAPH_KEYS}) for e in examples])
  arrays = {key: np.stack([e[key] for e in examples])
            for key in (examples[0] if examples else ())
            if key not in _GRAPH_KEYS}
  return EncodedSplit(graphs, arrays, np.arange(len(examples)))


def _code_digest() -> str:
  """SHA-256 of the `encoding` package's source files."""
  digest = hashlib.sha256()
  for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__),
                                            "*.py"))):
    with open(path, "rb") as f:
      digest.update(os.path.basename(path).encode() + b"\0" + f.read())
  return digest.hexdigest()


def cache_path(source: dataset.SplitSource, settings: dict[str, Any]) -> str:
  """Where the split's cache for encoder `settings` lives (see above)."""
  shards = [shard for shard in dataset.load_manifest(source.out_dir)["shards"]
            if shard["split"] == source.split]
  key = hashlib.sha256(json.dumps(
      {"settings": settings, "shards": shards, "code": _code_digest()},
      sort_keys=True).encode()).hexdigest()[:16]
  return os.path.join(source.out_dir, CACHE_DIR, f"{source.split}-{key}")


def _save(encoded: EncodedSplit, path: str,
          settings: dict[str, Any]) -> None:
  """Writes `encoded` into a new folder `path` (see the module docstring)."""
  os.makedirs(path)
  graphs = encoded.graphs
  named = dict(vars(graphs.union), node_start=graphs.node_start,
               edge_start=graphs.edge_start, row=encoded.row,
               **encoded.arrays)
  manifest = json.dumps({"settings": settings, "records": len(encoded.row),
                         "kept": len(graphs),
                         "arrays": sorted(encoded.arrays)}, indent=1)
  files = [(f"{name}.npy", functools.partial(np.save, arr=value))
           for name, value in named.items()]
  files.append((_MANIFEST, lambda f: f.write(manifest.encode())))
  for name, write in files:
    with open(os.path.join(path, name), "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())  # On disk before the rename publishes it.


def _load(path: str) -> EncodedSplit:
  """The cache in folder `path`, memory-mapped."""
  with open(os.path.join(path, _MANIFEST)) as f:
    manifest = json.load(f)
  read = lambda name: np.asarray(np.load(os.path.join(path, f"{name}.npy"),
                                         mmap_mode="r"))
  graphs = graph_lib.GraphSet(
      graph_lib.WeightGraph(**{key: read(key) for key in _GRAPH_KEYS}),
      read("node_start"), read("edge_start"))
  return EncodedSplit(graphs, {name: read(name)
                               for name in manifest["arrays"]},
                      read("row"), path)


def load_or_build(source: dataset.SplitSource, settings: dict[str, Any],
                  encode_record: EncodeRecord) -> EncodedSplit:
  """The split's cache for encoder `settings`, built first if missing.

  `encode_record` must be what `settings` describe: it is called only when
  building, and the cache is found again by `settings` alone.
  """
  path = cache_path(source, settings)
  if not os.path.exists(path):
    logging.info("encoding %d records into %s", len(source), path)
    encoded = encode(source, encode_record)
    staging = f"{path}.tmp-{uuid.uuid4().hex}"
    _save(encoded, staging, settings)
    try:
      os.rename(staging, path)
    except OSError:  # Another process renamed its copy into place first.
      if not os.path.exists(path):
        raise
      shutil.rmtree(staging)
  return _load(path)
