"""The sampler's contract: valid, canonical, non-degenerate, deterministic."""

import collections

import numpy as np
from tracr.compiler import validating
from tracr.rasp import rasp

from configs import data
from rasp_gen import convert, sampler
from rasp_gen.program import Operator, canonicalize, validate


def _samples(seed: int, count: int, config=None):
  config = config or data.get_config().sampler
  return [sampler.sample_program(sampler.sampler_rng(seed, i), config)
          for i in range(count)]


def test_same_seed_and_index_give_the_same_program():
  assert _samples(7, 20) == _samples(7, 20)
  assert _samples(7, 20) != _samples(8, 20)


def test_samples_are_canonical_valid_and_within_the_config():
  config = data.get_config().sampler
  for sample in _samples(0, 200):
    validate(sample.program)
    assert canonicalize(sample.program) == sample.program  # No dead code.
    assert config.length[0] <= len(sample.program) <= config.length[1]
    assert config.vocab_size[0] <= len(sample.vocab) <= config.vocab_size[1]
    assert config.max_seq_len[0] <= sample.max_seq_len <= config.max_seq_len[1]


def test_samples_are_not_constant_and_pass_dynamic_validation():
  rng = np.random.default_rng(0)
  for sample in _samples(3, 100):
    sop = convert.to_rasp(sample.program)
    inputs = sampler.random_inputs(rng, sample.vocab, sample.max_seq_len, 32)
    full = [xs for xs in inputs if len(xs) == sample.max_seq_len]
    outputs = {tuple(rasp.evaluate(sop, xs)) for xs in full}
    assert len(outputs) > 1 or len(full) < 4, sample.program
    for xs in inputs[:4]:
      assert not validating.validate(sop, xs)


def test_every_operator_and_length_appears():
  samples = _samples(5, 300)
  config = data.get_config().sampler
  lengths = collections.Counter(len(s.program) for s in samples)
  assert set(lengths) == set(range(config.length[0], config.length[1] + 1))
  operators = collections.Counter(
      i.operator for s in samples for i in s.program.instructions)
  assert set(operators) == set(Operator)
  numerical = sum(i.encoding.value == "numerical"
                  for s in samples for i in s.program.instructions)
  assert numerical > 0


def test_length_config_is_respected():
  config = data.get_config().sampler
  config.length = (5, 5)
  assert {len(s.program) for s in _samples(0, 20, config)} == {5}
