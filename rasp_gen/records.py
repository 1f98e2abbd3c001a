"""One dataset record: a canonical program and the weights tracr compiles it to.

Records are msgpack bytes (flax.serialization), so numpy arrays keep their
dtype and shape, and any reader (grain, a notebook) can decode them without
this package's classes. msgpack also keeps bool, int, float and str apart,
so the output decoding's typed values and a table's values come back as
they were written.
"""

import dataclasses
from typing import Any, Optional

import numpy as np
from flax import serialization

from compiled import compiler
from rasp_gen.program import (Encoding, Function, Instruction, Linear,
                              Operator, Program, Table)

Params = dict[str, dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Record:
  program: Program
  params: Params
  vocab: tuple
  max_seq_len: int
  compiler_bos: str
  compiler_pad: str
  index: int  # Position in the run's sample stream (seed, index) -> program.
  split: str  # "train", "validation" or "test".
  num_heads: int  # Heads per attention layer; tracr params do not store it.
  # How the output is read off the residual stream, with its typed values.
  output: compiler.OutputDecoding


# The values a table cell may hold: msgpack and JSON keep each type apart
# (`1`, `1.0`, `True` and `"1"` come back as they went in).
_CELL_TYPES = (bool, int, float, str, type(None))


def _cell_value(value: Any, instruction: Instruction) -> Any:
  if not isinstance(value, _CELL_TYPES):
    raise ValueError(f"{instruction}: a table value {value!r} of type "
                     f"{type(value).__name__} cannot be stored; records keep "
                     "bool, int, float, str and None")
  return value


def function_cell(instruction: Instruction) -> Any:
  """A row's function cell: the name, "" for none, `{"table": [[args...,
  value], ...]}` (entries in the table's order) or `{"linear": [fst, snd]}`.
  Plain msgpack and JSON values, so identity keys hash them too."""
  function = instruction.function
  if function is None:
    return ""
  if isinstance(function, Table):
    return {"table": [[_cell_value(v, instruction) for v in (*args, value)]
                      for args, value in function.entries]}
  if isinstance(function, Linear):
    return {"linear": [_cell_value(function.fst_factor, instruction),
                       _cell_value(function.snd_factor, instruction)]}
  return function


def function_from_cell(cell: Any) -> Optional[Function]:
  """The function `function_cell` stored (lists back to tuples)."""
  if isinstance(cell, str):
    return cell or None
  if isinstance(cell, dict) and set(cell) == {"table"}:
    return Table(tuple((tuple(entry[:-1]), entry[-1])
                       for entry in cell["table"]))
  if isinstance(cell, dict) and set(cell) == {"linear"}:
    fst_factor, snd_factor = cell["linear"]
    return Linear(fst_factor, snd_factor)
  raise ValueError(f"function cell {cell!r} is not a name, a table or "
                   "linear factors")


def program_to_rows(program: Program) -> list[list[Any]]:
  """Rows [operator, function, args..., output, encoding] of plain values:
  strings, but for a function given by a table or linear factors
  (`function_cell`)."""
  return [[i.operator.value, function_cell(i), *i.args, i.output,
           i.encoding.value] for i in program.instructions]


def program_from_rows(rows: list[list[Any]]) -> Program:
  instructions = []
  for row in rows:
    operator, function, *args, output, encoding = row
    instructions.append(Instruction(Operator(operator),
                                    function_from_cell(function),
                                    tuple(args), output, Encoding(encoding)))
  return Program(tuple(instructions))


def record_to_bytes(record: Record) -> bytes:
  return serialization.msgpack_serialize({
      "program": program_to_rows(record.program),
      "params": {k: dict(v) for k, v in record.params.items()},
      "vocab": list(record.vocab),
      "max_seq_len": record.max_seq_len,
      "compiler_bos": record.compiler_bos,
      "compiler_pad": record.compiler_pad,
      "index": record.index,
      "split": record.split,
      "num_heads": record.num_heads,
      "output": record.output.to_dict(),
  })


def record_from_bytes(data: bytes) -> Record:
  raw = serialization.msgpack_restore(data)
  if "num_heads" not in raw:
    raise ValueError("record has no num_heads: it was written before records "
                     "stored it; regenerate the dataset")
  if "output" not in raw:
    raise ValueError("record has no output decoding: it was written before "
                     "records stored it; regenerate the dataset")
  return Record(
      program=program_from_rows(raw["program"]),
      params={k: {p: np.asarray(a) for p, a in v.items()}
              for k, v in raw["params"].items()},
      vocab=tuple(raw["vocab"]),
      max_seq_len=int(raw["max_seq_len"]),
      compiler_bos=raw["compiler_bos"],
      compiler_pad=raw["compiler_pad"],
      index=int(raw["index"]),
      split=raw["split"],
      num_heads=int(raw["num_heads"]),
      output=compiler.OutputDecoding.from_dict(raw["output"]),
  )
