"""The input sequences a program and weights are checked on, and their defaults.

One definition of the check inputs for everything that compares outputs:
verification, the functional judge, the decompiler, eval.py and the benches.
"""

import itertools
import math
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from tracr.craft import bases
from tracr.rasp import rasp

# Check every input sequence when there are at most this many; otherwise
# NUM_CHECK_INPUTS random ones plus each constant full-length sequence.
EXHAUSTIVE_LIMIT = 2000
NUM_CHECK_INPUTS = 64


def _kind(value: Any) -> Optional[str]:
  """"str" or "number" where Python orders the values of a kind totally
  (bools are numbers: False < 0.5 < True), None for anything else (NaN,
  tuples, other objects)."""
  if isinstance(value, str):
    return "str"
  if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
    return None if math.isnan(value) else "number"
  return None


def tracr_order(values: Iterable, name: str = rasp.tokens.label
                ) -> Optional[list]:
  """`values` in the order tracr sorts the basis directions `name:value` of
  a space (its token space: the token-embedding rows and the input
  encoder's ids), or None when that order is not defined.

  tracr sorts directions by `(name, value)` and, where Python cannot compare
  the two values (a number and a string), by their text `name:value`
  (`tracr.craft.bases.BasisDirection.__lt__`). So numbers sort as numbers,
  strings as strings, and a number below a string when its text is: 3 <
  "BOS" < "a" ("3" < "B" < "a"), but 10 < "5" < 9. That comparison need not
  be an order: 2 < "BOS" (text), "BOS" < True (text), True < 2 (numbers).
  Then what `sorted` returns depends on the order it is handed the values,
  for tracr a set's iteration order, which for strings changes from process
  to process, so no function of the values gives the weights' row order;
  this returns None and the order has to come from the model itself. That
  happens with bools next to other numbers (with BOS), and with numbers
  next to strings that sort among their texts (digits, "-", "+", " ").
  """
  directions = sorted(bases.BasisDirection(name, v) for v in values)
  # Defined iff every earlier direction is below every later one. Within a
  # kind Python's order is transitive, so neighbours of that kind suffice;
  # pairs of different kinds (and of values of no kind) are all checked.
  earlier = {}  # Kind -> the directions before this one of that kind.
  for direction in directions:
    kind = _kind(direction.value)
    for other, below in earlier.items():
      same = other == kind and kind is not None
      if not all(b < direction for b in (below[-1:] if same else below)):
        return None
    earlier.setdefault(kind, []).append(direction)
  return [d.value for d in directions]


def sorted_vocab(vocab: Iterable) -> list:
  """A fixed token order, so inputs do not depend on set iteration order:
  tracr's (`tracr_order`: the token-embedding row order without BOS and
  PAD), or where that is not defined numbers (bools among them), then
  strings, each in Python's order."""
  tokens = list(vocab)
  order = tracr_order(tokens)
  if order is not None:
    return order
  # NaN (t != t), which compares with nothing, after the other numbers.
  return sorted(tokens, key=lambda t: (isinstance(t, str), t != t,
                                       t if t == t else 0))


def random_inputs(rng: np.random.Generator, vocab: Sequence, max_seq_len: int,
                  count: int) -> list[list]:
  """Random input sequences, half of full length, half of random length."""
  inputs = []
  for i in range(count):
    length = max_seq_len if i % 2 == 0 else int(rng.integers(1, max_seq_len + 1))
    inputs.append([vocab[int(j)] for j in rng.integers(len(vocab), size=length)])
  return inputs


def num_sequences(vocab_size: int, max_seq_len: int) -> int:
  """How many input sequences of length 1..max_seq_len there are."""
  return sum(vocab_size**n for n in range(1, max_seq_len + 1))


def check_inputs(rng: np.random.Generator, vocab: Sequence, max_seq_len: int,
                 num_random: int = NUM_CHECK_INPUTS,
                 exhaustive_limit: int = EXHAUSTIVE_LIMIT) -> list[list]:
  """Inputs to check a program (or weights) on.

  Every sequence of every length 1..max_seq_len (shortest first, in `vocab`
  order) when there are at most `exhaustive_limit`; otherwise `num_random`
  random ones (`random_inputs`) and then each token repeated max_seq_len
  times, the input that random draws almost never hit and that e.g. a
  SelectorWidth over equal tokens needs to reach its largest width.

  Raises ValueError for an empty vocab or a max_seq_len below 1.
  """
  if not len(vocab) or max_seq_len < 1:
    raise ValueError(f"no inputs for vocab {list(vocab)} and max_seq_len "
                     f"{max_seq_len}")
  if num_sequences(len(vocab), max_seq_len) <= exhaustive_limit:
    return [list(xs) for n in range(1, max_seq_len + 1)
            for xs in itertools.product(vocab, repeat=n)]
  return (random_inputs(rng, vocab, max_seq_len, num_random)
          + [[token] * max_seq_len for token in vocab])
