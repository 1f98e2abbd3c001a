"""The sampler's contract: valid, canonical, non-degenerate, faithful to its
weights, deterministic."""

import collections

import networkx

import numpy as np
import pytest
from tracr.compiler import validating
from tracr.rasp import rasp

from compiled import inputs as inputs_lib
from compiled import compiler
from configs import data
from encoding import graph
from rasp_gen import convert, sampler
from rasp_gen.program import (Encoding, Instruction, Operator, Program,
                              canonicalize, validate)


def _samples(seed: int, count: int, config=None):
  config = config or data.get_config().sampler
  return [sampler.sample_program(sampler.sampler_rng(seed, i), config)
          for i in range(count)]


def test_same_seed_and_index_give_the_same_program():
  assert _samples(7, 20) == _samples(7, 20)
  assert _samples(7, 20) != _samples(8, 20)


def test_samples_are_canonical_valid_and_within_the_config():
  config = data.get_config().sampler
  for sample in _samples(0, 200):
    validate(sample.program)
    assert canonicalize(sample.program) == sample.program  # No dead code.
    assert config.length[0] <= len(sample.program) <= config.length[1]
    assert config.vocab_size[0] <= len(sample.vocab) <= config.vocab_size[1]
    assert config.max_seq_len[0] <= sample.max_seq_len <= config.max_seq_len[1]


def test_samples_are_not_constant_and_pass_dynamic_validation():
  rng = np.random.default_rng(0)
  for sample in _samples(3, 100):
    sop = convert.to_rasp(sample.program)
    inputs = inputs_lib.random_inputs(rng, sample.vocab, sample.max_seq_len, 32)
    full = [xs for xs in inputs if len(xs) == sample.max_seq_len]
    outputs = {tuple(rasp.evaluate(sop, xs)) for xs in full}
    assert len(outputs) > 1 or len(full) < 4, sample.program
    for xs in inputs[:4]:
      assert not validating.validate(sop, xs)


def test_every_operator_and_length_appears():
  samples = _samples(5, 200)
  config = data.get_config().sampler
  lengths = collections.Counter(len(s.program) for s in samples)
  assert set(lengths) == set(range(config.length[0], config.length[1] + 1))
  operators = collections.Counter(
      i.operator for s in samples for i in s.program.instructions)
  assert set(operators) == set(Operator)
  numerical = sum(i.encoding.value == "numerical"
                  for s in samples for i in s.program.instructions)
  assert numerical > 0


def test_length_config_is_respected():
  config = data.get_config().sampler
  config.length = (5, 5)
  assert {len(s.program) for s in _samples(0, 20, config)} == {5}


def _program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


# tracr miscompiles both, silently: dynamic validation accepts them.
WIDTH = _program((Operator.SELECT, "PRED_TRUE", ("tokens", "tokens"), "v1"),
                 (Operator.SELECTOR_WIDTH, None, ("v1",), "v2"))
NEGATIVE = _program((Operator.MAP, "LAM_SUB_3", ("tokens",), "v1",
                     Encoding.NUMERICAL))


def _first_unfaithful(program, vocab, max_seq_len, inputs):
  sop = convert.to_rasp(program)
  compiled = compiler.compile_rasp_to_model_numpy(sop, set(vocab),
                                                  max_seq_len)
  return sampler.first_unfaithful(sop, compiled, inputs)


def test_selector_width_of_ten_is_unfaithful_at_max_seq_len_ten():
  inputs = inputs_lib.check_inputs(np.random.default_rng(0), (0, 1, 2), 10,
                                num_random=4, exhaustive_limit=500)
  assert _first_unfaithful(WIDTH, (0, 1, 2), 9, [
      xs[:9] for xs in inputs]) is None
  xs, from_weights, from_program = _first_unfaithful(WIDTH, (0, 1, 2), 10,
                                                     inputs)
  assert len(xs) == 10 and from_weights == [9] * 10
  assert from_program == [10] * 10


def test_negative_numerical_map_is_unfaithful():
  xs, from_weights, from_program = _first_unfaithful(
      NEGATIVE, (0, 1, 2, 3, 4), 4, [[4, 0]])
  assert (xs, from_weights, from_program) == ([4, 0], [1.0, 0.0], [1, -3])
  assert _first_unfaithful(NEGATIVE, (3, 4, 5), 4, [[4, 3, 5]]) is None


def test_aggregate_that_selects_nothing_decodes_to_none():
  # RASP's None (no index equals tokens + 3) is the weights' empty output.
  lookup = _program((Operator.MAP, "LAM_ADD_3", ("tokens",), "v1"),
                    (Operator.SELECT, "PRED_EQ", ("indices", "v1"), "v2"),
                    (Operator.AGGREGATE, None, ("v2", "tokens"), "v3"))
  inputs = inputs_lib.check_inputs(None, (0, 1), 5, 0, exhaustive_limit=100)
  assert rasp.evaluate(convert.to_rasp(lookup), [0, 1, 0, 1]) == [
      1, None, 1, None]
  assert _first_unfaithful(lookup, (0, 1), 5, inputs) is None


def test_samples_are_faithful_and_rejections_are_counted(monkeypatch):
  config = data.get_config().sampler
  config.vocab_size, config.max_seq_len = (3, 3), (4, 5)  # Exhaustive.
  samples = _samples(0, 20, config)
  for sample in samples:
    inputs = inputs_lib.check_inputs(None, sample.vocab, sample.max_seq_len, 0,
                                  exhaustive_limit=500)
    assert sampler.first_unfaithful(convert.to_rasp(sample.program),
                                    sample.compiled, inputs) is None
  rejections = collections.Counter()
  for sample in _samples(0, 40):
    rejections.update(sample.rejections)
  assert set(rejections) <= set(sampler.REJECTIONS)
  assert rejections["unfaithful"] > 0 and rejections["invalid"] > 0
  # With every program unfaithful, sampling gives up, with the counts.
  monkeypatch.setattr(sampler, "first_unfaithful",
                      lambda *args, **kwargs: ([0], [1], [2]))
  config.max_attempts = 30
  with pytest.raises(sampler.SamplingError, match="in 30 attempts") as error:
    sampler.sample_program(sampler.sampler_rng(0, 0), config)
  assert sum(error.value.rejections.values()) == 30
  assert error.value.rejections["unfaithful"] >= 1


def _weight_graph_hash(sample) -> str:
  """Weisfeiler-Lehman hash of the sample's weight graph (encoding/graph.py):
  equal for the same weights up to residual and neuron order."""
  weight_graph = graph.build_graph(
      sample.compiled.params, sample.compiled.input_tokens,
      sample.compiled.output_decoding, sample.compiled.num_heads,
      graph.default_graph_config(), compiler.COMPILER_BOS,
      compiler.COMPILER_PAD)
  nx_graph = networkx.DiGraph()
  for n in range(weight_graph.num_nodes):
    nx_graph.add_node(n, label=str((
        weight_graph.node_type[n], weight_graph.node_layer[n],
        weight_graph.node_index[n], weight_graph.node_value[n])))
  for e in range(weight_graph.num_edges):
    nx_graph.add_edge(int(weight_graph.edge_source[e]),
                      int(weight_graph.edge_target[e]), label=str((
                          weight_graph.edge_kind[e],
                          round(float(weight_graph.edge_value[e]), 4))))
  return networkx.weisfeiler_lehman_graph_hash(
      nx_graph, node_attr="label", edge_attr="label", iterations=6)


def test_canonical_labels_rename_without_changing_the_weights():
  plain_config = data.get_config().sampler
  plain_config.canonical_labels = False
  canonical_config = data.get_config().sampler
  canonical_config.canonical_labels = True
  plain = _samples(11, 60, plain_config)
  canonical = _samples(11, 60, canonical_config)
  renamed = 0
  rng = np.random.default_rng(0)
  for a, b in zip(plain, canonical):
    assert (a.vocab, a.max_seq_len) == (b.vocab, b.max_seq_len)
    assert len(a.program) == len(b.program)
    renamed += a.program != b.program
    for xs in inputs_lib.random_inputs(rng, a.vocab, a.max_seq_len, 8):
      assert (rasp.evaluate(convert.to_rasp(a.program), xs)
              == rasp.evaluate(convert.to_rasp(b.program), xs))
    assert a.compiled.output_decoding == b.compiled.output_decoding
    assert _weight_graph_hash(a) == _weight_graph_hash(b), (a.program,
                                                           b.program)
  assert renamed >= 10, renamed  # Most programs with a SequenceMap.
