"""Programs as fixed-size arrays of token rows, and back.

Row layout (one instruction per row, `NA` in unused slots):

  PROGRAM_START  NA              NA       NA       NA
  MAP            LAM_ADD_1       indices  NA       v1
  SELECT         PRED_EQ         v1       tokens   v2    (keys, queries)
  AGGREGATE      v2              tokens   NA       v3    (selector, sequence)
  SELECTOR_WIDTH v2              NA       NA       v4
  SEQUENCE_MAP   LAM_MUL         indices  tokens   v5
  MAP_NUMERICAL  LAM_EQ_0        tokens   NA       v6    (numerical output)
  PROGRAM_END    NA              NA       NA       NA
  PAD            PAD             PAD      PAD      PAD   (up to max_rows)

The vocabulary has `max_rows - 2` variables, so an array's shape fixes its
vocabulary. Programs are canonicalized before encoding, so
`decode_program(encode_program(p, n)) == canonicalize(p)`.
"""

import numpy as np

from encoding import vocabulary
from encoding.limits import LimitExceeded
from encoding.vocabulary import (NA, NUM_COLUMNS, PAD, PROGRAM_END,
                                 PROGRAM_START, Vocabulary)
from rasp_gen.program import (ARITY, INPUTS, TAKES_FUNCTION, Instruction,
                              Program, Table, canonicalize, validate)

Row = tuple[str, ...]
_NUM_ARGS = NUM_COLUMNS - 2  # Slots between the operator and the output.


def vocabulary_for_rows(max_rows: int) -> Vocabulary:
  """The vocabulary of `[max_rows, 5]` arrays: a variable per instruction."""
  if max_rows < 3:
    raise ValueError(f"max_rows must be at least 3 (start, one instruction, "
                     f"end), got {max_rows}")
  return vocabulary.get_vocabulary(max_rows - 2)


def _framing_row(token: str) -> Row:
  return (token,) + (NA,) * (NUM_COLUMNS - 1)


def instruction_row(instruction: Instruction) -> Row:
  """The five token names of one instruction.

  LimitExceeded for a function given as a `Table` or `Linear` factors: a
  valid program, but only named functions have tokens, so the input
  pipeline drops (and counts) such a record like one over the size limits.
  """
  if instruction.function is not None and not isinstance(
      instruction.function, str):
    kind = ("a table function" if isinstance(instruction.function, Table)
            else "a linear function with unnamed factors")
    raise LimitExceeded(
        f"{instruction.operator.value} -> {instruction.output}: {kind}; the "
        "token vocabulary cannot express it (only named functions have "
        "tokens)")
  args = ([instruction.function] if instruction.function is not None else []
          ) + list(instruction.args)
  return ((vocabulary.operator_token(instruction.operator,
                                     instruction.encoding),)
          + tuple(args) + (NA,) * (_NUM_ARGS - len(args))
          + (instruction.output,))


def encode_program(program: Program, max_rows: int) -> np.ndarray:
  """The canonical program as int32 token ids [max_rows, 5], PAD-filled."""
  canonical = canonicalize(program)
  if len(canonical) + 2 > max_rows:
    raise LimitExceeded(f"program has {len(canonical)} instructions; "
                        f"max_rows={max_rows} holds at most {max_rows - 2}")
  vocab = vocabulary_for_rows(max_rows)
  rows = ([_framing_row(PROGRAM_START)]
          + [instruction_row(i) for i in canonical.instructions]
          + [_framing_row(PROGRAM_END)])
  rows += [(PAD,) * NUM_COLUMNS] * (max_rows - len(rows))
  return np.array([[vocab.ids[t] for t in row] for row in rows], np.int32)


def _names(vocab: Vocabulary, row_C: np.ndarray) -> list[str]:
  return [vocab.tokens[t] if 0 <= t < vocab.size else f"?{t}" for t in row_C]


def render_rows(tokens_RxC: np.ndarray) -> str:
  """The rows as aligned text, one line per row, PAD rows left out.

  Works on malformed arrays too (unknown ids print as `?id`), so it can show
  a model's raw prediction.
  """
  tokens_RxC = np.asarray(tokens_RxC)
  vocab = vocabulary_for_rows(tokens_RxC.shape[0])
  rows = [_names(vocab, row) for row in tokens_RxC]
  rows = [row for row in rows if row != [PAD] * NUM_COLUMNS]
  widths = [max([len(row[c]) for row in rows] + [0])
            for c in range(NUM_COLUMNS)]
  return "\n".join(" ".join(name.ljust(w) for name, w in zip(row, widths)
                            ).rstrip() for row in rows)


def _parse_instruction(vocab: Vocabulary, row: list[str],
                       defined: set[str]) -> Instruction:
  """One instruction row; raises ValueError (without the row) if malformed."""
  for column, name in enumerate(row):
    if not vocab.column_masks[column, vocab.ids[name]] or name == PAD:
      raise ValueError(f"column {column} cannot hold {name!r}")
  if row[0] not in vocab.operators:
    raise ValueError(f"{row[0]!r} is not an operator")
  operator, encoding = vocab.operators[row[0]]
  used = list(row[1:-1])
  num_used = int(TAKES_FUNCTION[operator]) + ARITY[operator]
  if NA in used[:num_used] or any(a != NA for a in used[num_used:]):
    raise ValueError(f"{operator.value} takes {num_used} argument slots "
                     f"(function included), then NA")
  function = used[0] if TAKES_FUNCTION[operator] else None
  if function is not None and function not in vocab.functions:
    raise ValueError(f"{function!r} is not a function")
  args = tuple(used[int(TAKES_FUNCTION[operator]):num_used])
  for arg in args:
    if arg not in INPUTS and arg not in vocab.variables:
      raise ValueError(f"{arg!r} is not a variable")
    if arg not in INPUTS and arg not in defined:
      raise ValueError(f"variable {arg!r} is used before it is defined")
  output = row[-1]
  if output == NA:
    raise ValueError("an instruction needs a return variable")
  if output in defined:
    raise ValueError(f"variable {output!r} is defined twice")
  return Instruction(operator, function, args, output, encoding)


def decode_program(tokens_RxC: np.ndarray) -> Program:
  """The program of a token array; ValueError naming the row if malformed.

  Checks, in order: shape and ids, the PROGRAM_START row, each instruction
  row (column contents, operator arity, variables defined before use), a
  PROGRAM_END row, only PAD rows after it, and finally `program.validate`
  (encodings, function kinds), whose instruction i is row i + 1.
  """
  tokens_RxC = np.asarray(tokens_RxC)
  if tokens_RxC.ndim != 2 or tokens_RxC.shape[1] != NUM_COLUMNS:
    raise ValueError(f"tokens must have shape [rows, {NUM_COLUMNS}], got "
                     f"{tokens_RxC.shape}")
  if not np.issubdtype(tokens_RxC.dtype, np.integer):
    raise ValueError(f"tokens must be integer ids, got {tokens_RxC.dtype}")
  vocab = vocabulary_for_rows(tokens_RxC.shape[0])
  rows = [_names(vocab, row) for row in tokens_RxC]

  def fail(r: int, message: str) -> ValueError:
    return ValueError(f"row {r} ({' '.join(rows[r])}): {message}")

  for r, row in enumerate(rows):
    unknown = [name for name in row if name.startswith("?")]
    if unknown:
      raise fail(r, f"unknown token ids {unknown} (vocabulary size "
                 f"{vocab.size})")
  if tuple(rows[0]) != _framing_row(PROGRAM_START):
    raise fail(0, "the first row must be PROGRAM_START followed by NA")
  instructions: list[Instruction] = []
  defined: set[str] = set()
  end = None
  for r in range(1, len(rows)):
    if rows[r][0] == PROGRAM_END:
      end = r
      break
    if rows[r] == [PAD] * NUM_COLUMNS:
      raise fail(r, "missing PROGRAM_END before the PAD rows")
    try:
      instruction = _parse_instruction(vocab, rows[r], defined)
    except ValueError as e:
      raise fail(r, str(e)) from None
    instructions.append(instruction)
    defined.add(instruction.output)
  # Unreachable while the vocabulary has max_rows - 2 variables (R - 1
  # instruction rows would need R - 1); named in case that changes.
  if end is None:
    raise fail(len(rows) - 1, f"no PROGRAM_END row in {len(rows)} rows")
  if tuple(rows[end]) != _framing_row(PROGRAM_END):
    raise fail(end, "PROGRAM_END must be followed by NA")
  if not instructions:
    raise fail(end, "a program needs at least one instruction")
  for r in range(end + 1, len(rows)):
    if rows[r] != [PAD] * NUM_COLUMNS:
      raise fail(r, "only PAD rows may follow PROGRAM_END")
  program = Program(tuple(instructions))
  try:
    validate(program)
  except ValueError as e:
    raise ValueError(f"rows 1-{end - 1} are not a valid program "
                     f"(instruction i is row i + 1): {e}") from None
  return program
