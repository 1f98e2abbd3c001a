"""Pass 5: the program, and the read-out's entry points.

`read_program(model)` runs the passes in tracr's order reversed: the basis
(`basis.tracr_basis_views`: how the weights are seen), embeddings, the
variables' constraints, each layer's attention then MLP, the values, and
assembles the instructions into a `rasp_gen` Program: tables over values,
printed as a named function where one equals the table on its whole domain,
only the instructions the output needs, canonical variable names.
"""

import dataclasses

from compiled import params as params_lib
from compiled import saved, verify
from rasp_gen import convert
from rasp_gen.program import (INDICES, TOKENS, Instruction, Operator, Program,
                              Table, canonicalize)
from readout import attention, basis, embeddings, mlps, values
from readout import variables as variables_lib
from readout.errors import ReadoutError
from readout.state import DirectionTable, ReadState, heads_of_layer


def start(model: saved.SavedModel) -> ReadState:
  """A read of `model` (in tracr's basis) with its embeddings and the
  variables' constraints read."""
  if model.num_heads is None:
    raise ReadoutError("the number of heads is unknown")
  params = embeddings.as_float_params(model)
  layout = params_lib.check_params(params)
  embedded = embeddings.read_embeddings(params, model)
  state = ReadState(model=model, params=params, layout=layout,
                    one=embedded.one, bos=embedded.bos)
  state.add(embedded.token_dims, False, list(embedded.token_values), TOKENS)
  if embedded.index_dims:
    state.add(embedded.index_dims, False, list(embedded.index_values),
              INDICES)
  state.layer_heads = [heads_of_layer(params, layer, model.num_heads)
                       for layer in range(layout.num_layers)]
  output_dims = list(model.output.dims)
  state.value_readers = variables_lib.value_readers(
      params, state.layer_heads, output_dims)
  state.read_together = variables_lib.read_together(
      params, state.layer_heads, output_dims, state.one, state.bos)
  state.written, state.live_neurons = variables_lib.live_parts(
      params, layout.num_layers, state.one)
  return state


def needed_instructions(instructions: list[Instruction],
                        output: str) -> tuple[Instruction, ...]:
  """The instructions `output` depends on, in order."""
  needed, kept = {output}, []
  for instruction in reversed(instructions):
    if instruction.output in needed:
      kept.append(instruction)
      needed.update(instruction.args)
  return tuple(reversed(kept))


def may_be_none(state: ReadState, name: str) -> bool:
  """Whether a variable is a categorical Aggregate's output, which is None
  (no direction on) where its selector selects nothing."""
  variable = state.variables[name]
  return not variable.numerical and variable.copies is not None


def none_entries(state: ReadState, args: tuple[str, str]) -> list[tuple]:
  """A Select's table rows for a None key or query: False, as the weights
  have it (a value with no direction on matches nothing; tracr's
  Comparisons raise on None instead, so such a Select is kept a table)."""
  keys, queries = (state.variables[n] for n in args)
  key_values = list(keys.values) + [None]
  query_values = list(queries.values) + [None]
  return [((key, query), False) for key in key_values for query in query_values
          if key is None or query is None]


def assemble(state: ReadState) -> Program:
  """The program of a read whose layers are all read."""
  output_name = values.name_output_values(state)
  instructions = []
  for instruction in state.instructions:
    function = instruction.function
    if isinstance(function, DirectionTable):
      output = state.variables.get(instruction.output)
      entries = []
      for key, value in function.table.items():
        args = tuple(values.value_of(state, n, k) for n, k in
                     zip(instruction.args, key))
        if instruction.operator == Operator.SELECT or output.numerical:
          entries.append((args, value))
        else:
          entries.append((args, None if value is None else values.value_of(
              state, instruction.output, value)))
      none_safe = (instruction.operator == Operator.SELECT
                   and any(may_be_none(state, n) for n in instruction.args))
      if none_safe:
        entries += none_entries(state, instruction.args)
      function = Table(tuple(entries))
      numerical_input = any(state.variables[n].numerical
                            for n in instruction.args
                            if n in state.variables)
      if not ((output is not None and output.numerical) or numerical_input
              or none_safe):
        function = convert.readable(instruction.operator, function)
    instructions.append(dataclasses.replace(instruction, function=function))
  return canonicalize(Program(needed_instructions(instructions, output_name)))


def read_program(model: saved.SavedModel) -> Program:
  """The program tracr's recipes say `model`'s weights compute.

  Raises ReadoutError where the weights are not tracr's: the first view's
  error where no view of the weights (`basis.tracr_basis_views`) reads.
  """
  first_error = None
  try:
    for view in basis.tracr_basis_views(model):
      try:
        return read_view(view)
      except ReadoutError as error:
        first_error = first_error or error
  except ReadoutError as error:
    first_error = first_error or error
  raise first_error


def read_view(model: saved.SavedModel) -> Program:
  """The program read off `model`, in tracr's basis."""
  state = start(model)
  for layer in range(state.layout.num_layers):
    widths = attention.read_attention(state, layer)
    mlps.read_mlp(state, layer, widths)
  return assemble(state)


def read_and_verify(reference: verify.Reference, stop_early: bool = True
                    ) -> tuple[Program, verify.Verification]:
  """The program read off `reference`'s weights, checked against them on
  its inputs (`compiled.verify`); ValueError (ReadoutError) as
  `read_program`."""
  program = read_program(reference.model)
  return program, verify.verify_against(reference, convert.to_rasp(program),
                                        stop_early=stop_early)
