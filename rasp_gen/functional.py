"""Do two programs compute the same function? Checked with tracr's evaluator.

Weights cannot tell every program apart (see `encoding/verify.py`) and two
different programs can compute the same thing (`x - 1 == 0` is `x == 1`), so
a decompiled program is also judged by what it computes: its outputs next to
the reference's on every input sequence when there are few, else on random
ones.
"""

import numbers
from typing import Any, Iterable, Sequence

import numpy as np
from tracr.rasp import rasp

from rasp_gen import convert, sampler
from rasp_gen.program import Program

# Numerical outputs (means, linear maps) equal within this.
TOLERANCE = 1e-6
# What tracr's evaluator raises for a program that fails on an input.
_RUN_ERRORS = (ValueError, TypeError, ArithmeticError)


def _sorted_vocab(vocab: Iterable) -> list:
  """A fixed token order, so inputs do not depend on set iteration order."""
  return sorted(vocab, key=lambda t: (isinstance(t, str), t))


def check_inputs(vocab: Iterable, max_seq_len: int, rng: np.random.Generator,
                 num_random: int, exhaustive_limit: int) -> list[list]:
  """Input sequences to compare programs on: `sampler.check_inputs` over
  the sorted vocab.

  Every sequence of every length 1..max_seq_len (shortest first) when there
  are at most `exhaustive_limit` of them; otherwise `num_random` random ones
  from `rng` (`sampler.random_inputs`: half of full length) and each token
  repeated max_seq_len times.
  """
  tokens = _sorted_vocab(vocab)
  if not tokens or max_seq_len < 1:
    raise ValueError(f"no inputs for vocab {tokens} and max_seq_len "
                     f"{max_seq_len}")
  return sampler.check_inputs(rng, tokens, max_seq_len, num_random,
                              exhaustive_limit)


def run_program(program: Program, xs: Sequence) -> list:
  """The program's output on `xs`, by tracr's RASP evaluator."""
  return list(rasp.evaluate(convert.to_rasp(program), xs))


def _same_value(a: Any, b: Any) -> bool:
  if a is None or b is None:
    return a is None and b is None
  if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
    return abs(a - b) <= TOLERANCE
  return a == b


def _same_outputs(a: Sequence, b: Sequence) -> bool:
  return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))


def same_function(candidate: Program, reference: Program,
                  inputs: Iterable[Sequence]) -> bool:
  """True iff both programs give equal outputs on every input.

  Numbers are equal within TOLERANCE (and, as in Python, True == 1); None
  only equals None. A candidate that fails while running (e.g. a None from
  an empty Aggregate reaching a Select) computes nothing, so it is False.
  Inputs on which the reference itself fails are skipped: RASP defines no
  output there (about 2 % of sampled programs fail on some short inputs
  that their random checks missed). When the reference fails on every input
  nothing was compared, and that is False too, not a vacuous True. An
  invalid program raises `validate`'s ValueError.
  """
  candidate_sop = convert.to_rasp(candidate)
  reference_sop = convert.to_rasp(reference)
  compared = 0
  for xs in inputs:
    try:
      expected = rasp.evaluate(reference_sop, xs)
    except _RUN_ERRORS:
      continue
    try:
      got = rasp.evaluate(candidate_sop, xs)
    except _RUN_ERRORS:
      return False
    if not _same_outputs(got, expected):
      return False
    compared += 1
  return compared > 0
