"""encoding/cache.py: a split encoded once, kept next to its dataset, safely."""

import functools
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from configs import tiny
from encoding import cache, graph, pipeline
from encoding.limits import LimitExceeded
from rasp_gen import dataset, generate, records

# Leaves about a third of the tiny dataset's training records over the limit.
_BUCKETS = ((50, 100, 40), (120, 300, 90))
_SETTINGS = {"encoder": "graph", "buckets": _BUCKETS}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
  path = str(tmp_path_factory.mktemp("generated"))
  generate.generate(tiny.get_config().data, path)
  return path


@pytest.fixture
def data_dir(generated, tmp_path) -> str:
  """A fresh copy of the dataset, without a cache."""
  return shutil.copytree(generated, str(tmp_path / "data"))


def _config():
  config = tiny.get_config()
  config.graph.buckets = _BUCKETS
  return config


def _encode_record(config=None) -> cache.EncodeRecord:
  return functools.partial(pipeline.encode_record, config=config or _config())


def _refuse(record):
  raise AssertionError("the cache should have been read, not rebuilt")


def _assert_same(a: cache.EncodedSplit, b: cache.EncodedSplit) -> None:
  np.testing.assert_array_equal(a.row, b.row, strict=True)
  for name in ("node_start", "edge_start"):
    np.testing.assert_array_equal(getattr(a.graphs, name),
                                  getattr(b.graphs, name), strict=True)
  for key, value in vars(a.graphs.union).items():
    np.testing.assert_array_equal(value, getattr(b.graphs.union, key),
                                  strict=True)
  assert a.arrays.keys() == b.arrays.keys()
  for key, value in a.arrays.items():
    np.testing.assert_array_equal(value, b.arrays[key], strict=True)


def test_encode_keeps_each_record_that_fits_in_order(data_dir):
  source = dataset.data_source(data_dir, "train")
  encoded = cache.encode(source, _encode_record())
  assert len(encoded.row) == len(source)
  assert 0 < (encoded.row < 0).sum() < len(source) / 2
  kept = np.flatnonzero(encoded.row >= 0)
  np.testing.assert_array_equal(encoded.row[kept], np.arange(len(kept)))
  examples = []
  for i in range(len(source)):
    try:
      examples.append(_encode_record()(records.record_from_bytes(source[i])))
    except LimitExceeded:
      assert encoded.row[i] < 0
  # A batch cut from the split is the batch of the same examples.
  rows = np.array([3, 0, 5, 5])
  taken = encoded.take(rows, _BUCKETS)
  expected = pipeline.batch_examples([examples[r] for r in rows], _config())
  assert taken.keys() == expected.keys()
  for key, value in expected.items():
    np.testing.assert_array_equal(taken[key], value, err_msg=key, strict=True)


def test_a_split_is_encoded_once_next_to_its_dataset(data_dir):
  source = dataset.data_source(data_dir, "train")
  built = cache.load_or_build(source, _SETTINGS, _encode_record())
  _assert_same(built, cache.encode(source, _encode_record()))
  assert os.path.dirname(built.path) == os.path.join(data_dir,
                                                     cache.CACHE_DIR)
  assert os.listdir(os.path.join(data_dir, cache.CACHE_DIR)) == [
      os.path.basename(built.path)]
  with open(os.path.join(built.path, "cache.json")) as f:
    assert json.load(f)["kept"] == (built.row >= 0).sum()
  _assert_same(cache.load_or_build(source, _SETTINGS, _refuse), built)
  dataset.check_shards(data_dir)  # The dataset itself is untouched.


def test_settings_shards_and_code_name_the_cache(data_dir, monkeypatch):
  source = dataset.data_source(data_dir, "train")
  path = cache.cache_path(source, _SETTINGS)
  assert cache.cache_path(source, dict(_SETTINGS)) == path
  assert cache.cache_path(source, dict(_SETTINGS, max_rows=9)) != path
  assert cache.cache_path(dataset.data_source(data_dir, "validation"),
                          _SETTINGS) != path
  manifest_path = os.path.join(data_dir, dataset.MANIFEST)
  with open(manifest_path) as f:
    manifest = json.load(f)
  manifest["shards"][0]["sha256"] = "0" * 64  # A regenerated shard.
  with open(manifest_path, "w") as f:
    json.dump(manifest, f)
  assert cache.cache_path(source, _SETTINGS) != path
  monkeypatch.setattr(cache, "_code_digest", lambda: "edited")
  assert len({path, cache.cache_path(source, _SETTINGS)}) == 2


def test_a_concurrent_writer_that_renames_first_wins(data_dir):
  """Another process finishes the same cache while this one encodes: this
  one discards its copy and reads theirs."""
  source = dataset.data_source(data_dir, "train")
  encode_record = _encode_record()
  other = []

  def encode_racing(record):
    if not other:
      other.append(cache.load_or_build(source, _SETTINGS, encode_record))
    return encode_record(record)

  ours = cache.load_or_build(source, _SETTINGS, encode_racing)
  assert ours.path == other[0].path
  _assert_same(ours, other[0])
  assert os.listdir(os.path.dirname(ours.path)) == [
      os.path.basename(ours.path)]  # No staging folder is left.


def test_pickling_reopens_a_cache_instead_of_copying_it(data_dir):
  source = dataset.data_source(data_dir, "train")
  loaded = cache.load_or_build(source, _SETTINGS, _encode_record())
  data = pickle.dumps(loaded)
  assert len(data) < 1000
  _assert_same(pickle.loads(data), loaded)
  in_memory = cache.encode(source, _encode_record())
  _assert_same(pickle.loads(pickle.dumps(in_memory)), in_memory)


def test_training_batches_from_a_dataset_come_from_its_cache(data_dir):
  config = _config()
  config.input.num_epochs = 2
  source = dataset.data_source(data_dir, "train")
  batches = list(pipeline.make_dataset(source, config))
  # make_dataset built the cache; the dataset's own settings name it.
  (name,) = os.listdir(os.path.join(data_dir, cache.CACHE_DIR))
  with open(os.path.join(data_dir, cache.CACHE_DIR, name, "cache.json")) as f:
    assert json.load(f)["settings"]["graph"] == graph.default_graph_config(
    ).to_dict() | {"buckets": [list(b) for b in _BUCKETS]}
  config.input.cache = False
  expected = list(pipeline.make_dataset(source, config))
  assert len(batches) == len(expected) > 0
  for a, b in zip(batches, expected):
    for key in b:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)
