"""Pass 4: the values each categorical direction stands for.

tokens and indices take theirs from the embedding rows, the output from the
output decoding, an Aggregate's output from what it copies (and back),
widths from the SelectorWidth's MLP. Every other categorical variable is
named `0, 1, ...` in the order its values first appear when its inputs'
values are enumerated in order (the canonical naming rule; any one-to-one
renaming compiles to the same weights, so the weights cannot tell more).
"""

from typing import Any

from rasp_gen.program import value_order
from readout.errors import ReadoutError
from readout.state import ReadState, as_number


def name_output_values(state: ReadState) -> str:
  """Finds the variable the output decoding reads and sets its values from
  the decoding; its name (also `state.output_name`)."""
  output = state.model.output
  name = state.one_owner(list(output.dims), "the output decoding")
  variable = state.variables[name]
  if variable.numerical != output.numerical or (
      not output.numerical and set(variable.dims) != set(output.dims)):
    raise ReadoutError("the output decoding is not one variable")
  state.output_name = name
  if not output.numerical:
    by_dim = dict(zip(output.dims, output.values))
    state.set_values(name, [by_dim[d] for d in variable.dims])
  return name


def value_of(state: ReadState, name: str, key: Any) -> Any:
  """The value a variable's direction (or numerical key) stands for,
  naming the variable canonically when nothing named it."""
  variable = state.variables[name]
  if variable.numerical:
    return as_number(key)
  if variable.values is None:
    name_canonically(state, name)
  return variable.values[variable.dims.index(key)]


def name_canonically(state: ReadState, name: str) -> None:
  """`0, 1, ...` in the order the values first appear over the inputs'
  values in order; an Aggregate's output takes its input's names."""
  variable = state.variables[name]
  if variable.copies:
    source_name, copied = variable.copies
    if state.variables[source_name].values is None:
      name_canonically(state, source_name)
    if variable.values is None:  # It copies only some of its input.
      source = state.variables[source_name]
      state.set_values(name, [source.values[source.dims.index(copied[t])]
                              for t in variable.dims])
    return
  instruction = state.instructions[state.writer_of(name)]
  table = instruction.function.table
  ordered = sorted(table, key=lambda key: tuple(
      value_order(value_of(state, n, k))
      for n, k in zip(instruction.args, key)))
  order: list[int] = []
  for key in ordered:
    if table[key] is not None and table[key] not in order:
      order.append(table[key])
  order += [d for d in variable.dims if d not in order]
  state.set_values(name, [order.index(d) for d in variable.dims])
