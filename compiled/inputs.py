"""The input sequences a program and weights are checked on, and their defaults.

One definition of the check inputs for everything that compares outputs:
verification, the functional judge, the decompiler, eval.py and the benches.
"""

import itertools
from typing import Iterable, Sequence

import numpy as np

# Check every input sequence when there are at most this many; otherwise
# NUM_CHECK_INPUTS random ones plus each constant full-length sequence.
EXHAUSTIVE_LIMIT = 2000
NUM_CHECK_INPUTS = 64


def sorted_vocab(vocab: Iterable) -> list:
  """A fixed token order (numbers, then strings), so inputs do not depend on
  set iteration order."""
  return sorted(vocab, key=lambda t: (isinstance(t, str), t))


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
