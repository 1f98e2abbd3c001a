"""An immutable RASP program: a tuple of instructions over `tokens` and `indices`.

Each instruction is one row `operator, function, args..., output` with an
encoding (categorical or numerical, in tracr's sense). The program's output is
the last instruction's output. Argument conventions follow tracr:

  MAP            function, x                  -> output
  SEQUENCE_MAP   function, x, y               -> output
  SELECT         predicate, keys, queries     -> output (a selector)
  AGGREGATE      selector, x                  -> output
  SELECTOR_WIDTH selector                     -> output

A function is a name from `rasp_gen.functions`, a `Table` of values (any
function tracr compiles, read on the values its arguments take) or `Linear`
factors (any numerical SequenceMap tracr compiles).
"""

import dataclasses
import enum
import itertools
import numbers
from typing import Any, Callable, Optional, Sequence, Union

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


def value_order(value: Any) -> tuple:
  """A total order on mixed values (numbers, strings, tuples, the rest), so
  a table's entries have one order whatever order they were given in."""
  if isinstance(value, numbers.Real):
    return (0, value, type(value).__name__)
  if isinstance(value, str):
    return (1, value)
  if isinstance(value, tuple):
    return (2, tuple(value_order(v) for v in value))
  return (3, type(value).__name__, repr(value))


@dataclasses.dataclass(frozen=True)
class Table:
  """A function given by its value on every argument tuple it is applied to.

  tracr compiles a function to weights through its values on the values its
  arguments can take, so a table is all of a function that weights can show.
  Entries are kept sorted, so two tables of one function are equal.
  """

  entries: tuple[tuple[tuple[Any, ...], Any], ...]  # ((args...), value) pairs
  _values: dict = dataclasses.field(init=False, repr=False, compare=False,
                                    hash=False)

  def __post_init__(self):
    entries = tuple(sorted(((tuple(args), value) for args, value in self.entries),
                           key=lambda entry: value_order(entry[0])))
    if not entries:
      raise ValueError("a table needs at least one entry")
    if len({len(args) for args, _ in entries}) != 1:
      raise ValueError("a table's argument tuples must all have one length")
    values = dict(entries)
    if len(values) != len(entries):
      raise ValueError("a table gives two values for one argument tuple")
    object.__setattr__(self, "entries", entries)
    object.__setattr__(self, "_values", values)

  def __call__(self, *args: Any) -> Any:
    try:
      return self._values[args]
    except KeyError:
      raise KeyError(f"the table has no value for arguments {args!r}") from None

  @property
  def arity(self) -> int:
    return len(self.entries[0][0])

  @classmethod
  def from_function(cls, fn: Callable[..., Any],
                    domains: Sequence[Sequence[Any]]) -> "Table":
    """`fn` on every argument tuple of the domains' product.

    Arguments on which `fn` raises ArithmeticError are left out, as tracr's
    value-set inference leaves them out.
    """
    entries = []
    for args in itertools.product(*domains):
      try:
        entries.append((args, fn(*args)))
      except ArithmeticError:
        continue
    return cls(tuple(entries))


@dataclasses.dataclass(frozen=True)
class Linear:
  """A numerical SequenceMap fst_factor * x + snd_factor * y (tracr's LinearSequenceMap)."""

  fst_factor: float
  snd_factor: float


Function = Union[str, Table, Linear]


def function_text(operator: Operator, function: Function) -> str:
  """The function as one line: its name, a table's `{args:value, ...}` (a
  selector's as its set of true (key, query) pairs) or linear factors."""
  if isinstance(function, Linear):
    return f"linear({function.fst_factor!r}, {function.snd_factor!r})"
  if not isinstance(function, Table):
    return str(function)
  shown = lambda args: repr(args[0]) if len(args) == 1 else repr(args)
  if operator == Operator.SELECT:
    pairs = [shown(args) for args, value in function.entries if value]
    return "{" + ", ".join(pairs) + "}" if pairs else "set()"
  return "{" + ", ".join(f"{shown(args)}:{value!r}"
                         for args, value in function.entries) + "}"


@dataclasses.dataclass(frozen=True)
class Instruction:
  """One program row. `function` is None for Aggregate and SelectorWidth."""

  operator: Operator
  function: Optional[Function]
  args: tuple[str, ...]
  output: str
  encoding: Encoding = Encoding.CATEGORICAL

  def __str__(self) -> str:
    fields = [self.operator.value]
    if self.function is not None:
      fields.append(function_text(self.operator, self.function))
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

  Valid means: known operators and function names of the right kind (or a
  table of the right arity, or linear factors for a numerical SequenceMap),
  the right number of arguments, every argument defined by an earlier
  instruction (so no cycles), no variable defined twice, selectors used only
  where selectors go, and encodings that tracr can compile (numerical values
  never reach a Select, a categorical SequenceMap, a named Map or a
  categorical Aggregate; a numerical Map gives numbers).
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

    function = instruction.function
    if function is not None and not isinstance(function, (str, Table, Linear)):
      raise fail(f"function {function!r} is not a name, a Table or Linear")
    if isinstance(function, Table) and function.arity != ARITY[operator]:
      raise fail(f"a {operator.value} table takes {ARITY[operator]} "
                 f"arguments, not {function.arity}")
    if isinstance(function, Linear) and not (
        operator == Operator.SEQUENCE_MAP and numerical):
      raise fail("linear factors are only for a numerical SEQUENCE_MAP")
    if operator == Operator.SELECT:
      if isinstance(function, Table):
        if not all(isinstance(v, bool) for _, v in function.entries):
          raise fail("a Select table's values must be bool")
      elif function not in functions.PREDICATES:
        raise fail(f"unknown predicate {function!r}")
      for arg, encoding in zip(instruction.args, arg_encodings):
        if encoding != Encoding.CATEGORICAL:
          raise fail(f"Select needs categorical keys and queries; {arg!r} "
                     "is numerical")
    elif operator == Operator.MAP:
      numerical_input = arg_encodings[0] == Encoding.NUMERICAL
      if isinstance(function, Table):
        # tracr's numerical-input MLP skips arguments whose value is None.
        if numerical and not all(
            isinstance(v, numbers.Real) or (v is None and numerical_input)
            for _, v in function.entries):
          raise fail("a numerical Map's table must give numbers")
      elif function not in functions.MAP_BY_NAME:
        raise fail(f"unknown Map function {function!r}")
      elif numerical_input:
        raise fail(f"Map input {instruction.args[0]!r} is numerical; only a "
                   "table (read on tracr's value set) is compiled exactly")
    elif operator == Operator.SEQUENCE_MAP:
      if numerical:
        if isinstance(function, Table):
          raise fail("tracr compiles a numerical SequenceMap only when it is "
                     "linear: use Linear, not a table")
        if not isinstance(function, Linear) and (
            function not in functions.LINEAR_BY_NAME):
          raise fail(f"unknown numerical SequenceMap function {function!r} "
                     "(numerical SequenceMaps must be Linear or one of "
                     f"{sorted(functions.LINEAR_BY_NAME)})")
        if any(e != Encoding.NUMERICAL for e in arg_encodings):
          raise fail("a numerical (linear) SequenceMap needs numerical inputs")
      else:
        if not isinstance(function, Table) and (
            function not in functions.SEQUENCE_MAP_BY_NAME):
          raise fail(f"unknown SequenceMap function {function!r}")
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
