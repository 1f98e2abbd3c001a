"""Reading a finished dataset that `rasp_gen.generate` wrote.

A dataset directory holds one `manifest.json` and, per split, array_record
shards `{split}-{shard:05d}-of-{num_shards:05d}.array_record` whose records
are `records.record_to_bytes`. Only files the manifest lists are part of the
dataset (the `chunks/` folder is the generator's working state), so readers
go through the manifest, and a directory without one is not finished.

For a training pipeline:

  grain.MapDataset.source(data_source(out_dir, "train")).map(
      records.record_from_bytes)
"""

import json
import os

import grain

from rasp_gen import records

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")


def shard_name(split: str, shard: int, num_shards: int) -> str:
  return f"{split}-{shard:05d}-of-{num_shards:05d}.array_record"


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def load_manifest(out_dir: str) -> dict:
  """The manifest; its absence means the dataset is missing or unfinished."""
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: {out_dir!r} is not a finished dataset "
        "(run or resume `python -m rasp_gen.generate --out_dir=...`)")
  with open(path) as f:
    return json.load(f)


def split_paths(out_dir: str, split: str) -> list[str]:
  """The split's shard files, in record order."""
  _check_split(split)
  return [os.path.join(out_dir, shard["path"])
          for shard in load_manifest(out_dir)["shards"]
          if shard["split"] == split]


def data_source(out_dir: str,
                split: str) -> grain.sources.ArrayRecordDataSource:
  """Random access to the split's record bytes, for a grain pipeline."""
  paths = split_paths(out_dir, split)
  if not paths:
    raise ValueError(f"split {split!r} of {out_dir!r} has no records")
  return grain.sources.ArrayRecordDataSource(paths)


def read_split(out_dir: str, split: str) -> list[records.Record]:
  """Every record of the split, decoded, in sample-index order."""
  if not split_paths(out_dir, split):
    return []
  source = data_source(out_dir, split)
  return [records.record_from_bytes(source[i]) for i in range(len(source))]
