"""Reading a finished dataset that `rasp_gen.generate` wrote.

A dataset directory holds one `manifest.json` and, per split, array_record
shards `{split}-{shard:05d}-of-{num_shards:05d}.array_record` whose records
are `records.record_to_bytes`. Only files the manifest lists are part of the
dataset (the `chunks/` folder is the generator's working state), so readers
go through the manifest, and a directory without one is not finished.

The manifest records each shard's size and SHA-256: every reader checks the
sizes (a truncated or missing shard is a ValueError naming the file), and
`check_shards` also checks the contents.

For a training pipeline:

  grain.MapDataset.source(data_source(out_dir, "train")).map(
      records.record_from_bytes)
"""

import hashlib
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


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _check_size(out_dir: str, shard: dict) -> str:
  """The shard's path; ValueError naming it when it is missing or its size
  is not the manifest's (manifests written before sizes were recorded are
  not checked)."""
  path = os.path.join(out_dir, shard["path"])
  if not os.path.exists(path):
    raise ValueError(f"shard {path} is listed in the manifest but missing")
  expected = shard.get("num_bytes")
  if expected is not None and os.path.getsize(path) != expected:
    raise ValueError(f"shard {path} has {os.path.getsize(path)} bytes, the "
                     f"manifest says {expected}: truncated or overwritten; "
                     "regenerate the dataset")
  return path


def split_paths(out_dir: str, split: str) -> list[str]:
  """The split's shard files, in record order, their sizes checked."""
  _check_split(split)
  return [_check_size(out_dir, shard)
          for shard in load_manifest(out_dir)["shards"]
          if shard["split"] == split]


def check_shards(out_dir: str) -> None:
  """ValueError naming the first shard whose size or SHA-256 is not the
  manifest's (contents are checked only where the manifest has them)."""
  for shard in load_manifest(out_dir)["shards"]:
    path = _check_size(out_dir, shard)
    if "sha256" in shard and file_sha256(path) != shard["sha256"]:
      raise ValueError(f"shard {path} does not match the SHA-256 in the "
                       "manifest: corrupted; regenerate the dataset")


class SplitSource(grain.sources.ArrayRecordDataSource):
  """A split's record bytes that know their dataset (`out_dir`, `split`),
  so that a reader can keep what it derives next to them
  (encoding/cache.py)."""

  def __init__(self, out_dir: str, split: str):
    paths = split_paths(out_dir, split)
    if not paths:
      raise ValueError(f"split {split!r} of {out_dir!r} has no records")
    super().__init__(paths)
    self.out_dir = out_dir
    self.split = split


def data_source(out_dir: str, split: str) -> SplitSource:
  """Random access to the split's record bytes, for a grain pipeline."""
  return SplitSource(out_dir, split)


def read_split(out_dir: str, split: str) -> list[records.Record]:
  """Every record of the split, decoded, in sample-index order."""
  if not split_paths(out_dir, split):
    return []
  source = data_source(out_dir, split)
  return [records.record_from_bytes(source[i]) for i in range(len(source))]
