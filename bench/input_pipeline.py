"""Input pipeline throughput, and which records the size limits drop.

  python bench/input_pipeline.py --config=configs/cpu.py \
      --data_dir=/path/to/dataset
  python bench/input_pipeline.py  # In-memory sampled programs, no dataset.
  python bench/input_pipeline.py --config.input.encoder=blocks \
      --config.input.num_workers=8

Prints batches/s and examples/s of each path the config can take, timed in
the same run: for the graph encoder with `input.cache` (the default) the
cached path, then the per-example path (`input.cache=False`) and their
ratio; otherwise the per-example path alone. Also how often each bucket is
used, how long the pipeline took to set up (encoding the split when its
cache is missing), and the share of records dropped per program length.
Any config field can be overridden, e.g. --config.input.read_threads=1.
"""

import collections
import copy
import dataclasses
import time
from typing import Sequence

import jax
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from encoding import pipeline, synthetic
from rasp_gen import dataset


@dataclasses.dataclass(frozen=True)
class Throughput:
  """One path's timing: `batches` read in `seconds` after the warm-up."""

  path: str
  setup_seconds: float
  batches: int
  seconds: float
  buckets: dict[int, int]  # `bucket_size` -> batches.

  @property
  def batches_per_second(self) -> float:
    return self.batches / self.seconds


def bucket_size(batch: dict, batch_size: int) -> int:
  """The batch's bucket: blocks per example, or graph nodes per example."""
  if "blocks" in batch:
    return batch["blocks"].shape[1]
  return batch["node_type"].shape[0] // batch_size


def measure(source: Sequence[bytes], config: ml_collections.ConfigDict,
            path: str, seconds: float, warmup_batches: int) -> Throughput:
  """Reads batches of `make_dataset(source, config)` for `seconds`."""
  start = time.perf_counter()
  iterator = iter(pipeline.make_dataset(source, config))
  for _ in range(warmup_batches):
    next(iterator)
  setup = time.perf_counter() - start
  buckets = collections.Counter()
  start = time.perf_counter()
  while time.perf_counter() - start < seconds or not buckets:
    batch = jax.block_until_ready(next(iterator))
    buckets[bucket_size(batch, config.input.batch_size)] += 1
  elapsed = time.perf_counter() - start
  iterator.close()
  return Throughput(path, setup, sum(buckets.values()), elapsed,
                    dict(sorted(buckets.items())))


def paths(config: ml_collections.ConfigDict
          ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """The config's path and, for a cached one, its per-example twin."""
  if config.input.encoder == "graph" and config.input.cache:
    uncached = copy.deepcopy(config)
    uncached.input.cache = False
    return [("cached", config), ("per-example", uncached)]
  return [("per-example", config)]


def run(source: Sequence[bytes], config: ml_collections.ConfigDict,
        seconds: float, warmup_batches: int) -> list[Throughput]:
  """Each of `paths(config)` timed in turn, on the same records."""
  return [measure(source, path_config, path, seconds, warmup_batches)
          for path, path_config in paths(config)]


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", "configs/default.py", "Training config whose input, graph "
      "and blocks groups build the pipeline.")
  flags.DEFINE_string(
      "data_dir", "", "Dataset directory written by rasp_gen.generate. "
      "Empty: sample and compile --synthetic_programs programs in memory.")
  flags.DEFINE_enum("split", "train", list(dataset.SPLITS),
                    "Split of --data_dir to read.")
  flags.DEFINE_integer(
      "synthetic_programs", 200, "Programs to sample (data config's "
      "sampler) when --data_dir is empty.")
  flags.DEFINE_float("seconds", 5.0, "Seconds each path is timed for, "
                     "after the warm-up.")
  flags.DEFINE_integer("warmup_batches", 5, "Batches read before timing "
                       "(worker start-up, first reads).")
  flags.DEFINE_integer("drop_records", 2000, "Records scanned for the drop "
                       "report; 0 scans all.")


def main(argv):
  del argv
  config = flags.FLAGS.config
  if flags.FLAGS.data_dir:
    source = dataset.data_source(flags.FLAGS.data_dir, flags.FLAGS.split)
  else:
    source = synthetic.record_source(0, flags.FLAGS.synthetic_programs,
                                     config.data.sampler)
  print(f"{len(source)} records; input config:\n{config.input}")

  results = run(source, config, flags.FLAGS.seconds,
                flags.FLAGS.warmup_batches)
  width = "blocks" if config.input.encoder == "blocks" else "nodes/example"
  for result in results:
    print(f"{result.path}: {result.batches_per_second:.1f} batches/s, "
          f"{result.batches_per_second * config.input.batch_size:.0f} "
          f"examples/s ({result.batches} batches in {result.seconds:.1f} s, "
          f"{config.input.num_workers} workers; set-up and "
          f"{flags.FLAGS.warmup_batches} warm-up batches "
          f"{result.setup_seconds:.1f} s); batches per bucket ({width}): "
          + ", ".join(f"{n}: {c}" for n, c in result.buckets.items()))
  if len(results) == 2:
    cached, per_example = (r.batches_per_second for r in results)
    print(f"cached / per-example: {cached / per_example:.1f}x")

  drops = pipeline.drops_by_length(source, config,
                                   flags.FLAGS.drop_records or None)
  print("program length: dropped / records (share)")
  for length, (dropped, total) in drops.items():
    print(f"  {length:2d}: {dropped:5d} / {total:5d} ({dropped / total:.1%})")
  dropped = sum(d for d, _ in drops.values())
  total = sum(t for _, t in drops.values())
  print(f"  all: {dropped:5d} / {total:5d} ({dropped / total:.1%})")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
