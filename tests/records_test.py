"""Records keep the output decoding's values with their Python types."""

import numpy as np
import pytest
from flax import serialization

from compiled import compiler
from rasp_gen import records
from rasp_gen.program import Instruction, Operator, Program

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
