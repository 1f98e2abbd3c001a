"""The weight graph: what it holds, its limits, and the encoder's invariance."""

import dataclasses

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tracr.rasp import rasp

from compiled import params as params_lib
from compiled import compiler
from configs import data
from encoding import augment, graph, tokens
from encoding.limits import LimitExceeded
from meta_model import model as model_lib
from rasp_gen import sampler


def _sampler_config():
  config = data.get_config().sampler
  config.length = (3, 5)
  return config


def _compiled(index: int) -> compiler.CompiledModel:
  return sampler.sample_program(sampler.sampler_rng(7, index),
                                _sampler_config()).compiled


def _graph(compiled: compiler.CompiledModel, params=None, output=None,
           config=None) -> graph.WeightGraph:
  return graph.build_graph(
      params if params is not None else compiled.params,
      compiled.input_tokens, output or compiled.output_decoding,
      compiled.num_heads, config or graph.default_graph_config(),
      compiler.COMPILER_BOS, compiler.COMPILER_PAD)


def test_graph_has_a_node_per_residual_dim_and_an_edge_per_weight():
  compiled = _compiled(0)
  weight_graph = _graph(compiled)
  types = [graph.NODE_TYPES[t] for t in weight_graph.node_type]
  layout = params_lib.check_params(compiled.params)
  assert types.count("RESIDUAL") == layout.d_model
  assert types.count("TOKEN") == len(compiled.input_tokens)
  nonzero = sum(int(np.count_nonzero(a)) for m in compiled.params.values()
                for a in m.values())
  kinds = [graph.EDGE_KINDS[k] for k in weight_graph.edge_kind]
  structural = sum(k in ("HEAD_QK", "HEAD_OV", "UNEMBED") for k in kinds)
  # tracr's params hold every weight once; the graph adds head membership
  # and the unembedding.
  assert weight_graph.num_edges - structural == nonzero
  assert np.all(weight_graph.edge_value[
      np.isin(weight_graph.edge_kind, [graph.EDGE_KIND_IDS["UNEMBED"]])] == 1)
  chex.assert_equal_shape([weight_graph.edge_source, weight_graph.edge_target,
                           weight_graph.edge_value])


def test_values_are_features_only_when_asked():
  compiled = _compiled(1)
  config = graph.default_graph_config()
  with_values = _graph(compiled, config=config)
  config.use_values = False
  without = _graph(compiled, config=config)
  token = with_values.node_type == graph.NODE_TYPE_IDS["TOKEN"]
  assert len(set(with_values.node_value[token])) == token.sum()
  # BOS and PAD stay marked; every vocabulary token becomes UNKNOWN.
  assert len(set(without.node_value[token])) == 3
  np.testing.assert_array_equal(with_values.edge_value, without.edge_value)


def test_value_ids_keep_types_apart():
  assert graph.value_id(1) != graph.value_id(True)
  assert graph.value_id(0) != graph.value_id(False)
  assert graph.value_id(2.0) == graph.value_id(2)
  assert graph.value_id(0.5) != graph.value_id(0)
  assert graph.value_id("BOS", bos="BOS") != graph.value_id("x", bos="BOS")
  assert graph.value_id(10**6) == graph.value_id(10**7)


def test_value_ids_of_floats_large_ints_and_other_values():
  special = graph._SPECIAL_IDS  # pylint: disable=protected-access
  value_range = graph.VALUE_RANGE
  # Non-whole floats, NaN among them, are FLOAT; whole ones are their int.
  for value in (0.5, -2.25, np.float32(0.5), float("nan"), 255.5):
    assert graph.value_id(value) == special["FLOAT"], value
  assert graph.value_id(3.0) == graph.value_id(np.int64(3)) == graph.value_id(
      3) != graph.value_id(4)
  # Whole numbers beyond the range are clipped to a marker, however large,
  # including those a float cannot hold exactly (10**20 + 1) or at all.
  for value in (value_range + 1, 10**20 + 1, 10**400, np.uint64(2**64 - 1),
                1e300, float("inf")):
    assert graph.value_id(value) == special["ABOVE_RANGE"], value
  for value in (-value_range - 1, -(10**20) - 1, -(10**400), float("-inf")):
    assert graph.value_id(value) == special["BELOW_RANGE"], value
  in_range = [graph.value_id(v) for v in range(-value_range, value_range + 1)]
  assert len(set(in_range)) == len(in_range)
  assert not set(in_range) & set(special.values())
  assert max(in_range) == graph.NUM_VALUE_IDS - 1
  assert graph.value_id(np.bool_(True)) == special["TRUE"]
  assert graph.value_id(np.bool_(False)) == special["FALSE"]
  assert graph.value_id("PAD", "BOS", "PAD") == special["PAD"]
  assert graph.value_id("", "BOS", "PAD") == special["STRING"]
  assert graph.value_id(None) == graph.value_id((1, 2)) == special["UNKNOWN"]


def _checked(compiled: compiler.CompiledModel, params=None,
             input_tokens=None, output=None) -> params_lib.Layout:
  return graph.check_weights(
      compiled.params if params is None else params,
      compiled.input_tokens if input_tokens is None else input_tokens,
      output or compiled.output_decoding, compiled.num_heads)


def test_check_weights_returns_the_layout_or_names_what_is_wrong():
  compiled = _compiled(0)
  assert _checked(compiled) == params_lib.check_params(compiled.params)
  params = {k: dict(v) for k, v in compiled.params.items()}
  key = params_lib.mlp_key(0, "linear_1")
  params[key]["b"] = np.ones_like(params[key]["b"])
  with pytest.raises(ValueError, match="'b'] is nonzero"):
    _checked(compiled, params=params)
  with pytest.raises(ValueError, match="input tokens"):
    _checked(compiled, input_tokens=compiled.input_tokens[1:])
  # Weights in another basis would silently lose their output nodes.
  d_model = params_lib.check_params(compiled.params).d_model
  unembedded = dict(compiled.params, unembed={
      "w": np.eye(d_model, 2, dtype=np.float32),
      "b": np.zeros(2, np.float32)})
  with pytest.raises(ValueError, match="unembed matrix"):
    _checked(compiled, params=unembedded)
  d_model = params_lib.check_params(compiled.params).d_model
  output = dataclasses.replace(compiled.output_decoding, dims=tuple(
      d_model + i for i in range(len(compiled.output_decoding.dims))))
  with pytest.raises(ValueError, match="do not fit a residual stream"):
    _checked(compiled, output=output)


def _constructed(compiled: compiler.CompiledModel, use_values: bool = True
                 ) -> graph.WeightGraph:
  return graph.construct_graph(
      compiled.params, _checked(compiled), compiled.input_tokens,
      compiled.output_decoding, compiled.num_heads, use_values,
      compiler.COMPILER_BOS, compiler.COMPILER_PAD)


def _assert_same_graph(a: graph.WeightGraph, b: graph.WeightGraph) -> None:
  for field in dataclasses.fields(graph.WeightGraph):
    np.testing.assert_array_equal(getattr(a, field.name),
                                  getattr(b, field.name), strict=True)


def test_construct_graph_orders_nodes_and_is_build_graph_within_limits():
  compiled = _compiled(2)
  constructed = _constructed(compiled)
  _assert_same_graph(constructed, _graph(compiled))
  names = [graph.NODE_TYPES[t] for t in constructed.node_type]
  first = {name: names.index(name) for name in set(names)}
  assert (first["RESIDUAL"] < first["TOKEN"] < first["POSITION"]
          < min(first.get(t, len(names)) for t in ("HEAD", "NEURON"))
          < first.get("OUTPUT", first.get("OUTPUT_NUMERICAL")))
  layers = constructed.node_layer[np.isin(constructed.node_type, [
      graph.NODE_TYPE_IDS[t] for t in ("HEAD", "QK", "OV", "NEURON")])]
  assert (np.diff(layers) >= 0).all() and layers.min() >= 1
  # use_values changes node features, never edges.
  np.testing.assert_array_equal(
      _constructed(compiled, use_values=False).edge_value,
      constructed.edge_value)


def test_check_limits_names_the_limit_and_build_graph_raises_it():
  compiled = _compiled(0)
  constructed = _constructed(compiled)
  layers = _checked(compiled).num_layers
  graph.check_limits(constructed, layers, graph.default_graph_config())
  for overrides, message in [(dict(buckets=((16, 32, 16),)), "max nodes 16"),
                             (dict(max_layers=0), "max_layers=0"),
                             # Every model has more token rows than that.
                             (dict(max_index=3), "max_index=3")]:
    config = graph.default_graph_config()
    config.update(overrides)
    with pytest.raises(LimitExceeded, match=message):
      graph.check_limits(constructed, layers, config)
    with pytest.raises(LimitExceeded, match=message):
      _graph(compiled, config=config)
    # The same answer without an exception, for callers that only ask.
    args = (compiled.params, compiled.input_tokens, compiled.output_decoding,
            compiled.num_heads, config, compiler.COMPILER_BOS,
            compiler.COMPILER_PAD)
    assert message in graph.limit_problem(*args)
    assert not graph.fits(*args)
  assert graph.exceeded_limit(constructed, layers,
                              graph.default_graph_config()) is None
  assert graph.fits(compiled.params, compiled.input_tokens,
                    compiled.output_decoding, compiled.num_heads,
                    graph.default_graph_config(), compiler.COMPILER_BOS,
                    compiler.COMPILER_PAD)
  # max_index names what is over it and the model's size.
  tokens, positions = (int(np.sum(constructed.node_type
                                  == graph.NODE_TYPE_IDS[t]))
                       for t in ("TOKEN", "POSITION"))
  config = graph.default_graph_config()
  config.max_index = min(tokens, positions) - 1
  assert graph.exceeded_limit(constructed, layers, config) == (
      f"the model has {tokens} token-embedding rows (a vocab of "
      f"{tokens - 2}, BOS and PAD) and {positions} positions (max_seq_len "
      f"{positions - 1} and BOS); token, position and output ranks are "
      f"embedded below max_index={config.max_index}, so at most "
      f"{config.max_index} of each")


def _permuted_neurons_and_head_dims(params, rng):
  """The same model with MLP hidden units and head dimensions reordered."""
  params = {k: dict(v) for k, v in params.items()}
  layout = params_lib.check_params(params)
  for layer in range(layout.num_layers):
    hidden = rng.permutation(layout.mlp_hidden[layer])
    key1, key2 = (params_lib.mlp_key(layer, n) for n in params_lib.MLP)
    params[key1]["w"] = params[key1]["w"][:, hidden]
    params[key2]["w"] = params[key2]["w"][hidden]
    width = rng.permutation(layout.attn_width[layer])  # One head here.
    for name in ("query", "key", "value"):
      params[params_lib.attn_key(layer, name)]["w"] = params[
          params_lib.attn_key(layer, name)]["w"][:, width]
    linear = params_lib.attn_key(layer, "linear")
    params[linear]["w"] = params[linear]["w"][width]
  return params


def _logits(model, weight_graph, program_1xRx5):
  batch = {k: jnp.asarray(v) for k, v in graph.batch_graphs(
      [weight_graph], graph.default_graph_config().buckets).items()}
  batch["program"] = jnp.asarray(program_1xRx5)
  return np.asarray(model(batch, deterministic=True))


@pytest.mark.parametrize("index", [0, 3])
def test_encoder_is_invariant_to_residual_neuron_and_head_permutations(index):
  compiled = _compiled(index)
  rng = np.random.default_rng(index)
  vocabulary = tokens.vocabulary_for_rows(8)
  config = model_lib.default_model_config()
  config.update(num_layers=2, num_heads=2, d_model=32, mlp_dim=64, max_rows=8)
  model = model_lib.MetaModel(
      config, vocabulary.size, vocabulary.column_masks,
      graph_bounds=graph.feature_bounds(graph.default_graph_config()),
      rngs=nnx.Rngs(0))
  # Read as one head per layer, so that every head dimension may be permuted.
  single_head = dataclasses.replace(compiled, num_heads=1)
  d_model = params_lib.check_params(compiled.params).d_model
  permutation_DxD = augment.random_permutation(rng, d_model)
  params = _permuted_neurons_and_head_dims(
      augment.change_residual_basis(single_head.params, permutation_DxD), rng)
  output = dataclasses.replace(compiled.output_decoding, dims=tuple(
      int(np.argmax(permutation_DxD[d]))
      for d in compiled.output_decoding.dims))
  program_1xRx5 = tokens.encode_program(
      sampler.sample_program(sampler.sampler_rng(7, index),
                             _sampler_config()).program, 8)[None]

  original = _logits(model, _graph(single_head), program_1xRx5)
  permuted = _logits(model, _graph(single_head, params, output), program_1xRx5)
  assert not np.allclose(original, 0)
  np.testing.assert_allclose(permuted, original, rtol=1e-4, atol=1e-4)


def test_a_hand_written_model_of_published_size_fits_the_default_limits():
  """Wide, deep hand-written models (here ~200 residual dims) are admitted."""
  program = rasp.tokens
  for i in range(8):  # Eight layers of categorical Maps over 13 values.
    program = rasp.Map(lambda x, i=i: (x + i) % 13, program, simplify=False)
  compiled = compiler.compile_rasp_to_model_numpy(program, set(range(12)), 8)
  layout = params_lib.check_params(compiled.params)
  assert layout.d_model > 100
  weight_graph = _graph(compiled)
  assert weight_graph.num_nodes <= graph.default_graph_config().buckets[-1][0]


def _batch_one_by_one(graphs, buckets):
  """The union of `graphs` built example by example: the definition that
  `graph.take_batch` vectorises."""
  b = len(graphs)
  summaries = [graph.summary_nodes(g) for g in graphs]
  total_nodes = sum(g.num_nodes for g in graphs)
  total_edges = sum(g.num_edges for g in graphs)
  nodes, edges, summary = next(
      (n, e, s) for n, e, s in buckets if total_nodes <= n * b
      and total_edges <= e * b and max(map(len, summaries)) <= s)
  offsets = np.cumsum([0] + [g.num_nodes for g in graphs])
  pad = lambda a, n: np.pad(a, (0, n - len(a)))
  out = {}
  for field in dataclasses.fields(graph.WeightGraph):
    parts = [getattr(g, field.name) for g in graphs]
    if field.name in ("edge_source", "edge_target"):
      parts = [p + o for p, o in zip(parts, offsets)]
    size = nodes * b if field.name.startswith("node_") else edges * b
    out[field.name] = pad(np.concatenate(parts), size).astype(
        np.float32 if field.name == "edge_value" else np.int32)
  out["node_mask"] = np.arange(nodes * b) < total_nodes
  out["edge_mask"] = np.arange(edges * b) < total_edges
  out["summary_index"] = np.stack([pad(x + o, summary) for x, o in zip(
      summaries, offsets)]).astype(np.int32)
  out["summary_mask"] = np.arange(summary)[None] < np.array(
      [len(x) for x in summaries])[:, None]
  return out


def test_take_batch_is_the_union_built_one_graph_at_a_time():
  graphs = [_graph(_compiled(i)) for i in range(6)]
  graph_set = graph.concatenate_graphs(graphs)
  assert len(graph_set) == 6
  buckets = ((40, 80, 30), (100, 200, 60), (400, 900, 200))
  rng = np.random.default_rng(0)
  for size in (1, 2, 5, 9):
    ids = rng.choice(6, size)  # Repeats too: a batch may hold one twice.
    taken = graph.take_batch(graph_set, ids, buckets)
    expected = _batch_one_by_one([graphs[i] for i in ids], buckets)
    assert taken.keys() == expected.keys()
    for key, value in expected.items():
      np.testing.assert_array_equal(taken[key], value, err_msg=key,
                                    strict=True)
  with pytest.raises(LimitExceeded, match="fit no bucket"):
    graph.take_batch(graph_set, np.arange(6), buckets[:1])
