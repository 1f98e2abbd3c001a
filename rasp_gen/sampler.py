"""Random valid RASP programs, with the vocabulary and length they compile for.

Programs grow one instruction at a time from `tokens` and `indices`. Every
variable carries its exact value set (computed the way tracr's basis
inference does) and encoding, so each function is only applied where it is
meaningful and never collapses to a constant. A grown program is kept only if
its canonical form has the drawn length (no dead code), tracr's dynamic
validation accepts it on random inputs, its output is not (nearly) constant
over them, it compiles (with the fast compiler, ~10 ms), and it is faithful:
its compiled weights, run by `compiled.forward` and decoded as tracr does,
give exactly `rasp.evaluate`'s output, typed, on every check input (all
inputs when there are at most `faithful_exhaustive_limit`, else the
validation inputs, `num_faithful_inputs` more random ones and every constant
sequence of full length). tracr's `dynamic_validate` misses such programs,
about one compiled draw in five on configs/data.py: SelectorWidth at
max_seq_len 10 reads a width of 10 as 9, a numerical Map's negative outputs
are cut to 0 by the ReLU, a categorical Aggregate that selects nothing is
None in RASP but feeds a value into later MLPs, one that averages gives a
mean. Each rejected draw is counted by reason (`REJECTIONS`).

The wider language (configs/wide_data.py). Each knob is off at its default
(0, False), and off it draws no random number, so a config that leaves them
off draws the programs it drew before they existed:

- `table_share`: a categorical-input Map or a categorical SequenceMap is a
  random `Table` (outputs from a small set of ints, or of strings or bools
  where an argument is such); one no named function accepts (a string
  argument) always is. A numerical SequenceMap has random `Linear` factors.
- `custom_select_share`: a Select's predicate is a `Table` over its keys'
  and queries' value sets: an offset `q == k + c`, `k < q - c`, a constant
  key `k == c`, a random lookup of an index per query value, or a random
  relation.
- `string_vocab_share`: the vocabulary is letters ("a", "b", ...) of the
  drawn size (from the drawn offset); named functions do not take strings
  (`functions.accepts`), named predicates on strings are EQ, NEQ and TRUE,
  and keys and queries are of one kind (numbers or strings) unless the
  predicate is a table.
- `reuse_select_share`: an Aggregate or SelectorWidth reads a selector
  already made (one Select feeding several) instead of a new one.
- Long programs (`length` up to 32): `grow_past_dead_code` grows until the
  newest variable reads exactly `length` instructions and drops the rest;
  `max_numerical_product` bounds a numerical SequenceMap's value-set
  product. Near 32 instructions most draws are still rejected ("invalid":
  some input makes an Aggregate select nothing, or average), so a sample
  takes seconds and `max_attempts` may run out.

A drawn table equal to a named function or predicate on its whole domain is
written as that name (`convert.readable`), so a program has one label.
"""

import collections
import dataclasses
import itertools
import string
from typing import Callable, Optional, Sequence

import ml_collections
import numpy as np
from tracr.compiler import validating
from tracr.rasp import rasp

from compiled import compare, compiler, forward, inputs as inputs_lib
from rasp_gen import convert, functions, labels
from rasp_gen.program import (INDICES, TOKENS, Encoding, Function,
                              Instruction, Linear, Operator, Program, Table,
                              canonicalize)


@dataclasses.dataclass(frozen=True)
class SampledProgram:
  """A canonical program, the input space it is checked on, and its weights.

  `compiled` uses tracr's default BOS/PAD names; it is left out of equality,
  which is the program's and its input space's.
  """

  program: Program
  vocab: tuple  # ints, or letters (string_vocab_share)
  max_seq_len: int
  compiled: compiler.CompiledModel = dataclasses.field(
      compare=False, repr=False)
  # Draws rejected before this one, by reason (see REJECTIONS).
  rejections: dict[str, int] = dataclasses.field(
      default_factory=dict, compare=False, repr=False)


# Why `sample_program` rejects a draw:
REJECTIONS = (
    "no_program",  # growing did not reach the drawn length without dead code
    "invalid",  # tracr's dynamic validation or evaluator fails on an input
    "constant",  # the output is (nearly) constant over the check inputs
    "does_not_compile",  # tracr refuses to compile it
    "unfaithful",  # the compiled weights compute something else on an input
)


class SamplingError(RuntimeError):
  """No draw passed; `rejections` counts the rejected draws by reason."""

  def __init__(self, message: str, rejections: dict[str, int]):
    super().__init__(message)
    self.rejections = rejections


@dataclasses.dataclass(frozen=True)
class _Variable:
  name: str
  values: frozenset  # empty for selectors
  encoding: Encoding
  is_selector: bool = False


def sampler_rng(seed: int, index: int) -> np.random.Generator:
  """The generator for program `index` of a run: the same on any machine."""
  return np.random.default_rng([seed, index])


def _choice(rng: np.random.Generator, items: Sequence):
  return items[int(rng.integers(len(items)))]


def _draw_inclusive(rng: np.random.Generator, bounds: Sequence[int]) -> int:
  low, high = bounds
  return int(rng.integers(low, high + 1))


def _share(config: ml_collections.ConfigDict, name: str) -> float:
  """A wider-language share; 0 where the config predates it."""
  return float(config.get(name, 0.0) or 0.0)


def _drawn(rng: np.random.Generator, share: float) -> bool:
  """True with chance `share`; draws nothing when it is 0, so a config with
  the share off gives the programs it gave before the share existed."""
  return share > 0 and rng.random() < share


# Letters of a string vocabulary, and the pool string table outputs draw from.
LETTERS = string.ascii_lowercase
# Table outputs that are ints come from range(_INT_OUTPUTS).
_INT_OUTPUTS = 10
# Named predicates drawn between strings: those that read equality.
STRING_PREDICATES = ("PRED_EQ", "PRED_NEQ", "PRED_TRUE")
# Constants c of the custom predicates q == k + c and k < q - c.
_OFFSETS = (-2, -1, 1, 2)
_LESS_OFFSETS = (-1, 1, 2)
# Factors of random Linear functions (numerical SequenceMaps).
_LINEAR_FACTORS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0)
_LINEAR_NAMES = {(f.fst_factor, f.snd_factor): f.name
                 for f in functions.LINEAR_FUNCTIONS}


def _kind(values: frozenset) -> str:
  """"str" for a variable holding strings, else "number" (bools included)."""
  return "str" if any(isinstance(v, str) for v in values) else "number"


def _is_int(values: frozenset) -> bool:
  return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _sorted(values: frozenset) -> list:
  """A fixed order of a value set (a set of strings iterates in a different
  order in every process), so that tables drawn over it are reproducible."""
  return sorted(values, key=lambda v: (isinstance(v, str), type(v).__name__,
                                       v))


class _Builder:
  """Grows one program; holds the variables defined so far."""

  def __init__(self, rng: np.random.Generator, config: ml_collections.ConfigDict,
               vocab: tuple[int, ...], max_seq_len: int):
    self.rng = rng
    self.config = config
    self.max_seq_len = max_seq_len
    self.variables = [
        _Variable(TOKENS, frozenset(vocab), Encoding.CATEGORICAL),
        _Variable(INDICES, frozenset(range(max_seq_len)), Encoding.CATEGORICAL),
    ]
    self.used: set[str] = set()
    self.instructions: list[Instruction] = []

  def _sequences(self, encoding: Encoding, predicate=lambda v: True):
    return [v for v in self.variables if not v.is_selector
            and v.encoding == encoding and predicate(v)]

  def _pick(self, candidates: list[_Variable]) -> Optional[_Variable]:
    """Prefers variables nothing uses yet, so few instructions end up dead."""
    if not candidates:
      return None
    unused = [v for v in candidates if v.name not in self.used]
    if unused and self.rng.random() < self.config.prefer_unused:
      return _choice(self.rng, unused)
    return _choice(self.rng, candidates)

  def _add(self, operator: Operator, function: Optional[str],
           args: Sequence[_Variable], values: frozenset, encoding: Encoding,
           is_selector: bool = False) -> _Variable:
    name = f"x{len(self.instructions) + 1}"
    self.instructions.append(Instruction(
        operator, function, tuple(a.name for a in args), name, encoding))
    self.used.update(a.name for a in args)
    variable = _Variable(name, values, encoding, is_selector)
    self.variables.append(variable)
    return variable

  def _useful(self, values: set) -> bool:
    return 2 <= len(values) <= self.config.max_value_set_size

  def _draws_table(self, no_named_option: bool) -> bool:
    """Whether a Map or SequenceMap is a random table: always where no named
    function fits (e.g. a string argument), if tables are on at all."""
    share = _share(self.config, "table_share")
    return share > 0 and (no_named_option or self.rng.random() < share)

  def _output_pool(self, args: Sequence[_Variable], numerical: bool) -> list:
    """The values a random table's outputs are drawn from: a few ints (not
    negative for a numerical Map: tracr's MLP cuts those to 0), or strings
    or bools where an argument holds such."""
    kinds = ["int"]
    if not numerical:
      kinds += ["str"] * any(_kind(a.values) == "str" for a in args)
      kinds += ["bool"] * any(
          all(isinstance(v, bool) for v in a.values) for a in args)
    kind = _choice(self.rng, kinds)
    if kind == "bool":
      return [False, True]
    size = min(_draw_inclusive(self.rng, self.config.get(
        "table_num_values", (2, 4))), _INT_OUTPUTS)
    if kind == "str":
      return sorted(LETTERS[int(i)] for i in self.rng.choice(
          len(LETTERS), size, replace=False))
    return sorted(int(i) for i in self.rng.choice(_INT_OUTPUTS, size,
                                                  replace=False))

  def _random_table(self, operator: Operator, args: Sequence[_Variable],
                    pool: list) -> tuple[Function, frozenset]:
    """A table over the arguments' value sets with outputs from `pool`, at
    least two of them; a named function where one equals it."""
    points = list(itertools.product(*(_sorted(a.values) for a in args)))
    outputs = [pool[int(i)] for i in self.rng.integers(len(pool),
                                                       size=len(points))]
    if len(set(outputs)) < 2:  # Not constant: one point reads another value.
      point = int(self.rng.integers(len(points)))
      outputs[point] = _choice(self.rng, [v for v in pool
                                          if v != outputs[point]])
    table = Table(tuple(zip(points, outputs)))
    return convert.readable(operator, table), frozenset(outputs)

  def map(self) -> bool:
    numerical = self.rng.random() < self.config.numerical_share
    source = self._pick(self._sequences(Encoding.CATEGORICAL))
    options = []
    for function in functions.MAP_FUNCTIONS:
      if functions.accepts(function, source.values):
        values = {function.fn(x) for x in source.values}
        if self._useful(values):
          options.append((function, values))
    encoding = Encoding.NUMERICAL if numerical else Encoding.CATEGORICAL
    if self._draws_table(not options):
      function, values = self._random_table(
          Operator.MAP, [source], self._output_pool([source], numerical))
      self._add(Operator.MAP, function, [source], values, encoding)
      return True
    if not options:
      return False
    function, values = _choice(self.rng, options)
    self._add(Operator.MAP, function.name, [source], frozenset(values), encoding)
    return True

  def sequence_map(self) -> bool:
    numerical = self._sequences(Encoding.NUMERICAL)
    if len(numerical) >= 1 and self.rng.random() < self.config.numerical_share * 2:
      first, second = self._pick(numerical), self._pick(numerical)
      linear = _choice(self.rng, functions.LINEAR_FUNCTIONS)
      name = linear.name
      if _drawn(self.rng, _share(self.config, "table_share")):
        factors = (_choice(self.rng, _LINEAR_FACTORS),
                   _choice(self.rng, _LINEAR_FACTORS))
        linear = Linear(*factors)
        name = _LINEAR_NAMES.get(factors, linear)
      bound = self.config.get("max_numerical_product", 0)
      if bound and len(first.values) * len(second.values) > bound:
        return False  # Value sets would multiply without end.
      values = {linear.fst_factor * x + linear.snd_factor * y
                for x, y in itertools.product(first.values, second.values)}
      if first.name == second.name or len(values) < 2:
        return False
      self._add(Operator.SEQUENCE_MAP, name, [first, second],
                frozenset(values), Encoding.NUMERICAL)
      return True
    categorical = self._sequences(Encoding.CATEGORICAL)
    first, second = self._pick(categorical), self._pick(categorical)
    if (first.name == second.name or len(first.values) * len(second.values)
        > self.config.max_sequence_map_product):
      return False
    options = []
    for function in functions.SEQUENCE_MAP_FUNCTIONS:
      if (functions.accepts(function, first.values)
          and functions.accepts(function, second.values)):
        values = {function.fn(x, y)
                  for x, y in itertools.product(first.values, second.values)}
        if self._useful(values):
          options.append((function, values))
    if self._draws_table(not options):
      function, values = self._random_table(
          Operator.SEQUENCE_MAP, [first, second],
          self._output_pool([first, second], False))
      self._add(Operator.SEQUENCE_MAP, function, [first, second], values,
                Encoding.CATEGORICAL)
      return True
    if not options:
      return False
    function, values = _choice(self.rng, options)
    self._add(Operator.SEQUENCE_MAP, function.name, [first, second],
              frozenset(values), Encoding.CATEGORICAL)
    return True

  def _custom_predicate(self, keys: _Variable, queries: _Variable,
                        moves_categorical: bool) -> Function:
    """A random predicate table over keys x queries (module docstring).

    One that moves a categorical value selects at most one key value per
    query where it can (an offset, or a lookup of an index), since tracr's
    categorical Aggregate averages anything wider.
    """
    ints = _is_int(keys.values) and _is_int(queries.values)
    lookup = keys.name == INDICES
    forms = ["offset", "less"] * ints + ["lookup"] * lookup
    if moves_categorical:
      forms = [f for f in forms if f != "less"]
    if not forms or not moves_categorical:
      forms += ["constant", "relation"]
    form = _choice(self.rng, forms)
    key_values, query_values = _sorted(keys.values), _sorted(queries.values)
    points = list(itertools.product(key_values, query_values))
    if form == "offset":
      c = _choice(self.rng, _OFFSETS)
      selects = [q == k + c for k, q in points]
    elif form == "less":
      c = _choice(self.rng, _LESS_OFFSETS)
      selects = [k < q - c for k, q in points]
    elif form == "constant":
      c = _choice(self.rng, key_values)
      selects = [k == c for k, _ in points]
    elif form == "lookup":  # Each query value reads one random index.
      index = {q: _choice(self.rng, key_values) for q in query_values}
      selects = [k == index[q] for k, q in points]
    else:
      selects = list(self.rng.random(len(points)) < 0.5)
    selects = [bool(s) for s in selects]
    if len(set(selects)) < 2:  # Selects all or nothing: one pair flips.
      point = int(self.rng.integers(len(points)))
      selects[point] = not selects[point]
    return convert.readable(Operator.SELECT, Table(tuple(zip(points,
                                                             selects))))

  def _select(self, moves_categorical: bool) -> _Variable:
    """A new selector. One that moves a categorical value is most often an
    index lookup (keys=indices, EQ), the pattern tracr compiles exactly.

    Keys and queries hold one kind of value (numbers, or strings) unless
    the predicate is a table; a named predicate between strings is one of
    `STRING_PREDICATES`.
    """
    categorical = self._sequences(Encoding.CATEGORICAL)
    custom = _share(self.config, "custom_select_share")
    numbers = [v for v in categorical if _kind(v.values) == "number"]
    if moves_categorical and self.rng.random() < self.config.index_lookup_share:
      keys, predicate = self.variables[1], "PRED_EQ"
      queries = self._pick([v for v in numbers if v.name != INDICES]
                           or numbers)
      if _drawn(self.rng, custom):
        predicate = self._custom_predicate(keys, queries, moves_categorical)
    else:
      keys, queries = self._pick(categorical), self._pick(categorical)
      if _drawn(self.rng, custom):
        predicate = self._custom_predicate(keys, queries, moves_categorical)
      else:
        kind = _kind(keys.values)
        if _kind(queries.values) != kind:
          queries = self._pick([v for v in categorical
                                if _kind(v.values) == kind])
        predicate = _choice(self.rng, tuple(functions.PREDICATES)
                            if kind == "number" else STRING_PREDICATES)
    return self._add(Operator.SELECT, predicate, [keys, queries], frozenset(),
                     Encoding.CATEGORICAL, is_selector=True)

  def can_reuse_select(self) -> bool:
    return _share(self.config, "reuse_select_share") > 0 and any(
        v.is_selector for v in self.variables)

  def _selector(self, moves_categorical: bool, reuse: bool) -> _Variable:
    """A selector made before (always when `reuse`, else by chance
    `reuse_select_share`), or a new one."""
    if reuse or (self.can_reuse_select() and _drawn(
        self.rng, _share(self.config, "reuse_select_share"))):
      return self._pick([v for v in self.variables if v.is_selector])
    return self._select(moves_categorical)

  def aggregate(self, reuse: bool = False) -> bool:
    binary = self._sequences(
        Encoding.NUMERICAL, lambda v: {int(x) for x in v.values} <= {0, 1}
        and all(float(x) == int(x) for x in v.values))
    if binary and self.rng.random() < 0.5:
      source = self._pick(binary)
      self._add(Operator.AGGREGATE, None,
                [self._selector(False, reuse), source],
                frozenset(x / n for x in source.values
                          for n in range(1, self.max_seq_len + 1)),
                Encoding.NUMERICAL)
      return True
    source = self._pick(self._sequences(Encoding.CATEGORICAL))
    self._add(Operator.AGGREGATE, None, [self._selector(True, reuse), source],
              source.values, Encoding.CATEGORICAL)
    return True

  def selector_width(self, reuse: bool = False) -> bool:
    self._add(Operator.SELECTOR_WIDTH, None, [self._selector(False, reuse)],
              frozenset(range(self.max_seq_len + 1)), Encoding.CATEGORICAL)
    return True


def _grow(builder: _Builder, length: int) -> Optional[Program]:
  weights = builder.config.operator_weights
  operators = list(weights)
  probabilities = np.array([weights[o] for o in operators], dtype=float)
  probabilities /= probabilities.sum()
  draw = lambda: operators[int(builder.rng.choice(len(operators),
                                                  p=probabilities))]
  if builder.config.get("grow_past_dead_code", False):
    return _grow_past_dead_code(builder, length, draw)
  for _ in range(20 * length):
    remaining = length - len(builder.instructions)
    if remaining <= 0:
      break
    operator = draw()
    if operator in ("AGGREGATE", "SELECTOR_WIDTH") and remaining < 2:
      # These write two rows, the Select and themselves, unless they read
      # a selector made before.
      if builder.can_reuse_select():
        getattr(builder, operator.lower())(reuse=True)
      continue
    getattr(builder, operator.lower())()
  if len(builder.instructions) != length or builder.variables[-1].is_selector:
    return None
  return _labelled(builder, Program(tuple(builder.instructions)))


def _grow_past_dead_code(builder: _Builder, length: int,
                         draw: Callable[[], str]) -> Optional[Program]:
  """Grows until the newest variable reads exactly `length` instructions
  (itself included); the program is those, the rest dropped as dead code.

  Growing exactly `length` instructions with none dead, as `_grow` does,
  succeeds ever more rarely above ~10 instructions; this reaches 32.
  """
  above: dict[str, frozenset] = {}  # Variable -> the instructions it reads.
  for _ in range(20 * length):
    start = len(builder.instructions)
    getattr(builder, draw().lower())()
    for instruction in builder.instructions[start:]:
      above[instruction.output] = frozenset().union(
          {instruction.output}, *(above.get(a, ()) for a in instruction.args))
    newest = builder.variables[-1]
    if len(builder.instructions) > start and not newest.is_selector and len(
        above[newest.name]) == length:
      return _labelled(builder, Program(tuple(builder.instructions)))
  return None


def _labelled(builder: _Builder, program: Program) -> Program:
  """The grown program's canonical form, with canonical labels if asked."""
  program = canonicalize(program)
  if builder.config.canonical_labels:
    return labels.canonical_labels(program, builder.variables[0].values,
                                   builder.max_seq_len)
  return program


def _rejection(sop: rasp.SOp, inputs: list[list], max_output_share: float,
               outputs: dict[tuple, list]) -> Optional[str]:
  """Why the program is unusable on these inputs, or None.

  "invalid" when tracr's dynamic validation flags an input or the evaluator
  fails; "constant" when a single output covers more than
  `max_output_share` of the full-length inputs: a program that is constant
  but for rare inputs teaches little and makes functional accuracy easy to
  fake with a constant. The outputs go into `outputs`, keyed by input.
  """
  full_length_outputs = collections.Counter()
  for xs in inputs:
    # `dynamic_validate`, keeping the output: the validating evaluator is
    # tracr's default evaluator plus checks.
    validator = validating.DynamicValidationEvaluator()
    try:
      output = validator.evaluate(sop, xs)
    except compare.RUN_ERRORS:  # A table has no value for None: KeyError.
      return "invalid"
    if validator.unsupported_exprs:
      return "invalid"
    outputs[tuple(xs)] = output
    if len(xs) == len(inputs[0]):
      full_length_outputs[tuple(output)] += 1
  most_common = full_length_outputs.most_common(1)[0][1]
  if most_common > max_output_share * sum(full_length_outputs.values()):
    return "constant"
  return None


def first_unfaithful(sop: rasp.SOp, compiled: compiler.CompiledModel,
                     inputs: Sequence[Sequence],
                     compiler_bos: str = compiler.COMPILER_BOS,
                     known: Optional[dict[tuple, list]] = None
                     ) -> Optional[tuple[list, list, object]]:
  """The first input on which `compiled` does not compute `sop`, or None.

  Returned as (input, decoded output of the weights, `rasp.evaluate`'s
  output or the error it raised); see `compare.compare` (and its `known`).
  """
  output = compiled.output_decoding
  from_weights = forward.outputs(
      compiled.params, compiled.num_heads, compiled.input_tokens, output,
      inputs, compiler_bos, compiled.causal)
  return compare.compare(sop, inputs, from_weights, output.numerical,
                         known=known)[2]


def sample_program(rng: np.random.Generator,
                   config: ml_collections.ConfigDict) -> SampledProgram:
  """Draws a random valid, non-degenerate program and its input space.

  Args:
    rng: the only source of randomness; see `sampler_rng`.
    config: the `sampler` group of configs/data.py.

  The result's `rejections` counts the draws rejected before it, by reason.

  Raises:
    SamplingError: a RuntimeError, if no program passes after
      `config.max_attempts` draws (a config whose constraints cannot be met).
  """
  # The shape is drawn once, so that lengths stay uniform over the range
  # (long programs are rejected more often than short ones).
  vocab_size = _draw_inclusive(rng, config.vocab_size)
  offset = _draw_inclusive(rng, config.vocab_offset)
  vocab = tuple(range(offset, offset + vocab_size))
  max_seq_len = _draw_inclusive(rng, config.max_seq_len)
  length = _draw_inclusive(rng, config.length)
  if _drawn(rng, _share(config, "string_vocab_share")):
    if offset + vocab_size > len(LETTERS):
      raise ValueError(f"a string vocab of {vocab_size} letters from offset "
                       f"{offset} needs more than {len(LETTERS)} letters")
    vocab = tuple(LETTERS[offset:offset + vocab_size])
  rejections = collections.Counter()
  for _ in range(config.max_attempts):
    program = _grow(_Builder(rng, config, vocab, max_seq_len), length)
    if program is None or len(program) != length:
      rejections["no_program"] += 1
      continue
    inputs = inputs_lib.random_inputs(rng, vocab, max_seq_len, config.num_check_inputs)
    sop = convert.to_rasp(program)
    outputs = {}
    reason = _rejection(sop, inputs, config.max_output_share, outputs)
    if reason is not None:
      rejections[reason] += 1
      continue
    try:
      compiled = compiler.compile_rasp_to_model_numpy(sop, set(vocab),
                                                      max_seq_len)
    except (ValueError, NotImplementedError):
      # tracr cannot assemble e.g. an Aggregate whose value space is wider
      # than its query/key space; such programs are not in the dataset.
      rejections["does_not_compile"] += 1
      continue
    # The validation inputs (already evaluated) are checked too.
    faithful_inputs = inputs_lib.check_inputs(
        rng, vocab, max_seq_len, config.num_faithful_inputs,
        config.faithful_exhaustive_limit)
    if len(faithful_inputs) > config.faithful_exhaustive_limit:
      faithful_inputs = inputs + faithful_inputs
    difference = first_unfaithful(sop, compiled, faithful_inputs,
                                  known=outputs)
    if difference is not None:
      # The evaluator's error (a str) means RASP defines no output there.
      rejections["invalid" if isinstance(difference[2], str)
                 else "unfaithful"] += 1
      continue
    return SampledProgram(program, vocab, max_seq_len, compiled,
                          dict(sorted(rejections.items())))
  raise SamplingError(
      f"no valid program of length {length} for vocab {vocab} and "
      f"max_seq_len {max_seq_len} in {config.max_attempts} attempts; "
      "loosen the sampler config", dict(sorted(rejections.items())))
