"""readout.mlps: MLPs as Maps, SequenceMaps and widths, read by probing."""

import numpy as np
from tracr.rasp import rasp

from rasp_gen.program import Encoding, Linear, Operator
from readout import attention, mlps
from readout_helpers import started

_T = rasp.tokens


def _read_layer(state, layer=0):
  mlps.read_mlp(state, layer, attention.read_attention(state, layer))


def test_a_categorical_map_is_a_table_over_directions():
  state = started(rasp.Map(lambda x: x % 2, _T), {1, 2, 3}, 3)
  _read_layer(state)
  (instruction,) = state.instructions
  assert instruction.operator == Operator.MAP
  assert instruction.encoding == Encoding.CATEGORICAL
  output = state.variables[instruction.output]
  assert len(output.dims) == 2
  token_dims = dict(zip(state.variables["tokens"].values,
                        state.variables["tokens"].dims))
  table = instruction.function.table
  assert table[(token_dims[1],)] == table[(token_dims[3],)]
  assert table[(token_dims[1],)] != table[(token_dims[2],)]


def test_a_numerical_map_reads_its_values():
  state = started(rasp.numerical(rasp.Map(lambda x: 4 if x == "a" else 2, _T)),
                  {"a", "b"}, 3)
  _read_layer(state)
  (instruction,) = state.instructions
  assert instruction.encoding == Encoding.NUMERICAL
  assert sorted(instruction.function.table.values()) == [2, 4]


def test_a_linear_sequence_map_reads_its_factors():
  frac = lambda token: rasp.numerical(rasp.Aggregate(
      rasp.Select(_T, _T, rasp.Comparison.TRUE),
      rasp.numerical(rasp.Map(lambda x: 1 if x == token else 0, _T)),
      default=0))
  both = rasp.numerical(rasp.LinearSequenceMap(frac("a"), frac("b"), 3, -1))
  state = started(both, {"a", "b"}, 3)
  for layer in range(state.layout.num_layers):
    _read_layer(state, layer)
  linear = state.instructions[-1]
  assert linear.operator == Operator.SEQUENCE_MAP
  assert isinstance(linear.function, Linear)
  assert {linear.function.fst_factor, linear.function.snd_factor} == {3, -1}


def test_a_selector_width_reads_one_direction_per_width():
  state = started(rasp.SelectorWidth(rasp.Select(_T, _T, rasp.Comparison.EQ)),
                  {"a", "b"}, 3)
  _read_layer(state)
  width = state.instructions[-1]
  assert width.operator == Operator.SELECTOR_WIDTH
  assert sorted(state.variables[width.output].values) == [0, 1, 2, 3]


def test_width_values_give_the_least_width_that_turns_a_direction_on():
  on_WxO = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], bool)
  assert mlps.width_values(on_WxO) == [1, 0, 2]
  # One direction on for two widths, another for none: it takes the rest.
  on_WxO = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]], bool)
  assert mlps.width_values(on_WxO) == [0, 1, 2]
  assert mlps.width_values(np.array([[1, 1], [0, 0]], bool)) is None


def test_a_width_turns_on_its_largest_direction_above_a_half():
  out_WxO = np.array([[1.0, 0.6, 0.0], [0.2, 0.9, -0.2], [0.1, 0.3, 0.4]])
  np.testing.assert_array_equal(mlps.directions_on(out_WxO), [
      [True, False, False], [False, True, False], [False, False, False]])


def test_a_map_that_is_none_on_part_of_its_domain_reads_none_there():
  """tracr's MLP writes nothing for an input its function maps to None."""
  state = started(rasp.Map(lambda x: x if x > 1 else None, _T), {1, 2, 3}, 3)
  _read_layer(state)
  (instruction,) = state.instructions
  token_dims = dict(zip(state.variables["tokens"].values,
                        state.variables["tokens"].dims))
  table = instruction.function.table
  assert table[(token_dims[1],)] is None
  assert None not in (table[(token_dims[2],)], table[(token_dims[3],)])
