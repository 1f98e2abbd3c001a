"""readout.values: what each direction stands for."""

from tracr.rasp import rasp

from readout import attention, mlps, values
from readout_helpers import started

_T = rasp.tokens


def _read_all(state):
  for layer in range(state.layout.num_layers):
    mlps.read_mlp(state, layer, attention.read_attention(state, layer))


def test_the_output_takes_the_output_decodings_values():
  state = started(rasp.Map(lambda x: x + "!", _T), {"a", "b"}, 3)
  _read_all(state)
  name = values.name_output_values(state)
  assert sorted(state.variables[name].values) == ["a!", "b!"]


def test_an_intermediate_is_named_in_the_order_its_values_first_appear():
  hidden = rasp.Map(lambda x: {1: "z", 2: "y", 3: "z"}[x], _T)
  out = rasp.Map(lambda v: v == "y", hidden, simplify=False)
  state = started(out, {1, 2, 3}, 3)
  _read_all(state)
  values.name_output_values(state)
  (hidden_name,) = [n for n in state.variables
                    if n not in ("tokens", "indices", state.output_name)]
  token_dims = dict(zip(state.variables["tokens"].values,
                        state.variables["tokens"].dims))
  instruction = state.instructions[state.writer_of(hidden_name)]
  named = {token: values.value_of(state, hidden_name,
                                  instruction.function.table[(dim,)])
           for token, dim in token_dims.items()}
  assert named == {1: 0, 2: 1, 3: 0}  # tracr's "z", "y" cannot be told.


def test_an_aggregate_takes_its_inputs_values():
  shifted = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices,
                                       rasp.Comparison.EQ), _T)
  state = started(shifted, {"p", "q"}, 3)
  _read_all(state)
  name = values.name_output_values(state)
  assert sorted(state.variables[name].values) == ["p", "q"]
  assert state.variables[name].copies[0] == "tokens"
