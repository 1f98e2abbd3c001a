r"""A held-out set of realistic RASP programs, decompiled like lib_programs.py.

  python bench/realistic_programs.py --workdir=DIR [--beam_size=32] [--out=FILE.md]

Written for issue 14 before any model for it was trained, and never used to
choose anything (no config, sampler setting, threshold or checkpoint was
picked by looking at these programs or their results): they measure a
decompiler on programs nobody tuned to. Nobody should tune on them later
either; add a new held-out set instead.

Each program is what an interpretability researcher might write as their
own tracr program, in the style of `tracr/compiler/lib.py`: string
vocabularies (letters, words, brackets), integers starting anywhere,
booleans, floats and one mixed vocabulary; custom lambdas in Map and
SequenceMap, numerical Maps of categorical values, numerical mean
Aggregates of 0/1 values, LinearSequenceMaps; custom selector predicates
next to rasp.Comparison ones; shared subexpressions (a value or a selector
used by several operations); 1 to 8 layers. Each entry carries its own
vocabulary and max_seq_len, and stock tracr
(`compiling.compile_rasp_to_model(..., compiler_bos="BOS")`) compiles every
one faithfully: the weights give `rasp.evaluate`'s output on every input, or
on 200 random ones plus each constant sequence where there are more than
2,000 (`faithful`; tests/realistic_programs_test.py checks a few). When the
set was written each was also checked on every input where there are at
most 60,000, else on 3,000 random ones.

The flags, the table and what each column means are lib_programs.py's
(`lib_programs.main_for`); --programs selects entries by name.
"""

import dataclasses
import importlib.util
import os
import string
import sys
from typing import Optional

import numpy as np
from tracr.compiler import compiling
from tracr.rasp import rasp

from compiled import compare, forward, saved
from compiled import inputs as inputs_lib


def _load_lib_programs():
  """bench/lib_programs.py (bench/ is not a package), imported once."""
  if "lib_programs" in sys.modules:
    return sys.modules["lib_programs"]
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "lib_programs.py")
  spec = importlib.util.spec_from_file_location("lib_programs", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules["lib_programs"] = module
  spec.loader.exec_module(module)
  return module


lib_programs = _load_lib_programs()


@dataclasses.dataclass(frozen=True)
class RealisticProgram(lib_programs.LibProgram):
  """A held-out program: `name` (no parentheses, so it is also what
  --programs selects by), `build`, `vocab`, `max_seq_len` and a one-line
  `description`."""

  description: str


_T = rasp.tokens
_I = rasp.indices
_CMP = rasp.Comparison

_LETTERS3 = ("a", "b", "c")
_VOWEL_TEST = ("a", "b", "c", "d", "e")
_WORDS = ("the", "cat", "sat", "on", "mat")
_COLORS = ("red", "green", "blue")
_PARENS = ("(", ")")
_BRACKETS = ("(", ")", "[", "]")
_BOOLS = (False, True)
_ALPHABET = tuple(string.ascii_lowercase)


# Helpers a researcher would keep at the top of their own file.


def _length() -> rasp.SOp:
  everything = rasp.Select(_T, _T, _CMP.TRUE).named("everything")
  return rasp.SelectorWidth(everything).named("length")


def _prev_selector() -> rasp.Selector:
  """Query position q reads key position q - 1."""
  return rasp.Select(_I, _I, lambda k, q: q == k + 1).named("prev")


def _reverse(sop: rasp.SOp) -> rasp.SOp:
  opp = rasp.SequenceMap(lambda n, i: n - 1 - i, _length(), _I).named("opp")
  flip = rasp.Select(_I, opp, _CMP.EQ).named("flip")
  return rasp.Aggregate(flip, sop).named("reversed")


def _is(token) -> rasp.SOp:
  """1 where the token is `token`, else 0 (numerical)."""
  return rasp.numerical(rasp.Map(lambda x: 1 if x == token else 0,
                                 _T)).named(f"is_{token}")


# The programs, roughly from shallow to deep.


def vowel_flags() -> rasp.SOp:
  return rasp.Map(lambda x: x in "aeiou", _T).named("is_vowel")


def letter_score() -> rasp.SOp:
  return rasp.numerical(rasp.Map(lambda x: {"a": 1, "b": 2, "c": 3}.get(x, 0),
                                 _T)).named("score")


def previous_word() -> rasp.SOp:
  return rasp.Aggregate(_prev_selector(), _T).named("previous_word")


def first_token_everywhere() -> rasp.SOp:
  first = rasp.Select(_I, _I, lambda k, q: k == 0).named("first")
  return rasp.Aggregate(first, _T).named("first_token")


def index_shifted_mod4() -> rasp.SOp:
  return rasp.SequenceMap(lambda x, i: (x + i) % 4, _T, _I).named("mixed")


def count_smaller() -> rasp.SOp:
  smaller = rasp.Select(_T, _T, _CMP.LT).named("smaller")
  return rasp.SelectorWidth(smaller).named("num_smaller")


def count_within_one() -> rasp.SOp:
  close = rasp.Select(_T, _T, lambda k, q: abs(k - q) <= 1).named("close")
  return rasp.SelectorWidth(close).named("num_close")


def rise_over_previous() -> rasp.SOp:
  prev = rasp.Aggregate(_prev_selector(), _T).named("prev_token")
  return rasp.SequenceMap(lambda x, p: x - p if x > p else 0, _T,
                          prev).named("rise")


def two_trues_in_a_row() -> rasp.SOp:
  prev = rasp.Aggregate(_prev_selector(), _T).named("prev_bool")
  return rasp.SequenceMap(lambda x, p: x and p, _T, prev).named("two_trues")


def xor_with_first() -> rasp.SOp:
  first = rasp.Aggregate(rasp.Select(_I, _I, lambda k, q: k == 0),
                         _T).named("first")
  return rasp.SequenceMap(lambda x, f: x != f, _T, first).named("differs")


def same_as_next() -> rasp.SOp:
  nxt = rasp.Aggregate(rasp.Select(_I, _I, lambda k, q: k == q + 1),
                       _T).named("next_token")
  return rasp.SequenceMap(lambda a, b: a == b, _T, nxt).named("same_as_next")


def neighbors_agree() -> rasp.SOp:
  prev = rasp.Aggregate(_prev_selector(), _T).named("left")
  nxt = rasp.Aggregate(rasp.Select(_I, _I, lambda k, q: k == q + 1),
                       _T).named("right")
  return rasp.SequenceMap(lambda l, r: l == r, prev, nxt).named("agree")


def diff_from_first() -> rasp.SOp:
  first = rasp.Aggregate(rasp.Select(_I, _I, lambda k, q: k == 0),
                         _T).named("first")
  return rasp.SequenceMap(lambda x, f: x - f, _T, first).named("delta")


def pointer_chase() -> rasp.SOp:
  """Tokens are positions: tokens[tokens[tokens[i]]], None off the end."""
  hop1 = rasp.Aggregate(rasp.Select(_I, _T, lambda k, q: k == q),
                        _T).named("hop1")
  hop2 = rasp.Aggregate(rasp.Select(_I, hop1, lambda k, q: k == q),
                        _T).named("hop2")
  return rasp.Aggregate(rasp.Select(_I, hop2, lambda k, q: k == q),
                        _T).named("hop3")


def open_paren_running_fraction() -> rasp.SOp:
  opens = rasp.numerical(rasp.Map(lambda x: 1 if x == "(" else 0,
                                  _T)).named("opens")
  prefix = rasp.Select(_I, _I, _CMP.LEQ).named("prefix")
  return rasp.numerical(rasp.Aggregate(prefix, opens,
                                       default=0)).named("frac_open")


def vowel_running_fraction() -> rasp.SOp:
  vowel = rasp.numerical(rasp.Map(lambda x: 1 if x in "aeiou" else 0,
                                  _T)).named("vowel")
  prefix = rasp.Select(_I, _I, lambda k, q: k <= q).named("prefix")
  return rasp.numerical(rasp.Aggregate(prefix, vowel,
                                       default=0)).named("frac_vowel")


def edge_detect() -> rasp.SOp:
  bit = rasp.numerical(rasp.Map(lambda x: 1 if x == 1 else 0, _T)).named("bit")
  prev_bit = rasp.numerical(rasp.Aggregate(_prev_selector(), bit,
                                           default=0)).named("prev_bit")
  return rasp.numerical(rasp.LinearSequenceMap(bit, prev_bit, 1,
                                               -1)).named("edge")


def running_mean_of_signs() -> rasp.SOp:
  """Tokens in {-1, 0, 1}: the mean of the prefix as frac(+1) - frac(-1)."""
  prefix = rasp.Select(_I, _I, _CMP.LEQ).named("prefix")
  pos = rasp.numerical(rasp.Map(lambda x: 1 if x > 0 else 0, _T)).named("pos")
  neg = rasp.numerical(rasp.Map(lambda x: 1 if x < 0 else 0, _T)).named("neg")
  frac_pos = rasp.numerical(rasp.Aggregate(prefix, pos, default=0))
  frac_neg = rasp.numerical(rasp.Aggregate(prefix, neg, default=0))
  return rasp.numerical(rasp.LinearSequenceMap(frac_pos.named("frac_pos"),
                                               frac_neg.named("frac_neg"), 1,
                                               -1)).named("running_mean")


def repeated_color() -> rasp.SOp:
  same = rasp.Select(_T, _T, _CMP.EQ).named("same")
  hist = rasp.SelectorWidth(same).named("hist")
  return rasp.Map(lambda n: n > 1, hist).named("repeated")


def vowels_total() -> rasp.SOp:
  vowel = rasp.Map(lambda x: x in "aeiou", _T).named("vowel")
  return rasp.SelectorWidth(rasp.Select(vowel, vowel,
                                        lambda k, q: k)).named("num_vowels")


def many_thes() -> rasp.SOp:
  the = rasp.Select(_T, _T, lambda k, q: k == "the").named("the")
  n = rasp.SelectorWidth(the).named("num_the")
  return rasp.Map(lambda c: c >= 2, n).named("many_the")


def count_digits_mixed() -> rasp.SOp:
  digit = rasp.Map(lambda x: isinstance(x, int), _T).named("is_digit")
  return rasp.SelectorWidth(rasp.Select(digit, digit,
                                        lambda k, q: k)).named("num_digits")


def length_is_even() -> rasp.SOp:
  return rasp.Map(lambda n: n % 2 == 0, _length()).named("even_length")


def valid_index_token() -> rasp.SOp:
  return rasp.SequenceMap(lambda x, n: x < n, _T, _length()).named("in_range")


def word_length_class() -> rasp.SOp:
  n = rasp.Map(len, _T).named("num_chars")
  return rasp.Map(lambda c: "short" if c <= 3 else "long", n,
                  simplify=False).named("length_class")


def count_like_first() -> rasp.SOp:
  first = rasp.Aggregate(rasp.Select(_I, _I, lambda k, q: k == 0),
                         _T).named("first")
  return rasp.SelectorWidth(rasp.Select(_T, first,
                                        _CMP.EQ)).named("num_like_first")


def is_global_max() -> rasp.SOp:
  bigger = rasp.Select(_T, _T, _CMP.GT).named("bigger")
  n = rasp.SelectorWidth(bigger).named("num_bigger")
  return rasp.Map(lambda c: c == 0, n).named("is_max")


def majority_true() -> rasp.SOp:
  trues = rasp.SelectorWidth(rasp.Select(_T, _T,
                                         lambda k, q: k)).named("num_true")
  return rasp.SequenceMap(lambda c, n: 2 * c > n, trues,
                          _length()).named("majority")


def relative_frequency() -> rasp.SOp:
  hist = rasp.SelectorWidth(rasp.Select(_T, _T, _CMP.EQ)).named("hist")
  return rasp.SequenceMap(lambda h, n: h / n if n else 0.0, hist,
                          _length()).named("rel_freq")


def two_digit_sum_with_previous() -> rasp.SOp:
  """Digits: the sum of each digit and the one before it, as a string."""
  prev = rasp.Aggregate(_prev_selector(), _T).named("prev_digit")
  ones = rasp.SequenceMap(lambda x, p: (x + p) % 10, _T, prev).named("ones")
  carry = rasp.SequenceMap(lambda x, p: x + p >= 10, _T, prev).named("carry")
  return rasp.SequenceMap(lambda o, c: f"{int(c)}{o}", ones,
                          carry).named("sum_text")


def mode_flag() -> rasp.SOp:
  hist = rasp.SelectorWidth(rasp.Select(_T, _T, _CMP.EQ)).named("hist")
  more = rasp.Select(hist, hist, _CMP.GT).named("more_frequent")
  n = rasp.SelectorWidth(more).named("num_more_frequent")
  return rasp.Map(lambda c: c == 0, n).named("is_mode")


def middle_token() -> rasp.SOp:
  mid = rasp.Map(lambda n: (n - 1) // 2, _length()).named("mid")
  return rasp.Aggregate(rasp.Select(_I, mid, _CMP.EQ), _T).named("middle")


def caesar_reverse() -> rasp.SOp:
  shifted = rasp.Map(lambda c: chr((ord(c) - ord("a") + 3) % 26 + ord("a")),
                     _T).named("shifted")
  return _reverse(shifted)


def relu_reversed() -> rasp.SOp:
  return rasp.Map(lambda x: max(x, 0.0), _reverse(_T)).named("relu")


def sort_descending_stable() -> rasp.SOp:
  key = rasp.SequenceMap(lambda x, i: 8 * x - i, _T, _I).named("key")
  ahead = rasp.Select(key, key, _CMP.GT).named("ahead")
  rank = rasp.SelectorWidth(ahead).named("rank")
  return rasp.Aggregate(rasp.Select(rank, _I, _CMP.EQ), _T).named("sorted")


def gap_below_max() -> rasp.SOp:
  key = rasp.SequenceMap(lambda x, i: 8 * x - i, _T, _I).named("key")
  rank = rasp.SelectorWidth(rasp.Select(key, key, _CMP.GT)).named("rank")
  top = rasp.Select(rank, rank, lambda k, q: k == 0).named("top")
  best = rasp.Aggregate(top, _T).named("max")
  return rasp.SequenceMap(lambda m, x: m - x, best, _T).named("gap")


def running_record() -> rasp.SOp:
  pair = rasp.SequenceMap(lambda t, i: (t, i), _T, _I).named("pair")
  beaten = rasp.Select(pair, pair, lambda k, q: k[1] < q[1] and k[0] >= q[0])
  n = rasp.SelectorWidth(beaten.named("earlier_not_smaller")).named("n")
  return rasp.Map(lambda c: c == 0, n).named("is_record")


def distinct_tokens() -> rasp.SOp:
  pair = rasp.SequenceMap(lambda t, i: (t, i), _T, _I).named("pair")
  seen = rasp.Select(pair, pair, lambda k, q: k[0] == q[0] and k[1] < q[1])
  n_seen = rasp.SelectorWidth(seen.named("seen_before")).named("n_seen")
  first = rasp.Map(lambda c: c == 0, n_seen).named("first_occurrence")
  return rasp.SelectorWidth(rasp.Select(first, first,
                                        lambda k, q: k)).named("distinct")


def is_sorted() -> rasp.SOp:
  # The previous position, or itself at position 0, so no step is None.
  prev_or_self = rasp.Select(_I, _I, lambda k, q: k == max(q - 1, 0))
  prev = rasp.Aggregate(prev_or_self.named("prev_or_self"),
                        _T).named("prev_token")
  ok = rasp.SequenceMap(lambda x, p: x >= p, _T, prev).named("step_ok")
  bad = rasp.Select(ok, ok, lambda k, q: k == False)  # pylint: disable=g-explicit-bool-comparison
  n_bad = rasp.SelectorWidth(bad.named("bad_steps")).named("n_bad")
  return rasp.Map(lambda c: c == 0, n_bad).named("sorted")


def window_a_leads() -> rasp.SOp:
  """One window selector for two mean Aggregates and a SelectorWidth."""
  window = rasp.Select(_I, _I, lambda k, q: q - 2 <= k <= q).named("window")
  size = rasp.SelectorWidth(window).named("window_size")
  frac_a = rasp.numerical(rasp.Aggregate(window, _is("a"), default=0))
  frac_b = rasp.numerical(rasp.Aggregate(window, _is("b"), default=0))
  lead = rasp.numerical(rasp.LinearSequenceMap(frac_a.named("frac_a"),
                                               frac_b.named("frac_b"), 1, -1))
  a_leads = rasp.Map(lambda d: d > 0, lead.named("lead")).named("a_leads")
  return rasp.SequenceMap(lambda n, a: a and n == 3, size,
                          a_leads).named("full_window_a_leads")


def bracket_prefix_ok() -> rasp.SOp:
  """True while no prefix so far has more ')' than '('."""
  prefix = rasp.Select(_I, _I, _CMP.LEQ).named("prefix")
  frac_open = rasp.numerical(rasp.Aggregate(prefix, _is("("), default=0))
  frac_close = rasp.numerical(rasp.Aggregate(prefix, _is(")"), default=0))
  balance = rasp.numerical(rasp.LinearSequenceMap(
      frac_open.named("frac_open"), frac_close.named("frac_close"), 1, -1))
  below = rasp.numerical(rasp.Map(lambda b: 1 if b < 0 else 0,
                                  balance.named("balance"))).named("below")
  ever = rasp.numerical(rasp.Aggregate(prefix, below, default=0)).named("ever")
  return rasp.Map(lambda f: f == 0, ever).named("prefix_ok")


def palindrome() -> rasp.SOp:
  mismatch = rasp.SequenceMap(lambda a, b: a != b, _T,
                              _reverse(_T)).named("mismatch")
  n_bad = rasp.SelectorWidth(rasp.Select(mismatch, mismatch,
                                         lambda k, q: k)).named("n_bad")
  return rasp.Map(lambda c: c == 0, n_bad).named("palindrome")


def frequency_sort_boundaries() -> rasp.SOp:
  """Sort by frequency (most frequent first, stable), then mark where a new
  token starts in the sorted sequence."""
  hist = rasp.SelectorWidth(rasp.Select(_T, _T, _CMP.EQ)).named("hist")
  key = rasp.SequenceMap(lambda h, i: 8 * h - i, hist, _I).named("key")
  rank = rasp.SelectorWidth(rasp.Select(key, key, _CMP.GT)).named("rank")
  by_freq = rasp.Aggregate(rasp.Select(rank, _I, _CMP.EQ),
                           _T).named("by_freq")
  prev = rasp.Aggregate(_prev_selector(), by_freq).named("prev_sorted")
  return rasp.SequenceMap(lambda s, p: s != p, by_freq,
                          prev).named("new_group")


def window_parity() -> rasp.SOp:
  """XOR of the last 7 bits, one shared `prev` selector for six Aggregates."""
  prev = _prev_selector()
  parity = _T
  for step in range(6):
    shifted = rasp.Aggregate(prev, parity).named(f"shifted_{step}")
    parity = rasp.SequenceMap(lambda x, s: x ^ s, _T,
                              shifted).named(f"parity_{step}")
  return parity


def sorted_tiers() -> rasp.SOp:
  """Sort ascending, then label each sorted entry by how many distinct
  values lie above it: 'top', 'second' or 'rest'."""
  key = rasp.SequenceMap(lambda x, i: 8 * x + i, _T, _I).named("key")
  rank = rasp.SelectorWidth(rasp.Select(key, key, _CMP.LT)).named("rank")
  ascending = rasp.Aggregate(rasp.Select(rank, _I, _CMP.EQ),
                             _T).named("ascending")
  prev_or_self = rasp.Select(_I, _I, lambda k, q: k == max(q - 1, 0))
  before = rasp.Aggregate(prev_or_self.named("prev_or_self"),
                          ascending).named("before")
  step = rasp.SequenceMap(lambda s, p: s != p, ascending, before).named("step")
  tagged = rasp.SequenceMap(lambda st, i: (st, i), step, _I).named("tagged")
  steps_so_far = rasp.SelectorWidth(rasp.Select(
      tagged, tagged, lambda k, q: k[0] and k[1] <= q[1])).named("steps")
  last = rasp.Select(_I, _length(), lambda k, q: k == q - 1).named("last")
  total = rasp.Aggregate(last, steps_so_far).named("total_steps")
  above = rasp.SequenceMap(lambda d, t: t - d, steps_so_far,
                           total).named("distinct_above")
  return rasp.Map(lambda r: {0: "top", 1: "second"}.get(r, "rest"),
                  above).named("tier")


def _balanced(pairs: tuple[str, ...]) -> rasp.SOp:
  """Each bracket type balanced on its own (shuffle-Dyck), from counts."""
  pair = rasp.SequenceMap(lambda t, i: (t, i), _T, _I).named("token_at")
  length = _length()
  last = rasp.Select(_I, length, lambda k, q: k == q - 1).named("last")
  ok = None
  for open_token, close_token in pairs:
    opened = rasp.SelectorWidth(rasp.Select(
        pair, pair, lambda k, q, o=open_token: k[0] == o and k[1] <= q[1]))
    closed = rasp.SelectorWidth(rasp.Select(
        pair, pair, lambda k, q, c=close_token: k[0] == c and k[1] <= q[1]))
    depth = rasp.SequenceMap(lambda o, c: o - c, opened.named("opened"),
                             closed.named("closed")).named("depth")
    negative = rasp.Map(lambda d: d < 0, depth).named("negative")
    n_negative = rasp.SelectorWidth(rasp.Select(
        negative, negative, lambda k, q: k)).named("n_negative")
    final_depth = rasp.Aggregate(last, depth).named("final_depth")
    this_ok = rasp.SequenceMap(lambda n, d: n == 0 and d == 0, n_negative,
                               final_depth).named(f"ok_{open_token}")
    ok = this_ok if ok is None else (ok & this_ok).named("all_ok")
  return ok


def balanced_parens() -> rasp.SOp:
  return _balanced(("()",))


def balanced_two_types() -> rasp.SOp:
  return _balanced(("()", "[]"))


def _entry(build, vocab, max_seq_len, description) -> RealisticProgram:
  return RealisticProgram(build.__name__, build, tuple(vocab), max_seq_len,
                          description)


REALISTIC_PROGRAMS: tuple[RealisticProgram, ...] = (
    _entry(vowel_flags, _VOWEL_TEST, 5, "whether each letter is a vowel"),
    _entry(letter_score, ("a", "b", "c", "d"), 3,
           "a numerical score per letter from a dict"),
    _entry(previous_word, _WORDS, 5, "the word before each position"),
    _entry(first_token_everywhere, (3, 4, 5, 6), 6,
           "the first token at every position"),
    _entry(index_shifted_mod4, (3, 4, 5, 6), 6, "(token + index) mod 4"),
    _entry(count_smaller, (-2, -1, 0, 1, 2), 5,
           "how many tokens are smaller than this one"),
    _entry(count_within_one, (-3, -2, -1, 0, 1, 2, 3), 5,
           "how many tokens are within 1 of this one"),
    _entry(rise_over_previous, (1, 2, 3, 4), 5,
           "how much the token rose over the previous one, else 0"),
    _entry(two_trues_in_a_row, _BOOLS, 6,
           "this and the previous boolean are both True"),
    _entry(xor_with_first, _BOOLS, 5, "whether the boolean differs from the "
           "first one"),
    _entry(same_as_next, ("x", "y"), 7, "whether the next token is the same"),
    _entry(neighbors_agree, _LETTERS3, 6,
           "whether the left and right neighbours are equal"),
    _entry(diff_from_first, (-2, -1, 0, 1, 2), 4,
           "token minus the first token"),
    _entry(pointer_chase, (0, 1, 2, 3), 4,
           "follow tokens as positions three times"),
    _entry(open_paren_running_fraction, _PARENS, 10,
           "fraction of '(' in the prefix (numerical)"),
    _entry(vowel_running_fraction, ("a", "b", "e", "k", "o"), 6,
           "fraction of vowels in the prefix (numerical)"),
    _entry(edge_detect, (0, 1), 6,
           "+1 at a rising edge, -1 at a falling edge of a bit string"),
    _entry(running_mean_of_signs, (-1.0, 0.0, 1.0), 5,
           "running mean of float tokens in {-1, 0, 1}"),
    _entry(repeated_color, _COLORS, 6, "whether the word occurs twice or "
           "more"),
    _entry(vowels_total, ("a", "b", "c", "d", "e", "f", "g", "h"), 8,
           "number of vowels in the sequence"),
    _entry(many_thes, ("the", "a", "dog", "cat", "ran", "sat", "big", "red"),
           6, "whether 'the' occurs at least twice"),
    _entry(count_digits_mixed, ("a", "b", 1, 2), 5,
           "number of integer tokens in a mixed vocabulary"),
    _entry(length_is_even, ("a", "b"), 9, "whether the length is even"),
    _entry(valid_index_token, tuple(range(8)), 7,
           "whether the token is a valid position"),
    _entry(word_length_class, ("a", "an", "the", "tree", "house",
                               "elephant"), 4,
           "'short' or 'long' word, via its character count"),
    _entry(count_like_first, ("a", "b", "c", "d"), 6,
           "how many tokens equal the first one"),
    _entry(is_global_max, (1, 2, 3, 4, 5), 5, "whether the token is a "
           "maximum"),
    _entry(majority_true, _BOOLS, 7, "whether more than half are True"),
    _entry(relative_frequency, ("x", "y", "z"), 5,
           "the token's count divided by the length"),
    _entry(two_digit_sum_with_previous, tuple(range(10)), 8,
           "digit plus previous digit as a two-character string"),
    _entry(mode_flag, ("a", "b", "c", "d"), 6,
           "whether the token is among the most frequent"),
    _entry(middle_token, ("p", "q", "r", "s"), 7,
           "the middle token at every position"),
    _entry(caesar_reverse, _ALPHABET, 4,
           "Caesar shift by 3, then reverse"),
    _entry(relu_reversed, (-1.0, -0.5, 0.0, 0.5, 1.0), 4,
           "reverse float tokens, then clip at 0"),
    _entry(sort_descending_stable, (1, 2, 3, 4, 5), 5,
           "tokens sorted largest first, ties by position"),
    _entry(gap_below_max, (0, 1, 2, 3, 4), 5,
           "how far each token is below the maximum"),
    _entry(running_record, (1, 2, 3, 4, 5), 5,
           "whether the token beats every earlier one"),
    _entry(distinct_tokens, ("a", "b", "c", "d", "e"), 6,
           "number of distinct tokens"),
    _entry(is_sorted, (2, 3, 4, 5), 5, "whether the sequence is "
           "non-decreasing"),
    _entry(window_a_leads, _LETTERS3, 6,
           "more 'a' than 'b' among the last three tokens"),
    _entry(bracket_prefix_ok, _PARENS, 6,
           "no prefix so far closes more brackets than it opens"),
    _entry(palindrome, (0, 1, 2), 6, "whether the sequence is a palindrome"),
    _entry(frequency_sort_boundaries, _LETTERS3, 5,
           "sort by frequency, then mark where a new token starts"),
    _entry(sorted_tiers, (3, 4, 5, 6), 6,
           "sort, then say how many distinct values lie above each entry"),
    _entry(window_parity, (0, 1), 8, "XOR of the last seven bits"),
    _entry(balanced_parens, _PARENS, 7, "whether the parentheses are "
           "balanced"),
    _entry(balanced_two_types, _BRACKETS, 6,
           "whether '()' and '[]' are each balanced (shuffle-Dyck)"),
)

NUM_RANDOM = 200  # Random check inputs where there are over EXHAUSTIVE_LIMIT.


def faithful(entry: lib_programs.LibProgram, num_random: int = NUM_RANDOM,
             exhaustive_limit: int = inputs_lib.EXHAUSTIVE_LIMIT,
             model=None) -> Optional[str]:
  """None when stock tracr compiles `entry` faithfully, else why not.

  Faithful: on every check input (all inputs when there are at most
  `exhaustive_limit`, else `num_random` random ones plus each constant
  sequence) the compiled weights, decoded as tracr does with an unset
  categorical output read as None (`compiled.forward`), give
  `rasp.evaluate`'s output (`compiled.compare`). `model` is the compiled
  model when the caller has it.
  """
  sop = entry.build()
  if model is None:
    model = compiling.compile_rasp_to_model(sop, set(entry.vocab),
                                            entry.max_seq_len,
                                            compiler_bos="BOS")
  vocab = inputs_lib.sorted_vocab(entry.vocab)
  inputs = inputs_lib.check_inputs(np.random.default_rng(0), vocab,
                                   entry.max_seq_len, num_random,
                                   exhaustive_limit)
  tokens = [t for t, _ in sorted(model.input_encoder.encoding_map.items(),
                                 key=lambda kv: kv[1])]
  weights_out = forward.outputs(model.params, model.model_config.num_heads,
                                tokens, saved.output_decoding(model), inputs,
                                "BOS")
  numerical = rasp.is_numerical(sop)
  for xs, got in zip(inputs, weights_out):
    try:
      expected = rasp.evaluate(sop, list(xs))
    except compare.RUN_ERRORS as error:
      return f"rasp.evaluate fails on {list(xs)}: {error}"
    if not compare.same_output(expected, got, numerical):
      return f"on {list(xs)} the weights give {got}, rasp.evaluate {expected}"
  return None


def main(argv: list[str]) -> None:
  lib_programs.main_for(argv, REALISTIC_PROGRAMS)


if __name__ == "__main__":
  lib_programs.define_flags(programs_help=(
      "Only these programs, by name (e.g. vowel_flags,palindrome); "
      "default: all of REALISTIC_PROGRAMS."))
  lib_programs.flags.adopt_module_key_flags(lib_programs)  # For --help.
  lib_programs.app.run(main)
