"""One dataset record: a canonical program and the weights tracr compiles it to.

Records are msgpack bytes (flax.serialization), so numpy arrays keep their
dtype and shape, and any reader (grain, a notebook) can decode them without
this package's classes. msgpack also keeps bool, int, float and str apart,
so the output decoding's typed values come back as they were written.
"""

import dataclasses

import numpy as np
from flax import serialization

from compiled import compiler
from rasp_gen.program import Encoding, Instruction, Operator, Program

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


def program_to_rows(program: Program) -> list[list[str]]:
  """Plain-string rows [operator, function, args..., output, encoding]."""
  return [[i.operator.value, i.function or "", *i.args, i.output,
           i.encoding.value] for i in program.instructions]


def program_from_rows(rows: list[list[str]]) -> Program:
  instructions = []
  for row in rows:
    operator, function, *args, output, encoding = row
    instructions.append(Instruction(Operator(operator), function or None,
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
