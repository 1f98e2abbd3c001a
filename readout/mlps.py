"""Pass 3b: a layer's MLP as Maps, SequenceMaps and SelectorWidths' widths.

The MLP's neurons are grouped into modules (neurons that write a common
direction; then modules reading the same variables), and each module is read
by probing: run on every combination of its inputs' values (with `one` set),
its outputs split into variables (`variables.one_hot_groups`) and give each
one's table over the inputs' directions. A SelectorWidth's MLP reads its
head's hidden direction, 1/(width+1), and writes the width (one direction,
numerical) or one direction per width.
"""

import dataclasses
import itertools
from typing import Optional, Sequence

import numpy as np

from compiled import params as params_lib
from rasp_gen.program import Encoding, Instruction, Linear, Operator
from readout import variables as variables_lib
from readout.errors import ReadoutError
from readout.state import ZERO, DirectionTable, ReadState, as_number, run_mlp


_UNIT_SLACK = 5e-2  # A categorical direction's outputs lie in [0, 1] up to
# this.


def value_points(state: ReadState, name: str) -> list[tuple]:
  """Each value of a variable as (its key in a DirectionTable, its residual
  vector): a categorical value's key is its direction, a numerical one's
  the value."""
  variable = state.variables[name]
  width = state.layout.d_model
  points = []
  if not variable.numerical:
    for dim in variable.dims:
      vector = np.zeros(width)
      vector[dim] = 1.0
      points.append((dim, vector))
    return points
  (dim,) = variable.dims
  for value in sorted(variable.value_set):
    vector = np.zeros(width)
    vector[dim] = value
    points.append((float(value), vector))
  return points


def probe(state: ReadState, layer: int, neurons: np.ndarray,
          inputs: Sequence[str]) -> tuple[list[tuple], np.ndarray]:
  """Runs the MLP's `neurons` on every combination of `inputs`' values
  (with 'one' set): the combinations' keys and the outputs [N, D]."""
  grids = [value_points(state, name) for name in inputs]
  keys, rows = [], []
  for combination in itertools.product(*grids):
    residual = np.zeros(state.layout.d_model)
    residual[state.one] = 1.0
    for _, vector in combination:
      residual = residual + vector
    keys.append(tuple(k for k, _ in combination))
    rows.append(residual)
  return keys, run_mlp(state.params, layer, np.array(rows), neurons)


def directions_on(out_WxO: np.ndarray) -> np.ndarray:
  """Which of a SelectorWidth's directions each width turns on: above 0.5
  and its largest (noisy weights mix some of the neighbouring widths' in)."""
  return (out_WxO > 0.5) & (out_WxO == out_WxO.max(1, keepdims=True))


def width_values(on_WxO: np.ndarray) -> Optional[list[int]]:
  """Each direction's width: the least width that turns it on. tracr's MLP
  cannot tell max_seq_len from max_seq_len - 1 past length ~10 (its
  rounding; a known tracr limit), so one direction may be on for two widths
  and another for none; the latter takes the one width left over. None when
  the directions do not each stand for one width."""
  values = [int(np.argmax(column)) if column.any() else None
            for column in on_WxO.T]
  left = sorted(set(range(len(on_WxO))) - set(values))
  if values.count(None) > 1 or len(set(values) - {None}) != len(
      [v for v in values if v is not None]):
    return None
  return [left[0] if v is None else v for v in values]


def read_mlp(state: ReadState, layer: int, widths: dict[int, str]) -> None:
  """Adds the layer's MLP functions; `widths`: the SelectorWidth heads'
  hidden directions -> their Selects (`attention.read_attention`)."""
  first_DxM = state.params[params_lib.mlp_key(layer, "linear_1")]["w"]
  second_MxD = state.params[params_lib.mlp_key(layer, "linear_2")]["w"]
  reads = np.abs(first_DxM) > ZERO
  writes = np.abs(second_MxD) > ZERO
  live = state.live_neurons[layer][writes[state.live_neurons[layer]].any(1)]
  # tracr's SelectorWidth scrubs BOS with a neuron that reads only BOS.
  cleaners = [n for n in live
              if set(np.flatnonzero(reads[:, n])) == {state.bos}]
  live = np.array([n for n in live if n not in cleaners], int)
  # A discretising MLP's first neuron reads only 'one' (a bias); it joins
  # the neurons that write where it writes.
  biases = [n for n in live if set(np.flatnonzero(reads[:, n])) == {state.one}]
  live = np.array([n for n in live if n not in biases], int)
  with_biases = lambda neurons: np.array(list(neurons) + [
      b for b in biases if (writes[b] & writes[neurons].any(0)).any()], int)
  for hidden_dim, selector in widths.items():
    neurons = live[reads[hidden_dim, live]]
    live = np.setdiff1d(live, neurons)
    read_width(state, layer, hidden_dim, selector, with_biases(neurons))
  # Group the rest into modules: neurons that write a common direction
  # (a linear SequenceMap's neurons each read one input), then modules
  # reading the same variables (a categorical Map's neurons each write one
  # output value). A module reads exactly its function's inputs.
  by_inputs: dict[tuple[str, ...], list[int]] = {}
  for neurons in variables_lib.neuron_components(live, writes):
    dims = [d for d in np.flatnonzero(reads[:, neurons].any(1))
            if d != state.one]
    inputs = tuple(sorted(state.owners(dims)))
    by_inputs.setdefault(inputs, []).extend(neurons)
  for inputs, neurons in by_inputs.items():
    if not 1 <= len(inputs) <= 2:
      raise ReadoutError(f"layer {layer}: an MLP reads {len(inputs)} "
                         "variables")
    neurons = with_biases(neurons)
    dims = [int(d) for d in np.flatnonzero(writes[neurons].any(0))]
    read_functions(state, layer, neurons, inputs, dims)


def read_width(state: ReadState, layer: int, hidden_dim: int, selector: str,
               neurons: np.ndarray) -> None:
  """Adds the SelectorWidth whose MLP (`neurons`) reads `hidden_dim`."""
  widths = list(range(state.model.max_seq_len + 1))
  residual = np.zeros((len(widths), state.layout.d_model))
  residual[:, state.one] = 1.0
  residual[:, hidden_dim] = [1 / (w + 1) for w in widths]
  out_WxD = run_mlp(state.params, layer, residual, neurons)
  dims = [int(d) for d in np.flatnonzero(np.abs(out_WxD).max(0) > ZERO)
          if d != hidden_dim]
  if len(dims) == 1:  # Numerical: the width itself.
    output = state.add(dims, True, value_set=set(widths))
  else:
    values = width_values(directions_on(out_WxD[:, dims]))
    if values is None:
      raise ReadoutError(f"layer {layer}: a SelectorWidth's directions do "
                         "not each stand for one width")
    output = state.add(dims, False, values)
  state.instructions.append(Instruction(
      Operator.SELECTOR_WIDTH, None, (selector,), output,
      Encoding.NUMERICAL if len(dims) == 1 else Encoding.CATEGORICAL))


def read_functions(state: ReadState, layer: int, neurons: np.ndarray,
                   inputs: tuple[str, ...], dims: list[int]) -> None:
  """Splits the directions some neurons write into variables and adds each
  one's Map or SequenceMap with its table."""
  numerical_inputs = [state.variables[n].numerical for n in inputs]
  if len(inputs) == 2 and any(numerical_inputs):
    # Only linear SequenceMaps mix numerical inputs, so a one-direction
    # variable beside a numerical one is a numerical Map that is always 1.
    for name in inputs:
      reread_as_numerical(state, name)
    numerical_inputs = [True, True]
  keys, out_NxD = probe(state, layer, neurons, inputs)
  out_NxO = out_NxD[:, dims]
  # Categorical directions are 0 or 1, but tracr's numerical-to-categorical
  # MLP ramps over 1/100 around each threshold, so values closer than that
  # to one read in between: a direction counts as on above 0.5. Noisy
  # weights write 1 and 0 a little off.
  unit = np.all((out_NxO > -_UNIT_SLACK) & (out_NxO < 1 + _UNIT_SLACK),
                axis=0)
  numerical = [[d] for d, u in zip(dims, unit) if not u]
  categorical_dims = [d for d, u in zip(dims, unit) if u]
  on_NxC = out_NxO[:, unit] > 0.5
  try:
    categorical = variables_lib.one_hot_groups(
        categorical_dims, on_NxC, state.value_readers, state.read_together)
    none_keys = set()
  except ReadoutError:
    # A function that is None on part of its domain: tracr's MLP writes
    # nothing for those inputs (only tried when no split without them works).
    if all(numerical_inputs) or not all(unit):
      raise
    categorical = variables_lib.one_hot_groups(
        categorical_dims, on_NxC, state.value_readers, state.read_together,
        none_rows=True)
    none_keys = {key for key, on in zip(keys, on_NxC.any(1)) if not on}
  for group in numerical + categorical:
    columns = [dims.index(d) for d in group]
    values_N = out_NxO[:, columns]
    # A lone direction that is always on is a one-value categorical
    # variable (a direction sometimes off is a numerical 0/1 one).
    one_hot = group in categorical and (
        len(group) > 1 or np.all(values_N > 0.5))
    if all(numerical_inputs) and len(inputs) == 2:
      add_linear(state, inputs, keys, values_N[:, 0], group)
    elif one_hot:
      table = {key: None if key in none_keys else group[int(np.argmax(row))]
               for key, row in zip(keys, values_N)}
      output = state.add(group, False)
      add_map(state, inputs, DirectionTable(table), output,
              Encoding.CATEGORICAL)
    else:
      table = {key: as_number(row[0]) for key, row in zip(keys, values_N)}
      output = state.add(group, True, value_set=set(table.values()))
      add_map(state, inputs, DirectionTable(table), output, Encoding.NUMERICAL)


def reread_as_numerical(state: ReadState, name: str) -> None:
  """Rereads a one-direction categorical Map output as a numerical Map
  that is always 1 (the weights are the same)."""
  variable = state.variables[name]
  if variable.numerical:
    return
  index = state.writer_of(name)
  instruction = None if index is None else state.instructions[index]
  if (len(variable.dims) != 1 or instruction is None
      or not isinstance(instruction.function, DirectionTable)):
    raise ReadoutError("a linear SequenceMap reads a categorical variable")
  variable.numerical, variable.value_set = True, {1}
  state.instructions[index] = dataclasses.replace(
      instruction, encoding=Encoding.NUMERICAL,
      function=DirectionTable({key: 1 for key in instruction.function.table}))


def add_map(state: ReadState, inputs: tuple[str, ...], table: DirectionTable,
            output: str, encoding: Encoding) -> None:
  operator = Operator.MAP if len(inputs) == 1 else Operator.SEQUENCE_MAP
  state.instructions.append(Instruction(operator, table, inputs, output,
                                        encoding))


def add_linear(state: ReadState, inputs: tuple[str, ...], keys: list[tuple],
               values_N: np.ndarray, group: list[int]) -> None:
  """Adds y = a * x1 + b * x2, solved on the probed grid and checked on
  every point; ReadoutError if it is not linear."""
  design_Nx2 = np.array(keys, np.float64)
  factors, *_ = np.linalg.lstsq(design_Nx2, values_N, rcond=None)
  if np.abs(design_Nx2 @ factors - values_N).max(initial=0) > 1e-4:
    raise ReadoutError(f"a SequenceMap of numerical {inputs} is not linear")
  output = state.add(group, True, value_set={
      as_number(v) for v in design_Nx2 @ factors})
  state.instructions.append(Instruction(
      Operator.SEQUENCE_MAP, Linear(*(as_number(f) for f in factors)), inputs,
      output, Encoding.NUMERICAL))
