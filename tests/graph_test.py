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


def test_over_the_limits_raises_naming_them():
  config = graph.default_graph_config()
  config.buckets = ((16, 32, 16),)
  with pytest.raises(LimitExceeded, match="max nodes 16"):
    _graph(_compiled(0), config=config)
  config = graph.default_graph_config()
  config.max_layers = 0
  with pytest.raises(LimitExceeded, match="max_layers=0"):
    _graph(_compiled(0), config=config)
  config = graph.default_graph_config()
  config.max_index = 3  # Every model has more token rows than that.
  with pytest.raises(LimitExceeded, match="max_index=3"):
    _graph(_compiled(0), config=config)


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
