"""One label per set of programs that compile to the same weights.

The sampler draws a function or an argument order where several would give
the same weights; a label naming one of them at random is a coin flip no
meta-model can learn. `canonical_labels` picks one per set:

- a function is renamed to the first table entry that gives the same typed
  outputs on its arguments' value sets (`x > 0` is `x != 0` over {0, 1, 2});
- a categorical SequenceMap `f(a, b)` whose swapped form `g(b, a)` is in the
  table (`functions.SWAPPED_ARGUMENTS`) compiles to the same weights up to the
  order of its MLP neurons, one per value pair; of all such swaps the least
  canonical form (by rows) is kept.
"""

import dataclasses
import itertools
import json
from typing import Optional, Sequence

from tracr.compiler import basis_inference, nodes, rasp_to_graph

from rasp_gen import convert, functions, records
from rasp_gen.program import (Encoding, Function, Instruction, Operator,
                              Program, canonicalize)


def value_sets(program: Program, vocab: Sequence, max_seq_len: int
               ) -> dict[str, frozenset]:
  """Each sequence variable's value set, as tracr infers it to compile."""
  extracted = rasp_to_graph.extract_rasp_graph(convert.to_rasp(program))
  basis_inference.infer_bases(extracted.graph, extracted.sink, set(vocab),
                              max_seq_len)
  return {node[nodes.EXPR].name: frozenset(node[nodes.VALUE_SET])
          for node in extracted.graph.nodes.values()
          if nodes.VALUE_SET in node}


def first_equal_function(instruction: Instruction,
                         values: dict[str, frozenset]) -> Optional[Function]:
  """The first table entry equal to the instruction's function on its
  arguments' value sets (the function itself when none comes before it).

  A function given as a `Table` or `Linear` factors is returned unchanged.
  """
  if not isinstance(instruction.function, str) or (
      instruction.operator == Operator.SEQUENCE_MAP
      and instruction.encoding == Encoding.NUMERICAL):
    return instruction.function  # None, a table, or linear factors.
  domains = [values[a] for a in instruction.args]
  points = list(itertools.product(*domains))
  if instruction.operator == Operator.SELECT:
    return functions.first_equal_on(
        tuple(functions.PREDICATES), instruction.function, points,
        lambda name, point: functions.PREDICATES[name](*point))
  table = (functions.MAP_FUNCTIONS if instruction.operator == Operator.MAP
           else functions.SEQUENCE_MAP_FUNCTIONS)
  accepted = [f for f in table
              if all(functions.accepts(f, d) for d in domains)]
  chosen = next(f for f in table if f.name == instruction.function)
  return functions.first_equal_on(accepted, chosen, points,
                                  lambda f, point: f.fn(*point)).name


def least_argument_order(program: Program) -> Program:
  """The least (by rows) canonical form over the swaps of symmetric
  SequenceMaps' arguments (see the module docstring)."""
  swappable = [k for k, i in enumerate(program.instructions)
               if i.operator == Operator.SEQUENCE_MAP
               and i.function in functions.SWAPPED_ARGUMENTS
               and i.args[0] != i.args[1]]
  forms = []
  for swaps in itertools.product((False, True), repeat=len(swappable)):
    instructions = list(program.instructions)
    for k, swap in zip(swappable, swaps):
      if swap:
        instructions[k] = dataclasses.replace(
            instructions[k], args=instructions[k].args[::-1],
            function=functions.SWAPPED_ARGUMENTS[instructions[k].function])
    forms.append(canonicalize(Program(tuple(instructions))))
  return min(forms, key=_order_key)


def _order_key(program: Program) -> list[list[tuple]]:
  """The program's rows as comparable values: by their strings, so named
  programs order exactly as their rows do, and a table's or linear cell (a
  dict) after every name, by its JSON text."""
  return [[(0, cell) if isinstance(cell, str)
           else (1, json.dumps(cell, sort_keys=True)) for cell in row]
          for row in records.program_to_rows(program)]


def canonical_labels(program: Program, vocab: Sequence, max_seq_len: int
                     ) -> Program:
  """The program's one label among those with the same weights."""
  values = value_sets(program, vocab, max_seq_len)
  renamed = Program(tuple(
      dataclasses.replace(i, function=first_equal_function(i, values))
      for i in program.instructions))
  return least_argument_order(renamed)
