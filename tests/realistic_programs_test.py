"""bench/realistic_programs.py: the held-out set is whole, and stock tracr
compiles its programs faithfully (a few cheap ones here; every one was
checked when the set was written)."""

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "bench",
                     "realistic_programs.py")


def _load():
  spec = importlib.util.spec_from_file_location("realistic_programs", _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


realistic_programs = _load()
PROGRAMS = realistic_programs.REALISTIC_PROGRAMS
# The cheapest to compile: one MLP each.
CHEAP = ("letter_score", "vowel_flags", "index_shifted_mod4")


def test_the_set_is_whole():
  assert len(PROGRAMS) >= 25
  names = [p.name for p in PROGRAMS]
  assert len(set(names)) == len(names)
  for p in PROGRAMS:
    assert "(" not in p.name and p.function == p.name  # --programs selects.
    assert p.description and p.vocab and 3 <= p.max_seq_len <= 10
    assert len(set(p.vocab)) == len(p.vocab)


def test_programs_flag_selects_by_name():
  lib_programs = realistic_programs.lib_programs
  assert [p.name for p in lib_programs.select(list(CHEAP[:2]), PROGRAMS)] == [
      p.name for p in PROGRAMS if p.name in CHEAP[:2]]
  with pytest.raises(ValueError, match="unknown programs"):
    lib_programs.select(["make_hist"], PROGRAMS)


@pytest.mark.parametrize("name", CHEAP)
def test_stock_tracr_compiles_it_faithfully(name):
  entry = next(p for p in PROGRAMS if p.name == name)
  assert realistic_programs.faithful(entry) is None
