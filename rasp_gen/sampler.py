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
"""

import collections
import dataclasses
import itertools
from typing import Optional, Sequence

import ml_collections
import numpy as np
from tracr.compiler import validating
from tracr.rasp import rasp

from compiled import compare, compiler, forward, inputs as inputs_lib
from rasp_gen import convert, functions, labels
from rasp_gen.program import (INDICES, TOKENS, Encoding, Instruction,
                              Operator, Program, canonicalize)


@dataclasses.dataclass(frozen=True)
class SampledProgram:
  """A canonical program, the input space it is checked on, and its weights.

  `compiled` uses tracr's default BOS/PAD names; it is left out of equality,
  which is the program's and its input space's.
  """

  program: Program
  vocab: tuple[int, ...]
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

  def map(self) -> bool:
    numerical = self.rng.random() < self.config.numerical_share
    source = self._pick(self._sequences(Encoding.CATEGORICAL))
    options = []
    for function in functions.MAP_FUNCTIONS:
      if functions.accepts(function, source.values):
        values = {function.fn(x) for x in source.values}
        if self._useful(values):
          options.append((function, values))
    if not options:
      return False
    function, values = _choice(self.rng, options)
    encoding = Encoding.NUMERICAL if numerical else Encoding.CATEGORICAL
    self._add(Operator.MAP, function.name, [source], frozenset(values), encoding)
    return True

  def sequence_map(self) -> bool:
    numerical = self._sequences(Encoding.NUMERICAL)
    if len(numerical) >= 1 and self.rng.random() < self.config.numerical_share * 2:
      first, second = self._pick(numerical), self._pick(numerical)
      linear = _choice(self.rng, functions.LINEAR_FUNCTIONS)
      values = {linear.fst_factor * x + linear.snd_factor * y
                for x, y in itertools.product(first.values, second.values)}
      if first.name == second.name or len(values) < 2:
        return False
      self._add(Operator.SEQUENCE_MAP, linear.name, [first, second],
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
    if not options:
      return False
    function, values = _choice(self.rng, options)
    self._add(Operator.SEQUENCE_MAP, function.name, [first, second],
              frozenset(values), Encoding.CATEGORICAL)
    return True

  def _select(self, moves_categorical: bool) -> _Variable:
    """A new selector. One that moves a categorical value is most often an
    index lookup (keys=indices, EQ), the pattern tracr compiles exactly."""
    categorical = self._sequences(Encoding.CATEGORICAL)
    if moves_categorical and self.rng.random() < self.config.index_lookup_share:
      keys, predicate = self.variables[1], "PRED_EQ"
      queries = self._pick([v for v in categorical if v.name != INDICES]
                           or categorical)
    else:
      keys, queries = self._pick(categorical), self._pick(categorical)
      predicate = _choice(self.rng, tuple(functions.PREDICATES))
    return self._add(Operator.SELECT, predicate, [keys, queries], frozenset(),
                     Encoding.CATEGORICAL, is_selector=True)

  def aggregate(self) -> bool:
    binary = self._sequences(
        Encoding.NUMERICAL, lambda v: {int(x) for x in v.values} <= {0, 1}
        and all(float(x) == int(x) for x in v.values))
    if binary and self.rng.random() < 0.5:
      source = self._pick(binary)
      self._add(Operator.AGGREGATE, None, [self._select(False), source],
                frozenset(x / n for x in source.values
                          for n in range(1, self.max_seq_len + 1)),
                Encoding.NUMERICAL)
      return True
    source = self._pick(self._sequences(Encoding.CATEGORICAL))
    self._add(Operator.AGGREGATE, None, [self._select(True), source],
              source.values, Encoding.CATEGORICAL)
    return True

  def selector_width(self) -> bool:
    self._add(Operator.SELECTOR_WIDTH, None, [self._select(False)],
              frozenset(range(self.max_seq_len + 1)), Encoding.CATEGORICAL)
    return True


def _grow(builder: _Builder, length: int) -> Optional[Program]:
  weights = builder.config.operator_weights
  operators = list(weights)
  probabilities = np.array([weights[o] for o in operators], dtype=float)
  probabilities /= probabilities.sum()
  for _ in range(20 * length):
    remaining = length - len(builder.instructions)
    if remaining <= 0:
      break
    operator = operators[int(builder.rng.choice(len(operators), p=probabilities))]
    if operator in ("AGGREGATE", "SELECTOR_WIDTH") and remaining < 2:
      continue  # these write two rows: the Select and themselves
    getattr(builder, operator.lower())()
  if len(builder.instructions) != length or builder.variables[-1].is_selector:
    return None
  program = canonicalize(Program(tuple(builder.instructions)))
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
    except (ValueError, TypeError, ArithmeticError):
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
