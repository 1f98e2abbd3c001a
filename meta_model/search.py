"""Search and verify: of a beam's candidates, the best that the weights confirm.

The beam ranks candidate programs by the meta-model's score; verification
(`compiled.verify`) says which of them compute what the given weights
compute. `choose` returns the best-scoring verified candidate, or, when none
verifies, the best-scoring one that decodes, with how far it agrees.
"""

import dataclasses
from typing import Optional

import numpy as np

from compiled import verify
from encoding import tokens
from rasp_gen import convert
from rasp_gen.program import Program

# Beam candidates for search-and-verify: 32 verifies 90 % of configs/cpu.py's
# test programs for 1.6x the time of 8 (README, "Search width").
BEAM_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Choice:
  """The chosen candidate and the evidence for it.

  Attributes:
    program: the chosen program; None when no candidate decodes.
    rows: [R, 5] token ids of the chosen candidate.
    verification: its check against the weights (every check input run
      when it is not verified); None when no candidate decodes.
    others: with `all_verified`, the other verified candidates, best first,
      as (program, rows).
  """

  program: Optional[Program]
  rows: np.ndarray
  verification: Optional[verify.Verification]
  others: tuple[tuple[Program, np.ndarray], ...] = ()

  @property
  def verified(self) -> bool:
    return self.verification is not None and self.verification.verified

  @property
  def agreement(self) -> float:
    """Share of check inputs on which the program's output is the weights'."""
    v = self.verification
    return v.num_agreeing / v.num_inputs if v and v.num_inputs else 0.0


def decode_or_none(rows_Rx5: np.ndarray) -> Optional[Program]:
  try:
    return tokens.decode_program(rows_Rx5)
  except ValueError:
    return None


def choose(candidates_KxRx5: np.ndarray, reference: verify.Reference,
           all_verified: bool = False) -> Choice:
  """The best-scoring candidate that computes what the weights compute.

  `reference` is `verify.reference(weights, inputs)`: the weights run once;
  each candidate is checked against it, stopping at its first difference.
  Without `all_verified` the search ends at the first verified candidate.
  """
  top: Optional[tuple[Program, np.ndarray]] = None
  found: list[tuple[Program, np.ndarray, verify.Verification]] = []
  seen = set()
  for rows in candidates_KxRx5:
    program = decode_or_none(rows)
    if program is None or program in seen:
      continue
    seen.add(program)
    result = verify.verify_against(reference, convert.to_rasp(program))
    if result.verified:
      found.append((program, rows, result))
      if not all_verified:
        break
    top = top or (program, rows)
  if found:
    (program, rows, result), rest = found[0], found[1:]
    return Choice(program, rows, result,
                  tuple((p, r) for p, r, _ in rest))
  if top is None:
    return Choice(None, candidates_KxRx5[0], None)
  result = verify.verify_against(reference, convert.to_rasp(top[0]),
                                 stop_early=False)
  return Choice(top[0], top[1], result)
