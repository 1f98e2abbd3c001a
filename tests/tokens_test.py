"""Program <-> token rows: round trip, vocabulary, and malformed input."""

import numpy as np
import pytest

from configs import data
from encoding import tokens, vocabulary
from encoding.limits import LimitExceeded
from rasp_gen import functions, sampler
from rasp_gen.program import (Encoding, Instruction, Linear, Operator,
                              Program, Table, canonicalize)

M, SM, SEL, AGG, SW = (Operator.MAP, Operator.SEQUENCE_MAP, Operator.SELECT,
                       Operator.AGGREGATE, Operator.SELECTOR_WIDTH)
NUM = Encoding.NUMERICAL
MAX_ROWS = 10
NUM_ROUND_TRIPS = 300  # ~0.17 s each to sample (and compile) on one core.


def program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


# Every operator, both encodings, and both argument orders of a Select.
EXAMPLE = program(
    (M, "LAM_ADD_1", ("indices",), "v1"),
    (SEL, "PRED_EQ", ("v1", "tokens"), "v2"),
    (AGG, None, ("v2", "tokens"), "v3"),
    (SW, None, ("v2",), "v4"),
    (SM, "LAM_ADD", ("v3", "v4"), "v5"),
    (M, "LAM_EQ_0", ("v5",), "v6", NUM),
    (AGG, None, ("v2", "v6"), "v7", NUM),
    (SM, "LAM_LINEAR_SUB", ("v7", "v6"), "v8", NUM))

EXAMPLE_TEXT = """\
PROGRAM_START          NA        NA      NA     NA
MAP                    LAM_ADD_1 indices NA     v1
SELECT                 PRED_EQ   v1      tokens v2
AGGREGATE              v2        tokens  NA     v3
SELECTOR_WIDTH         v2        NA      NA     v4
SEQUENCE_MAP           LAM_ADD   v3      v4     v5
MAP_NUMERICAL          LAM_EQ_0  v5      NA     v6
AGGREGATE_NUMERICAL    v2        v6      NA     v7
SEQUENCE_MAP_NUMERICAL LAM_LINEAR_SUB v7 v6     v8
PROGRAM_END            NA        NA      NA     NA"""


def _words(text: str) -> list[list[str]]:
  return [line.split() for line in text.splitlines()]


def test_rows_spell_each_instruction_and_its_encoding():
  tokens_RxC = tokens.encode_program(EXAMPLE, MAX_ROWS)
  assert tokens_RxC.shape == (MAX_ROWS, 5) and tokens_RxC.dtype == np.int32
  assert _words(tokens.render_rows(tokens_RxC)) == _words(EXAMPLE_TEXT)
  assert tokens.decode_program(tokens_RxC) == canonicalize(EXAMPLE)


def test_sampled_programs_round_trip():
  config = data.get_config().sampler
  max_rows = config.length[1] + 2
  for i in range(NUM_ROUND_TRIPS):
    sample = sampler.sample_program(sampler.sampler_rng(7, i), config)
    tokens_RxC = tokens.encode_program(sample.program, max_rows)
    assert tokens.decode_program(tokens_RxC) == canonicalize(
        sample.program), f"seed (7, {i}):\n{sample.program}"


def test_encoding_canonicalizes_first():
  renamed = program((M, "LAM_SUB_1", ("tokens",), "dead"),
                    (M, "LAM_ADD_1", ("indices",), "a"),
                    (M, "LAM_NEG", ("a",), "out"))
  assert _words(tokens.render_rows(tokens.encode_program(renamed, 5))) == [
      ["PROGRAM_START", "NA", "NA", "NA", "NA"],
      ["MAP", "LAM_ADD_1", "indices", "NA", "v1"],
      ["MAP", "LAM_NEG", "v1", "NA", "v2"],
      ["PROGRAM_END", "NA", "NA", "NA", "NA"]]


def test_vocabulary_comes_from_the_tables():
  vocab = vocabulary.get_vocabulary(8)
  for name in functions.ALL_FUNCTION_NAMES + ("tokens", "indices", "v1", "v8"):
    assert name in vocab.ids
  assert "v9" not in vocab.ids
  assert {"MAP_NUMERICAL", "SEQUENCE_MAP_NUMERICAL",
          "AGGREGATE_NUMERICAL"} <= set(vocab.operators)
  assert "SELECT_NUMERICAL" not in vocab.operators
  assert len(set(vocab.tokens)) == vocab.size
  # More variables append ids; nothing else moves.
  larger = vocabulary.get_vocabulary(12)
  assert larger.tokens[:vocab.size] == vocab.tokens


def test_column_masks_allow_every_encoded_token_and_no_more():
  vocab = tokens.vocabulary_for_rows(MAX_ROWS)
  assert vocab.column_masks.shape == (5, vocab.size)
  assert vocab.column_masks.dtype == np.bool_
  tokens_RxC = tokens.encode_program(EXAMPLE, MAX_ROWS)
  for row in tokens_RxC:
    assert all(vocab.column_masks[c, t] for c, t in enumerate(row))
  name_allowed = lambda c, name: vocab.column_masks[c, vocab.ids[name]]
  assert not name_allowed(0, "v1") and not name_allowed(0, "LAM_ADD")
  assert not name_allowed(2, "LAM_ADD") and not name_allowed(4, "tokens")
  assert name_allowed(1, "v3") and name_allowed(3, "indices")


def _rows(*named_rows, max_rows=6) -> np.ndarray:
  """Token ids for rows of names, PAD-filled to max_rows."""
  vocab = tokens.vocabulary_for_rows(max_rows)
  rows = [list(r) for r in named_rows]
  rows += [["PAD"] * 5] * (max_rows - len(rows))
  return np.array([[vocab.ids[n] for n in r] for r in rows], np.int32)


START = ("PROGRAM_START", "NA", "NA", "NA", "NA")
END = ("PROGRAM_END", "NA", "NA", "NA", "NA")


@pytest.mark.parametrize("rows, message", [
    ((START, ("MAP", "LAM_ADD_1", "v2", "NA", "v1"), END),
     r"row 1 .*'v2' is used before it is defined"),
    ((START, ("MAP", "LAM_ADD_1", "tokens", "indices", "v1"), END),
     r"row 1 .*MAP takes 2 argument slots"),
    ((START, ("SELECT", "PRED_EQ", "tokens", "NA", "v1"), END),
     r"row 1 .*SELECT takes 3 argument slots"),
    ((START, ("AGGREGATE", "LAM_ADD_1", "tokens", "NA", "v1"), END),
     r"row 1 .*'LAM_ADD_1' is not a variable"),
    ((START, ("MAP", "LAM_ADD_1", "tokens", "NA", "v1"),
      ("MAP", "LAM_ADD_1", "v1", "NA", "v2")),
     r"row 3 .*missing PROGRAM_END"),
    ((START, ("MAP", "LAM_ADD_1", "tokens", "NA", "v1"), END,
      ("MAP", "LAM_ADD_1", "v1", "NA", "v2")),
     r"row 3 .*only PAD rows may follow PROGRAM_END"),
    ((("MAP", "LAM_ADD_1", "tokens", "NA", "v1"), END),
     r"row 0 .*PROGRAM_START"),
    ((START, END), r"row 1 .*at least one instruction"),
    ((START, ("MAP", "PAD", "tokens", "NA", "v1"), END),
     r"row 1 .*column 1 cannot hold 'PAD'"),
    ((START, ("MAP", "LAM_ADD_1", "tokens", "NA", "v1"),
      ("MAP", "LAM_ADD_1", "v1", "NA", "v1"), END),
     r"row 2 .*'v1' is defined twice"),
    ((START, ("MAP", "PRED_EQ", "tokens", "NA", "v1"), END),
     r"rows 1-1 are not a valid program .*unknown Map function 'PRED_EQ'"),
    ((START, ("SELECT", "PRED_EQ", "tokens", "tokens", "v1"), END),
     r"is a selector"),
])
def test_malformed_rows_raise_naming_the_row(rows, message):
  with pytest.raises(ValueError, match=message):
    tokens.decode_program(_rows(*rows))


def test_unknown_ids_and_bad_shapes_raise():
  tokens_RxC = _rows(START, ("MAP", "LAM_ADD_1", "tokens", "NA", "v1"), END)
  tokens_RxC[1, 2] = 999
  with pytest.raises(ValueError,
                     match=r"row 1 .*unknown token ids \['\?999'\]"):
    tokens.decode_program(tokens_RxC)
  with pytest.raises(ValueError, match="shape"):
    tokens.decode_program(np.zeros((6, 4), np.int32))
  with pytest.raises(ValueError, match="integer"):
    tokens.decode_program(np.zeros((6, 5), np.float32))


def test_too_many_instructions_for_max_rows_is_a_limit():
  with pytest.raises(LimitExceeded, match="max_rows=6 holds at most 4"):
    tokens.encode_program(EXAMPLE, 6)


@pytest.mark.parametrize("function, message", [
    (Table(((("a",), 1), (("b",), 2))),
     "a table function; the token vocabulary cannot express it"),
    (Linear(0.5, 2.0), "a linear function with unnamed factors; the token "
     "vocabulary cannot express it"),
])
def test_a_table_or_linear_function_is_a_limit(function, message):
  # A valid program the tokens cannot name: the pipeline drops it as it
  # drops programs over max_rows, instead of stopping on a ValueError.
  if isinstance(function, Table):
    rows = [(M, function, ("tokens",), "v1")]
  else:
    rows = [(M, "LAM_EQ_0", ("indices",), "v1", NUM),
            (SM, function, ("v1", "v1"), "v2", NUM)]
  with pytest.raises(LimitExceeded, match=message):
    tokens.encode_program(program(*rows), MAX_ROWS)


def test_render_shows_unknown_ids():
  tokens_RxC = tokens.encode_program(EXAMPLE, MAX_ROWS)
  tokens_RxC[1, 1] = -3
  assert tokens.render_rows(tokens_RxC).splitlines()[1].split()[1] == "?-3"
