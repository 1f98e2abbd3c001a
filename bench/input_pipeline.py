"""Input pipeline throughput, and which records the size limits drop.

  python bench/input_pipeline.py --data_dir=/path/to/dataset --num_workers=8
  python bench/input_pipeline.py  # In-memory sampled programs, no dataset.

Prints batches/s and examples/s after a warm-up, how often each block
bucket is used, and the share of records dropped per program length.
"""

import collections
import time

import jax
from absl import app, flags

from configs import data
from encoding import pipeline, synthetic, weights
from rasp_gen import dataset

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "Dataset directory written by rasp_gen.generate. Empty: "
    "sample and compile --synthetic_programs programs in memory instead.")
_SPLIT = flags.DEFINE_enum("split", "train", list(dataset.SPLITS),
                           "Split of --data_dir to read.")
_SYNTHETIC_PROGRAMS = flags.DEFINE_integer(
    "synthetic_programs", 200, "Programs to sample (data config's sampler) "
    "when --data_dir is empty.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Examples per batch.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 50,
                                    "Batches timed after the warm-up.")
_WARMUP_BATCHES = flags.DEFINE_integer(
    "warmup_batches", 5, "Batches read before timing (worker start-up, "
    "first reads).")
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", 0, "grain worker processes; 0 encodes in this process.")
_AUGMENT = flags.DEFINE_enum("augment", "none", list(pipeline.AUGMENTATIONS),
                             "Random residual basis per example.")
_BLOCK_AXIS = flags.DEFINE_enum(
    "block_axis", "feature", list(weights.BLOCK_AXES),
    "What one weight block is (see encoding/weights.py).")
_DROP_RECORDS = flags.DEFINE_integer(
    "drop_records", 2000, "Records scanned for the drop report; 0 scans all.")


def main(argv):
  del argv
  if _DATA_DIR.value:
    source = dataset.data_source(_DATA_DIR.value, _SPLIT.value)
  else:
    source = synthetic.record_source(0, _SYNTHETIC_PROGRAMS.value,
                                     data.get_config().sampler)
  input_config = pipeline.default_input_config()
  input_config.batch_size = _BATCH_SIZE.value
  input_config.num_workers = _NUM_WORKERS.value
  input_config.augment = _AUGMENT.value
  weights_config = weights.default_weights_config()
  weights_config.block_axis = _BLOCK_AXIS.value
  print(f"{len(source)} records; input config:\n{input_config}")

  iterator = iter(pipeline.make_dataset(source, input_config, weights_config))
  for _ in range(_WARMUP_BATCHES.value):
    next(iterator)
  buckets = collections.Counter()
  start = time.perf_counter()
  for _ in range(_NUM_BATCHES.value):
    batch = next(iterator)
    jax.block_until_ready(batch)
    buckets[batch["blocks"].shape[1]] += 1
  seconds = time.perf_counter() - start
  iterator.close()
  rate = _NUM_BATCHES.value / seconds
  print(f"{rate:.2f} batches/s, {rate * _BATCH_SIZE.value:.1f} examples/s "
        f"({_NUM_WORKERS.value} workers)")
  print("batches per block bucket: " + ", ".join(
      f"{n}: {c}" for n, c in sorted(buckets.items())))

  drops = pipeline.drops_by_length(source, input_config, weights_config,
                                   _DROP_RECORDS.value or None)
  print("program length: dropped / records (share)")
  for length, (dropped, total) in drops.items():
    print(f"  {length:2d}: {dropped:5d} / {total:5d} ({dropped / total:.1%})")
  dropped = sum(d for d, _ in drops.values())
  total = sum(t for _, t in drops.values())
  print(f"  all: {dropped:5d} / {total:5d} ({dropped / total:.1%})")


if __name__ == "__main__":
  app.run(main)
