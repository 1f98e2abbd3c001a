"""Input pipeline throughput, and which records the size limits drop.

  python bench/input_pipeline.py --data_dir=/path/to/dataset \
      --config.input.num_workers=8
  python bench/input_pipeline.py  # In-memory sampled programs, no dataset.
  python bench/input_pipeline.py --config.input.encoder=graph

Prints batches/s and examples/s after a warm-up, how often each bucket is
used, and the share of records dropped per program length. The encoding,
batch size, workers and augmentation come from --config (any field can be
overridden, e.g. --config.input.augment=permute).
"""

import collections
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from encoding import pipeline, synthetic
from rasp_gen import dataset

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Training config whose input, weights "
    "and graph groups build the pipeline.")

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "Dataset directory written by rasp_gen.generate. Empty: "
    "sample and compile --synthetic_programs programs in memory instead.")
_SPLIT = flags.DEFINE_enum("split", "train", list(dataset.SPLITS),
                           "Split of --data_dir to read.")
_SYNTHETIC_PROGRAMS = flags.DEFINE_integer(
    "synthetic_programs", 200, "Programs to sample (data config's sampler) "
    "when --data_dir is empty.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 50,
                                    "Batches timed after the warm-up.")
_WARMUP_BATCHES = flags.DEFINE_integer(
    "warmup_batches", 5, "Batches read before timing (worker start-up, "
    "first reads).")
_DROP_RECORDS = flags.DEFINE_integer(
    "drop_records", 2000, "Records scanned for the drop report; 0 scans all.")


def main(argv):
  del argv
  config = _CONFIG.value
  size_key = "blocks" if config.input.encoder == "blocks" else "node_type"
  if _DATA_DIR.value:
    source = dataset.data_source(_DATA_DIR.value, _SPLIT.value)
  else:
    source = synthetic.record_source(0, _SYNTHETIC_PROGRAMS.value,
                                     config.data.sampler)
  print(f"{len(source)} records; input config:\n{config.input}")

  iterator = iter(pipeline.make_dataset(source, config))
  for _ in range(_WARMUP_BATCHES.value):
    next(iterator)
  buckets = collections.Counter()
  start = time.perf_counter()
  for _ in range(_NUM_BATCHES.value):
    batch = next(iterator)
    jax.block_until_ready(batch)
    buckets[batch[size_key].shape[1]] += 1
  seconds = time.perf_counter() - start
  iterator.close()
  rate = _NUM_BATCHES.value / seconds
  print(f"{rate:.2f} batches/s, {rate * config.input.batch_size:.1f} "
        f"examples/s ({config.input.num_workers} workers)")
  print(f"batches per bucket ({size_key} width): " + ", ".join(
      f"{n}: {c}" for n, c in sorted(buckets.items())))

  drops = pipeline.drops_by_length(source, config,
                                   _DROP_RECORDS.value or None)
  print("program length: dropped / records (share)")
  for length, (dropped, total) in drops.items():
    print(f"  {length:2d}: {dropped:5d} / {total:5d} ({dropped / total:.1%})")
  dropped = sum(d for d, _ in drops.values())
  total = sum(t for _, t in drops.values())
  print(f"  all: {dropped:5d} / {total:5d} ({dropped / total:.1%})")


if __name__ == "__main__":
  app.run(main)
