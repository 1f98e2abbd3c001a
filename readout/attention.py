"""Pass 3a: a layer's heads as Selects, Aggregates and SelectorWidths' heads.

tracr's Aggregate is one head whose query-key matrix is the selector's
relation (`softmax_coldness` c where the predicate holds, c/2 from the
query's `one` to the key's BOS) and whose value-output matrix copies its
input's directions (categorical) or its input's direction (numerical; a
numerical mean of a categorical variable carries each value as the weight).
A SelectorWidth's head always attends to BOS (c from `one` to BOS) and
copies only BOS, into one hidden direction that the same layer's MLP turns
into the width (`mlps.read_width`).
"""

from typing import Iterable

import numpy as np

from rasp_gen.program import TOKENS, Encoding, Instruction, Operator
from readout.errors import ReadoutError
from readout.state import ZERO, DirectionTable, Head, ReadState, as_number


def mean_values(values: Iterable, max_seq_len: int) -> set:
  """tracr's value set of a numerical mean of `values` (basis_inference)."""
  return {value / length for value in values
          for length in range(1, max_seq_len + 1)}


def read_selector(state: ReadState, head: Head,
                  always_attends_to_bos: bool) -> str:
  """The Select a head's query-key matrix encodes, added once per distinct
  selector; its name."""
  query_key = head.query_key_DxD
  bos_logit = query_key[state.one, state.bos]
  if bos_logit <= ZERO:
    raise ReadoutError("a head does not attend to BOS by default")
  # tracr: the predicate's logit is the softmax coldness c; BOS gets c/2
  # (Aggregate) or c (SelectorWidth, which always attends to BOS).
  coldness = bos_logit if always_attends_to_bos else 2 * bos_logit
  rows = [d for d in np.flatnonzero(np.abs(query_key).max(1) > ZERO)
          if d != state.one]
  columns = [d for d in np.flatnonzero(np.abs(query_key).max(0) > ZERO)
             if d != state.bos]
  if rows and columns:
    queries = state.one_owner(rows, "a selector's query")
    keys = state.one_owner(columns, "a selector's key")
  else:
    # Never true: any variables do. tokens, since tracr refuses a program
    # that does not read tokens.
    queries = keys = TOKENS
  relation = {}
  for key_dim in state.variables[keys].dims:
    for query_dim in state.variables[queries].dims:
      relation[(key_dim, query_dim)] = bool(
          query_key[query_dim, key_dim] > coldness / 2)
  signature = (keys, queries, tuple(sorted(relation.items())))
  if signature not in state.selectors:
    name = f"s{len(state.selectors)}"
    state.selectors[signature] = name
    state.instructions.append(Instruction(
        Operator.SELECT, DirectionTable(relation), (keys, queries), name))
  return state.selectors[signature]


def read_attention(state: ReadState, layer: int) -> dict[int, str]:
  """Adds each head's Select and Aggregate; returns the SelectorWidth
  heads' hidden direction -> their Select (for `mlps.read_mlp`)."""
  widths = {}
  for head in state.layer_heads[layer]:
    value_output = head.value_output_DxD
    sources = [int(d) for d in np.flatnonzero(
        np.abs(value_output).max(1) > ZERO) if d != state.bos]
    targets = [int(d) for d in np.flatnonzero(
        np.abs(value_output).max(0) > ZERO)]
    if not sources:  # Copies only BOS: a SelectorWidth's attention.
      if len(targets) != 1:
        raise ReadoutError(f"layer {layer}: a head copying only BOS writes "
                           f"{len(targets)} directions")
      widths[targets[0]] = read_selector(state, head,
                                         always_attends_to_bos=True)
      continue
    selector = read_selector(state, head, always_attends_to_bos=False)
    source = state.one_owner(sources, f"layer {layer}: a head's value")
    variable = state.variables[source]
    max_seq_len = state.model.max_seq_len
    if not variable.numerical and len(targets) == 1 and len(
        variable.dims) > 1:
      # A numerical mean of a categorical variable: each value direction
      # carries its value as the weight (tracr's lib: means of booleans).
      weights = [as_number(value_output[d, targets[0]]) for d in variable.dims]
      state.set_values(source, weights)
      output = state.add(targets, True,
                         value_set=mean_values(weights, max_seq_len))
      variable = state.variables[output]
    elif variable.numerical:
      if len(targets) != 1 or abs(value_output[variable.dims[0],
                                               targets[0]] - 1) > 1e-4:
        raise ReadoutError(f"layer {layer}: a numerical Aggregate that "
                           "does not copy its input")
      output = state.add(targets, True,
                         value_set=mean_values(variable.value_set, max_seq_len))
    else:
      copied = {}
      for dim in variable.dims:
        row = value_output[dim]
        target = int(np.argmax(row))
        if abs(row[target] - 1) > 1e-4 or np.sum(np.abs(row) > ZERO) != 1:
          raise ReadoutError(f"layer {layer}: a categorical Aggregate that "
                             "does not copy its input")
        copied[target] = dim
      output = state.add(sorted(copied), False)
      state.variables[output].copies = (source, copied)
    state.instructions.append(Instruction(
        Operator.AGGREGATE, None, (selector, source), output,
        Encoding.NUMERICAL if variable.numerical else Encoding.CATEGORICAL))
  return widths
