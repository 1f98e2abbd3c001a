"""The grain input pipeline: batch format, exact resume, shards and drops."""

import functools
import json

import chex
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from compiled import compiler
from configs import data
from encoding import graph, pipeline, synthetic, tokens, weights
from rasp_gen import convert, records, sampler
from rasp_gen.program import (Instruction, Operator, Program, Table,
                              canonicalize)

KEYS = {"blocks", "block_layer", "block_kind", "block_position",
        "block_is_last", "block_shape", "block_mask", "program",
        "program_mask"}


@pytest.fixture(scope="module")
def source() -> list[bytes]:
  return synthetic.record_source(21, 24, data.get_config().sampler)


def configs(attention_form: str = "raw", augment: str = "none",
            buckets: tuple[int, ...] = (256, 512, 1024), **overrides
            ) -> ml_collections.ConfigDict:
  """A small block-encoder config (input, blocks and graph groups) for tests;
  `overrides` go to the input group."""
  config = ml_collections.ConfigDict()
  config.input = pipeline.default_input_config()
  config.input.update(encoder="blocks", batch_size=4)
  config.input.update(overrides)
  config.blocks = weights.default_blocks_config()
  config.blocks.update(attention_form=attention_form, augment=augment,
                       buckets=buckets, max_blocks=buckets[-1])
  config.graph = graph.default_graph_config()
  return config


def graph_configs(buckets=((60, 120, 40), (120, 300, 80)), **overrides
                  ) -> ml_collections.ConfigDict:
  """A graph-encoder config whose last bucket drops about a third of
  `source`; `overrides` go to the input group."""
  config = configs(encoder="graph", **overrides)
  config.graph.buckets = buckets
  return config


def _take(iterator, count: int) -> list[dict]:
  return [jax.tree.map(np.asarray, next(iterator)) for _ in range(count)]


def _epoch(dataset) -> list[dict]:
  return [jax.tree.map(np.asarray, b) for b in dataset]


def _assert_same(first: list[dict], second: list[dict]) -> None:
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)


@pytest.mark.parametrize("form", weights.ATTENTION_FORMS)
def test_batches_have_the_documented_format(source, form):
  config = configs(attention_form=form)
  canonical = {str(canonicalize(records.record_from_bytes(b).program))
               for b in source}
  pad = tokens.vocabulary_for_rows(config.input.max_rows).ids["PAD"]
  seen_buckets = set()
  for batch in _take(iter(pipeline.make_dataset(
      source, config)), 5):
    assert set(batch) == KEYS
    n = batch["blocks"].shape[1]
    seen_buckets.add(n)
    assert n in config.blocks.buckets
    spec = pipeline.element_spec(config, n)
    for key, value in batch.items():
      chex.assert_shape(value, spec[key].shape)
      chex.assert_type(value, spec[key].dtype)
    count_B = batch["block_mask"].sum(axis=1)
    assert (count_B > 0).all()
    # The mask is a prefix, and marks exactly the non-padding blocks.
    np.testing.assert_array_equal(
        batch["block_mask"], np.arange(n)[None] < count_B[:, None])
    np.testing.assert_array_equal(batch["block_mask"], batch["block_kind"] > 0)
    assert not batch["blocks"][~batch["block_mask"]].any()
    # The smallest bucket that fits the largest model.
    assert n == min(b for b in config.blocks.buckets
                    if b >= count_B.max())
    np.testing.assert_array_equal(batch["program_mask"],
                                  (batch["program"] != pad).any(axis=2))
    for program_RxC in batch["program"]:
      assert str(tokens.decode_program(program_RxC)) in canonical
  assert len(seen_buckets) > 1


def test_graph_batches_are_one_padded_union_of_the_examples(source):
  config = configs(encoder="graph")
  b = config.input.batch_size
  batch = _take(iter(pipeline.make_dataset(source, config)), 1)[0]
  nodes, edges = batch["node_type"].shape[0], batch["edge_kind"].shape[0]
  bucket = [x for x in config.graph.buckets if x[0] * b == nodes]
  assert len(bucket) == 1 and bucket[0][1] * b == edges
  chex.assert_shape([batch[k] for k in ("node_layer", "node_index",
                                        "node_value", "node_mask")], (nodes,))
  chex.assert_shape([batch[k] for k in ("edge_source", "edge_target",
                                        "edge_value", "edge_mask")], (edges,))
  chex.assert_shape(batch["summary_mask"], (b, bucket[0][2]))
  chex.assert_shape(batch["program"], (b, config.input.max_rows, 5))
  # Real nodes are a prefix, padding is PAD-typed, and edges stay inside
  # the real nodes; every example's summary nodes are its own, disjoint.
  count = batch["node_mask"].sum()
  np.testing.assert_array_equal(batch["node_mask"], np.arange(nodes) < count)
  assert (batch["node_type"][batch["node_mask"]] > 0).all()
  assert not batch["node_type"][~batch["node_mask"]].any()
  live = batch["edge_mask"]
  assert batch["edge_source"][live].max() < count
  assert batch["edge_target"][live].max() < count
  summary = [set(i[m]) for i, m in zip(batch["summary_index"],
                                       batch["summary_mask"])]
  assert all(summary) and sum(map(len, summary)) == len(set().union(*summary))


def test_batches_are_jax_arrays(source):
  batch = next(iter(pipeline.make_dataset(source, configs())))
  assert all(isinstance(v, jax.Array) for v in batch.values())
  assert batch["blocks"].dtype == jnp.float32


_PATHS = {"blocks": configs,
          "blocks-permute": functools.partial(configs, augment="permute"),
          "graph-cached": graph_configs}


@pytest.mark.parametrize("path", _PATHS)
def test_resume_from_a_saved_state_is_exact(source, path):
  iterator = iter(pipeline.make_dataset(source, _PATHS[path]()))
  _take(iterator, 3)
  state = json.loads(json.dumps(iterator.get_state()))  # As a checkpoint.
  expected = _take(iterator, 8)  # Crosses an epoch boundary.
  resumed = iter(pipeline.make_dataset(source, _PATHS[path]()))
  resumed.set_state(state)
  _assert_same(_take(resumed, 8), expected)


@pytest.mark.parametrize("overrides", [
    dict(), dict(seed=3, batch_size=3), dict(batch_size=5, num_epochs=3)])
@pytest.mark.parametrize("process", [None, 0, 1])
def test_cached_batches_are_the_per_example_batches(source, overrides,
                                                    process, monkeypatch):
  """The same examples in the same order, as the same padded arrays, across
  epoch boundaries, with records dropped, on every process's shard: the
  cache changes how fast batches come, not what the model sees."""
  if process is not None:
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: process)
  config = graph_configs(**overrides)
  dropped = sum(d for d, _ in pipeline.drops_by_length(source,
                                                       config).values())
  assert 0 < dropped < len(source) / 2
  cached = pipeline.make_dataset(source, config)
  per_example = pipeline.make_dataset(source, graph_configs(cache=False,
                                                            **overrides))
  if config.input.num_epochs:  # Both end after the same batches.
    _assert_same(_epoch(cached), _epoch(per_example))
  else:
    _assert_same(_take(iter(cached), 12), _take(iter(per_example), 12))


def test_seed_changes_the_order(source):
  first = _take(iter(pipeline.make_dataset(source, configs(seed=0))), 2)
  second = _take(iter(pipeline.make_dataset(source, configs(seed=1))), 2)
  assert not all(np.array_equal(a["program"], b["program"])
                 for a, b in zip(first, second))


def _fingerprints(batches: list[dict]) -> list[bytes]:
  return [b["program"][i].tobytes() + b["blocks"][i].tobytes()
          for b in batches for i in range(len(b["program"]))]


def test_processes_read_disjoint_shards(source, monkeypatch):
  config = configs(batch_size=1, num_epochs=1)
  everything = _fingerprints(_epoch(pipeline.make_dataset(
      source, config)))
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shards = []
  for index in range(2):
    monkeypatch.setattr(jax, "process_index", lambda i=index: i)
    shards.append(_fingerprints(_epoch(pipeline.make_dataset(
        source, config))))
  assert not set(shards[0]) & set(shards[1])
  assert sorted(shards[0] + shards[1]) == sorted(everything)


def test_oversized_records_are_dropped_and_counted(source):
  config = configs(batch_size=1, num_epochs=1, buckets=(256,))
  drops = pipeline.drops_by_length(source, config)
  assert sum(total for _, total in drops.values()) == len(source)
  num_dropped = sum(dropped for dropped, _ in drops.values())
  assert 0 < num_dropped < len(source)
  kept = _epoch(pipeline.make_dataset(source, config))
  assert len(kept) == len(source) - num_dropped
  # Longer programs compile to larger models, so they are dropped more.
  lengths = sorted(drops)
  assert drops[lengths[0]][0] / drops[lengths[0]][1] <= (
      drops[lengths[-1]][0] / drops[lengths[-1]][1])


def test_augmentation_moves_weights_and_keeps_programs(source):
  plain = _take(iter(pipeline.make_dataset(source, configs())), 2)
  permuted = _take(iter(pipeline.make_dataset(
      source, configs(augment="permute"))), 2)
  for a, b in zip(plain, permuted):
    np.testing.assert_array_equal(a["program"], b["program"])
    np.testing.assert_array_equal(a["block_kind"], b["block_kind"])
    assert not np.array_equal(a["blocks"], b["blocks"])
    # Feature blocks are residual vectors: permuting reorders each one.
    np.testing.assert_array_equal(np.sort(a["blocks"], axis=-1),
                                  np.sort(b["blocks"], axis=-1))


@pytest.mark.parametrize("augment", ["permute", "rotate"])
def test_products_survive_augmentation(source, augment):
  plain = _take(iter(pipeline.make_dataset(
      source, configs(attention_form="products"))), 2)
  augmented = _take(iter(pipeline.make_dataset(
      source, configs(attention_form="products", augment=augment))), 2)
  for a, b in zip(plain, augmented):
    np.testing.assert_array_equal(a["program"], b["program"])
    np.testing.assert_array_equal(a["block_kind"], b["block_kind"])
    np.testing.assert_array_equal(a["block_shape"], b["block_shape"])
    assert not np.array_equal(a["blocks"], b["blocks"])
    # A residual basis change B maps W_QK and W_OV to Bᵀ W B, every other
    # matrix to W B or Bᵀ W: no matrix's Frobenius norm changes.
    np.testing.assert_allclose(np.square(a["blocks"]).sum(axis=(1, 2)),
                               np.square(b["blocks"]).sum(axis=(1, 2)),
                               rtol=1e-5)


def test_products_use_each_records_num_heads():
  config = configs(attention_form="products",
                                         batch_size=2)
  record = synthetic.to_record(synthetic.two_heads_sample(), 0)
  data = records.record_to_bytes(record)
  assert records.record_from_bytes(data).num_heads == 2
  batch = _take(iter(pipeline.make_dataset(
      [data] * 2, config)), 1)[0]
  expected = weights.encode_weights(record.params, config.blocks, 2)
  n = batch["blocks"].shape[1]
  for key, value in vars(expected).items():
    np.testing.assert_array_equal(batch[key][0], value[:n], err_msg=key)


@pytest.mark.parametrize("path", ["blocks", "graph-cached"])
def test_worker_processes_give_the_same_batches(source, path):
  # grain's workers read absl flags, which absl's app.run parses in a binary.
  flags.FLAGS.mark_as_parsed()
  make_config = _PATHS[path]
  in_process = _take(iter(pipeline.make_dataset(source, make_config())), 4)
  iterator = iter(pipeline.make_dataset(source, make_config(num_workers=1)))
  try:
    _assert_same(_take(iterator, 2), in_process[:2])
    state = iterator.get_state()
  finally:
    iterator.close()
  resumed = iter(pipeline.make_dataset(source, make_config(num_workers=1)))
  try:
    resumed.set_state(state)
    _assert_same(_take(resumed, 2), in_process[2:])
  finally:
    resumed.close()


@pytest.mark.parametrize("overrides, message", [
    (dict(buckets=(256, 512)), "end at max_blocks=1024"),
    (dict(buckets=(512, 256, 1024)), "must increase"),
    (dict(augment="flip"), "augment must be one of"),
])
def test_bad_configs_raise(source, overrides, message):
  config = configs()
  config.blocks.update(overrides)
  with pytest.raises(ValueError, match=message):
    pipeline.make_dataset(source, config)


def test_records_with_a_table_are_dropped_and_counted(source):
  """A valid program the token vocabulary cannot express (a table function)
  is dropped and counted like one over the size limits, not an error."""
  table = Program((
      Instruction(Operator.MAP, Table(((("a",), 2), (("b",), 0),
                                       (("c",), 2))), ("tokens",), "v1"),
      Instruction(Operator.SEQUENCE_MAP, "LAM_ADD", ("v1", "indices"), "v2")))
  compiled = compiler.compile_rasp_to_model_numpy(convert.to_rasp(table),
                                                  {"a", "b", "c"}, 4)
  table_record = records.record_to_bytes(synthetic.to_record(
      sampler.SampledProgram(table, ("a", "b", "c"), 4, compiled), 99))
  mixed = list(source[:4]) + [table_record] + list(source[4:8])
  config = graph_configs(batch_size=1, num_epochs=1, cache=False)
  drops = pipeline.drops_by_length(mixed, config)
  assert drops[2][0] >= 1 and sum(d for d, _ in drops.values()) == (
      1 + sum(d for d, _ in pipeline.drops_by_length(
          list(source[:8]), config).values()))
  kept = _epoch(pipeline.make_dataset(mixed, config))
  assert len(kept) == len(mixed) - sum(d for d, _ in drops.values())
