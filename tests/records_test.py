"""Records keep the output decoding's values and a program's tables with
their Python types."""

import dataclasses
import json

import numpy as np
import pytest
from flax import serialization

from compiled import compiler
from rasp_gen import records
from rasp_gen.program import (Encoding, Instruction, Linear, Operator,
                              Program, Table)

PROGRAM = Program((Instruction(Operator.MAP, "LAM_LT_2", ("tokens",), "v1"),))


def _record(output: compiler.OutputDecoding) -> records.Record:
  params = {"token_embed": {"embeddings": np.eye(3, dtype=np.float32)}}
  return records.Record(PROGRAM, params, (0, 1, 2), 4, "bos", "pad", 7,
                        "train", 1, output)


@pytest.mark.parametrize("output", [
    compiler.OutputDecoding((0, 1), (False, True), False),
    compiler.OutputDecoding((0, 1), (0, 1), False),
    compiler.OutputDecoding((2, 0, 1), (-1.5, 2.0, 3), False),
    compiler.OutputDecoding((1, 2), ("a", "b"), False),
    compiler.OutputDecoding((2,), (), True),
], ids=["bool", "int", "float_int", "str", "numerical"])
def test_typed_output_values_round_trip(output):
  got = records.record_from_bytes(records.record_to_bytes(_record(output)))
  assert got.output == output
  assert [type(v) for v in got.output.values] == [
      type(v) for v in output.values]
  assert (got.program, got.vocab, got.index) == (PROGRAM, (0, 1, 2), 7)


def test_bool_and_int_values_are_different_decodings():
  # Equal as Python values, so the types must be compared too.
  as_int = _record(compiler.OutputDecoding((0, 1), (0, 1), False))
  as_bool = _record(compiler.OutputDecoding((0, 1), (False, True), False))
  assert records.record_to_bytes(as_int) != records.record_to_bytes(as_bool)
  got = records.record_from_bytes(records.record_to_bytes(as_bool))
  assert all(isinstance(v, bool) for v in got.output.values)
  assert got.output == as_bool.output != as_int.output
  assert len({as_int.output, as_bool.output}) == 2


@pytest.mark.parametrize("raw_output, message", [
    ({"dims": [0], "values": [1]}, "exactly dims, values and numerical"),
    ({"dims": [0], "values": [[1]], "numerical": False}, "not bool, int"),
    ({"dims": [0, 1], "values": [1], "numerical": False}, "one value per dim"),
    ({"dims": [0], "values": [1], "numerical": True}, "numerical"),
])
def test_malformed_output_decoding_is_refused(raw_output, message):
  raw = serialization.msgpack_restore(records.record_to_bytes(
      _record(compiler.OutputDecoding((0,), (1,), False))))
  raw["output"] = raw_output
  with pytest.raises(ValueError, match=message):
    records.record_from_bytes(serialization.msgpack_serialize(raw))


def test_unstorable_output_values_are_refused():
  with pytest.raises(ValueError, match="only bool, int, float and str"):
    records.record_to_bytes(
        _record(compiler.OutputDecoding((0,), ((1, 2),), False)))


# Functions given as values: a Map table from strings to ints (None where a
# numerical Map's input has no value), a SequenceMap table over mixed
# arguments, a Select relation, and linear factors (floats and ints).
TABLES = Program((
    Instruction(Operator.MAP, Table(((("a",), 1), (("b",), 0))),
                ("tokens",), "v1"),
    Instruction(Operator.SEQUENCE_MAP, Table((
        ((0, "a"), True), ((0, "b"), 1), ((1, "a"), 1.0), ((1, "b"), "1"))),
                ("v1", "tokens"), "v2"),
    Instruction(Operator.SELECT, Table((
        (("a", 0), True), (("a", 1), False), (("b", 0), False),
        (("b", 1), True))), ("tokens", "v1"), "v3"),
    Instruction(Operator.MAP, Table((((0.5,), None), ((1.0,), -0.0),
                                     ((2,), float("inf")))),
                ("v2",), "v4", Encoding.NUMERICAL),
    Instruction(Operator.SEQUENCE_MAP, Linear(0.5, -2.0), ("v4", "v4"), "v5",
                Encoding.NUMERICAL),
    Instruction(Operator.SEQUENCE_MAP, Linear(1, 3), ("v5", "v4"), "v6",
                Encoding.NUMERICAL),
))


def _typed_entries(function):
  """A table's entries with every value's type, so that 1, 1.0, True and
  "1" (equal or not) stay apart."""
  typed = lambda v: (type(v), v)
  return [(tuple(typed(a) for a in args), typed(value))
          for args, value in function.entries]


def test_tables_and_linear_factors_round_trip_with_their_types():
  record = dataclasses.replace(
      _record(compiler.OutputDecoding((0, 1), (0, 1), False)),
      program=TABLES)
  got = records.record_from_bytes(records.record_to_bytes(record)).program
  assert got == TABLES
  for want, have in zip(TABLES.instructions, got.instructions):
    if isinstance(want.function, Table):
      assert isinstance(have.function, Table)
      assert all(isinstance(args, tuple) for args, _ in have.function.entries)
      assert _typed_entries(have.function) == _typed_entries(want.function)
    else:
      assert have.function == want.function
      assert type(have.function.fst_factor) is type(want.function.fst_factor)
  # The rows are plain values: JSON hashes them into identity keys.
  rows = records.program_to_rows(TABLES)
  assert json.loads(json.dumps(rows)) == rows
  assert rows[2][1] == {"table": [["a", 0, True], ["a", 1, False],
                                  ["b", 0, False], ["b", 1, True]]}
  assert rows[4][1] == {"linear": [0.5, -2.0]}
  assert records.program_from_rows(rows) == TABLES


def test_a_table_value_records_cannot_keep_is_refused():
  program = Program((Instruction(
      Operator.MAP, Table((((0,), (1, 2)), ((1,), (2, 3)))), ("tokens",),
      "v1"),))
  with pytest.raises(ValueError, match=r"table value \(1, 2\) of type tuple"):
    records.program_to_rows(program)
  with pytest.raises(ValueError, match="not a name, a table or linear"):
    records.program_from_rows([["MAP", {"lambda": "x"}, "tokens", "v1",
                                "categorical"]])
