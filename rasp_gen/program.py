"""An immutable RASP program: a tuple of instructions over `tokens` and `indices`.

Each instruction is one row `operator, function, args..., output` with an
encoding (categorical or numerical, in tracr's sense). The program's output is
the last instruction's output. Argument conventions follow tracr:

  MAP            function, x                  -> output
  SEQUENCE_MAP   function, x, y               -> output
  SELECT         predicate, keys, queries     -> output (a selector)
  AGGREGATE      selector, x                  -> output
  SELECTOR_WIDTH selector                     -> output
"""

import dataclasses
import enum
from typing import Optional

from rasp_gen import functions

TOKENS = "tokens"
INDICES = "indices"
INPUTS = (TOKENS, INDICES)


class Operator(str, enum.Enum):
  MAP = "MAP"
  SEQUENCE_MAP = "SEQUENCE_MAP"
  SELECT = "SELECT"
  AGGREGATE = "AGGREGATE"
  SELECTOR_WIDTH = "SELECTOR_WIDTH"


class Encoding(str, enum.Enum):
  CATEGORICAL = "categorical"
  NUMERICAL = "numerical"


# Number of variable arguments per operator, and whether it takes a function.
ARITY = {
    Operator.MAP: 1,
    Operator.SEQUENCE_MAP: 2,
    Operator.SELECT: 2,
    Operator.AGGREGATE: 2,
    Operator.SELECTOR_WIDTH: 1,
}
TAKES_FUNCTION = {
    Operator.MAP: True,
    Operator.SEQUENCE_MAP: True,
    Operator.SELECT: True,
    Operator.AGGREGATE: False,
    Operator.SELECTOR_WIDTH: False,
}


@dataclasses.dataclass(frozen=True)
class Instruction:
  """One program row. `function` is None for Aggregate and SelectorWidth."""

  operator: Operator
  function: Optional[str]
  args: tuple[str, ...]
  output: str
  encoding: Encoding = Encoding.CATEGORICAL

  def __str__(self) -> str:
    fields = [self.operator.value]
    if self.function is not None:
      fields.append(self.function)
    fields += list(self.args) + ["->", self.output]
    if self.encoding == Encoding.NUMERICAL:
      fields.append("(numerical)")
    return " ".join(fields)


@dataclasses.dataclass(frozen=True)
class Program:
  instructions: tuple[Instruction, ...]

  @property
  def output(self) -> str:
    return self.instructions[-1].output

  def __len__(self) -> int:
    return len(self.instructions)

  def __str__(self) -> str:
    return "\n".join(str(i) for i in self.instructions)


def _error(index: int, instruction: Instruction, message: str) -> ValueError:
  return ValueError(f"instruction {index} ({instruction}): {message}")


def validate(program: Program) -> None:
  """Raises ValueError, naming the instruction, unless the program is valid.

  Valid means: known operators and function names of the right kind, the right
  number of arguments, every argument defined by an earlier instruction (so
  no cycles), no variable defined twice, selectors used only where selectors
  go, and encodings that tracr can compile (numerical values never reach a
  Select, a categorical-only function or a categorical Aggregate).
  """
  if not program.instructions:
    raise ValueError("a program needs at least one instruction")
  kinds: dict[str, str] = {name: "sop" for name in INPUTS}
  encodings: dict[str, Encoding] = {
      name: Encoding.CATEGORICAL for name in INPUTS}
  for index, instruction in enumerate(program.instructions):
    fail = lambda message, i=index, ins=instruction: _error(i, ins, message)
    if not isinstance(instruction.operator, Operator):
      raise fail(f"unknown operator {instruction.operator!r}")
    if not isinstance(instruction.encoding, Encoding):
      raise fail(f"unknown encoding {instruction.encoding!r}")
    operator = instruction.operator
    if len(instruction.args) != ARITY[operator]:
      raise fail(f"{operator.value} takes {ARITY[operator]} arguments, "
                 f"got {len(instruction.args)}")
    if TAKES_FUNCTION[operator] != (instruction.function is not None):
      raise fail(f"{operator.value} "
                 f"{'needs' if TAKES_FUNCTION[operator] else 'takes no'} "
                 "function")
    for arg in instruction.args:
      if arg not in kinds:
        raise fail(f"variable {arg!r} is used before it is defined")
    if instruction.output in kinds:
      raise fail(f"variable {instruction.output!r} is defined twice")
    arg_kinds = [kinds[a] for a in instruction.args]
    arg_encodings = [encodings.get(a) for a in instruction.args]
    numerical = instruction.encoding == Encoding.NUMERICAL

    if operator in (Operator.AGGREGATE, Operator.SELECTOR_WIDTH):
      if arg_kinds[0] != "selector":
        raise fail(f"{instruction.args[0]!r} is not a selector")
      if operator == Operator.AGGREGATE and arg_kinds[1] != "sop":
        raise fail(f"{instruction.args[1]!r} is a selector, not a sequence")
      if operator == Operator.AGGREGATE and arg_encodings[1] != instruction.encoding:
        raise fail("an Aggregate's encoding must match its input's "
                   f"({arg_encodings[1].value})")
      if operator == Operator.SELECTOR_WIDTH and numerical:
        raise fail("SELECTOR_WIDTH is categorical only")
    else:
      for arg, kind in zip(instruction.args, arg_kinds):
        if kind != "sop":
          raise fail(f"{arg!r} is a selector, not a sequence")

    if operator == Operator.SELECT:
      if instruction.function not in functions.PREDICATES:
        raise fail(f"unknown predicate {instruction.function!r}")
      for arg, encoding in zip(instruction.args, arg_encodings):
        if encoding != Encoding.CATEGORICAL:
          raise fail(f"Select needs categorical keys and queries; {arg!r} "
                     "is numerical")
    elif operator == Operator.MAP:
      if instruction.function not in functions.MAP_BY_NAME:
        raise fail(f"unknown Map function {instruction.function!r}")
      if arg_encodings[0] == Encoding.NUMERICAL:
        raise fail(f"Map input {instruction.args[0]!r} is numerical; only "
                   "categorical inputs are compiled exactly")
    elif operator == Operator.SEQUENCE_MAP:
      if numerical:
        if instruction.function not in functions.LINEAR_BY_NAME:
          raise fail(f"unknown numerical SequenceMap function "
                     f"{instruction.function!r} (numerical SequenceMaps must "
                     f"be one of {sorted(functions.LINEAR_BY_NAME)})")
        if any(e != Encoding.NUMERICAL for e in arg_encodings):
          raise fail("a numerical (linear) SequenceMap needs numerical inputs")
      else:
        if instruction.function not in functions.SEQUENCE_MAP_BY_NAME:
          raise fail(f"unknown SequenceMap function {instruction.function!r}")
        if any(e != Encoding.CATEGORICAL for e in arg_encodings):
          raise fail("a categorical SequenceMap needs categorical inputs")

    if operator == Operator.SELECT:
      if numerical:
        raise fail("a selector has no encoding; use categorical")
      kinds[instruction.output] = "selector"
    else:
      kinds[instruction.output] = "sop"
      encodings[instruction.output] = instruction.encoding
  if kinds[program.output] != "sop":
    raise ValueError(f"the program's output {program.output!r} is a selector; "
                     "the last instruction must produce a sequence")


def canonicalize(program: Program) -> Program:
  """The program's canonical form: a function of its dataflow graph only.

  Instructions that do not feed the output are dropped; the rest are ordered
  by a post-order walk from the output that visits arguments in argument
  order, and renamed `v1, v2, ...` in that order. Two programs that differ
  only in the order of independent instructions or in variable names have the
  same canonical form; argument order (keys vs queries, operand order) is
  kept, since it changes what the program computes.
  """
  validate(program)
  by_output = {i.output: i for i in program.instructions}
  order: list[Instruction] = []
  visited: set[str] = set()

  # Iterative post-order DFS (programs are short, but recursion depth should
  # not limit what a user can bring).
  stack: list[tuple[str, bool]] = [(program.output, False)]
  while stack:
    name, expanded = stack.pop()
    if name in visited or name in INPUTS:
      continue
    if expanded:
      visited.add(name)
      order.append(by_output[name])
      continue
    stack.append((name, True))
    for arg in reversed(by_output[name].args):
      stack.append((arg, False))

  renaming = {name: name for name in INPUTS}
  for position, instruction in enumerate(order, start=1):
    renaming[instruction.output] = f"v{position}"
  return Program(tuple(
      dataclasses.replace(
          i,
          args=tuple(renaming[a] for a in i.args),
          output=renaming[i.output]) for i in order))
