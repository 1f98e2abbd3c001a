"""The sampler's contract: valid, canonical, non-degenerate, faithful to its
weights, deterministic."""

import collections
import hashlib
import itertools

import networkx

import numpy as np
import pytest
from tracr.compiler import validating
from tracr.rasp import rasp

from compiled import inputs as inputs_lib
from compiled import compiler
from configs import data
from encoding import graph
from rasp_gen import convert, functions, labels, sampler
from rasp_gen.program import (Encoding, Instruction, Linear, Operator,
                              Program, Table, canonicalize, validate)


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
    inputs = inputs_lib.random_inputs(rng, sample.vocab, sample.max_seq_len, 32)
    full = [xs for xs in inputs if len(xs) == sample.max_seq_len]
    outputs = {tuple(rasp.evaluate(sop, xs)) for xs in full}
    assert len(outputs) > 1 or len(full) < 4, sample.program
    for xs in inputs[:4]:
      assert not validating.validate(sop, xs)


def test_every_operator_and_length_appears():
  samples = _samples(5, 200)
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


def _program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


# tracr miscompiles both, silently: dynamic validation accepts them.
WIDTH = _program((Operator.SELECT, "PRED_TRUE", ("tokens", "tokens"), "v1"),
                 (Operator.SELECTOR_WIDTH, None, ("v1",), "v2"))
NEGATIVE = _program((Operator.MAP, "LAM_SUB_3", ("tokens",), "v1",
                     Encoding.NUMERICAL))


def _first_unfaithful(program, vocab, max_seq_len, inputs):
  sop = convert.to_rasp(program)
  compiled = compiler.compile_rasp_to_model_numpy(sop, set(vocab),
                                                  max_seq_len)
  return sampler.first_unfaithful(sop, compiled, inputs)


def test_selector_width_of_ten_is_unfaithful_at_max_seq_len_ten():
  inputs = inputs_lib.check_inputs(np.random.default_rng(0), (0, 1, 2), 10,
                                num_random=4, exhaustive_limit=500)
  assert _first_unfaithful(WIDTH, (0, 1, 2), 9, [
      xs[:9] for xs in inputs]) is None
  xs, from_weights, from_program = _first_unfaithful(WIDTH, (0, 1, 2), 10,
                                                     inputs)
  assert len(xs) == 10 and from_weights == [9] * 10
  assert from_program == [10] * 10


def test_negative_numerical_map_is_unfaithful():
  xs, from_weights, from_program = _first_unfaithful(
      NEGATIVE, (0, 1, 2, 3, 4), 4, [[4, 0]])
  assert (xs, from_weights, from_program) == ([4, 0], [1.0, 0.0], [1, -3])
  assert _first_unfaithful(NEGATIVE, (3, 4, 5), 4, [[4, 3, 5]]) is None


def test_aggregate_that_selects_nothing_decodes_to_none():
  # RASP's None (no index equals tokens + 3) is the weights' empty output.
  lookup = _program((Operator.MAP, "LAM_ADD_3", ("tokens",), "v1"),
                    (Operator.SELECT, "PRED_EQ", ("indices", "v1"), "v2"),
                    (Operator.AGGREGATE, None, ("v2", "tokens"), "v3"))
  inputs = inputs_lib.check_inputs(None, (0, 1), 5, 0, exhaustive_limit=100)
  assert rasp.evaluate(convert.to_rasp(lookup), [0, 1, 0, 1]) == [
      1, None, 1, None]
  assert _first_unfaithful(lookup, (0, 1), 5, inputs) is None


def test_samples_are_faithful_and_rejections_are_counted(monkeypatch):
  config = data.get_config().sampler
  config.vocab_size, config.max_seq_len = (3, 3), (4, 5)  # Exhaustive.
  samples = _samples(0, 20, config)
  for sample in samples:
    inputs = inputs_lib.check_inputs(None, sample.vocab, sample.max_seq_len, 0,
                                  exhaustive_limit=500)
    assert sampler.first_unfaithful(convert.to_rasp(sample.program),
                                    sample.compiled, inputs) is None
  rejections = collections.Counter()
  for sample in _samples(0, 40):
    rejections.update(sample.rejections)
  assert set(rejections) <= set(sampler.REJECTIONS)
  assert rejections["unfaithful"] > 0 and rejections["invalid"] > 0
  # With every program unfaithful, sampling gives up, with the counts.
  monkeypatch.setattr(sampler, "first_unfaithful",
                      lambda *args, **kwargs: ([0], [1], [2]))
  config.max_attempts = 30
  with pytest.raises(sampler.SamplingError, match="in 30 attempts") as error:
    sampler.sample_program(sampler.sampler_rng(0, 0), config)
  assert sum(error.value.rejections.values()) == 30
  assert error.value.rejections["unfaithful"] >= 1


def _weight_graph_hash(sample) -> str:
  """Weisfeiler-Lehman hash of the sample's weight graph (encoding/graph.py):
  equal for the same weights up to residual and neuron order."""
  weight_graph = graph.build_graph(
      sample.compiled.params, sample.compiled.input_tokens,
      sample.compiled.output_decoding, sample.compiled.num_heads,
      graph.default_graph_config(), compiler.COMPILER_BOS,
      compiler.COMPILER_PAD)
  nx_graph = networkx.DiGraph()
  for n in range(weight_graph.num_nodes):
    nx_graph.add_node(n, label=str((
        weight_graph.node_type[n], weight_graph.node_layer[n],
        weight_graph.node_index[n], weight_graph.node_value[n])))
  for e in range(weight_graph.num_edges):
    nx_graph.add_edge(int(weight_graph.edge_source[e]),
                      int(weight_graph.edge_target[e]), label=str((
                          weight_graph.edge_kind[e],
                          round(float(weight_graph.edge_value[e]), 4))))
  return networkx.weisfeiler_lehman_graph_hash(
      nx_graph, node_attr="label", edge_attr="label", iterations=6)


def test_canonical_labels_rename_without_changing_the_weights():
  plain_config = data.get_config().sampler
  plain_config.canonical_labels = False
  canonical_config = data.get_config().sampler
  canonical_config.canonical_labels = True
  plain = _samples(11, 60, plain_config)
  canonical = _samples(11, 60, canonical_config)
  renamed = 0
  rng = np.random.default_rng(0)
  for a, b in zip(plain, canonical):
    assert (a.vocab, a.max_seq_len) == (b.vocab, b.max_seq_len)
    assert len(a.program) == len(b.program)
    renamed += a.program != b.program
    for xs in inputs_lib.random_inputs(rng, a.vocab, a.max_seq_len, 8):
      assert (rasp.evaluate(convert.to_rasp(a.program), xs)
              == rasp.evaluate(convert.to_rasp(b.program), xs))
    assert a.compiled.output_decoding == b.compiled.output_decoding
    assert _weight_graph_hash(a) == _weight_graph_hash(b), (a.program,
                                                           b.program)
  assert renamed >= 10, renamed  # Most programs with a SequenceMap.


# sha256(f"{program}|{vocab}|{max_seq_len}")[:16] of sample_program(
# sampler_rng(seed, 0), configs/data.py's sampler) for seeds 0..9, computed
# before the wider-language knobs existed: off, they change no program.
PROGRAMS_BEFORE_THE_WIDER_LANGUAGE = (
    "ffb709263943a963", "92a6bfd3be2ff2c3", "ccc7bdaa83e48f2c",
    "00cc45d6e6b55727", "2bd8ffc7f12eb6d4", "22918c8f3a9ccdb5",
    "f16dfe114eadf467", "44136bbfd8738952", "5bae9e9a17528048",
    "387c3af0b0519e2f")
WIDER_LANGUAGE_SHARES = ("table_share", "custom_select_share",
                         "string_vocab_share", "reuse_select_share")


def _fingerprint(sample) -> str:
  text = f"{sample.program}|{sample.vocab}|{sample.max_seq_len}"
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def _functions(samples, operators, kind=Table):
  return [i.function for s in samples for i in s.program.instructions
          if i.operator in operators and isinstance(i.function, kind)]


def test_the_wider_language_off_draws_the_programs_drawn_before_it():
  config = data.get_config().sampler
  assert all(config[share] == 0 for share in WIDER_LANGUAGE_SHARES)
  assert not config.grow_past_dead_code and not config.max_numerical_product
  assert tuple(_fingerprint(sampler.sample_program(
      sampler.sampler_rng(seed, 0), config)) for seed in range(10)
               ) == PROGRAMS_BEFORE_THE_WIDER_LANGUAGE
  # A config from before the knobs (no such fields) draws the same.
  for share in WIDER_LANGUAGE_SHARES + ("table_num_values",
                                        "grow_past_dead_code",
                                        "max_numerical_product"):
    del config[share]
  assert _fingerprint(sampler.sample_program(
      sampler.sampler_rng(3, 0), config)) == (
          PROGRAMS_BEFORE_THE_WIDER_LANGUAGE[3])
  samples = _samples(0, 60)
  assert not _functions(samples, set(Operator), (Table, Linear))
  assert all(isinstance(t, int) for s in samples for t in s.vocab)


def _checked(samples) -> None:
  """Valid, canonical, and faithful on every input (small spaces)."""
  for sample in samples:
    validate(sample.program)
    assert canonicalize(sample.program) == sample.program
    inputs = inputs_lib.check_inputs(None, sample.vocab, sample.max_seq_len,
                                     0, exhaustive_limit=500)
    assert sampler.first_unfaithful(convert.to_rasp(sample.program),
                                    sample.compiled, inputs) is None


def _small_config(**shares):
  config = data.get_config().sampler
  config.vocab_size, config.max_seq_len = (3, 3), (4, 5)  # Exhaustive.
  config.update(shares)
  return config


def test_tables_are_drawn_when_asked():
  samples = _samples(0, 40, _small_config(table_share=0.5))
  _checked(samples)
  maps = _functions(samples, {Operator.MAP})
  sequence_maps = _functions(samples, {Operator.SEQUENCE_MAP})
  assert len(maps) >= 5 and len(sequence_maps) >= 2
  assert not _functions(samples, {Operator.SELECT})
  for table in maps + sequence_maps:
    outputs = {value for _, value in table.entries}
    assert 2 <= len(outputs) <= 4  # From table_num_values' pool (or bool).
    assert len({type(v) for v in outputs}) == 1
    # Equal to no named function on its whole domain: that would be named.
    assert convert.readable(
        Operator.MAP if table.arity == 1 else Operator.SEQUENCE_MAP,
        table) is table


def test_a_table_covers_the_values_its_arguments_take():
  config = _small_config(table_share=0.5, custom_select_share=0.5,
                         string_vocab_share=0.5)
  for sample in _samples(1, 30, config):
    values = labels.value_sets(sample.program, sample.vocab,
                               sample.max_seq_len)
    for instruction in sample.program.instructions:
      if isinstance(instruction.function, Table):
        domain = {args for args, _ in instruction.function.entries}
        assert domain == set(itertools.product(
            *(values[a] for a in instruction.args))), instruction


def test_custom_selects_are_drawn_when_asked():
  samples = _samples(0, 40, _small_config(custom_select_share=0.6))
  _checked(samples)
  selects = _functions(samples, {Operator.SELECT})
  assert len(selects) >= 5
  assert not _functions(samples, {Operator.MAP, Operator.SEQUENCE_MAP})
  for table in selects:
    assert {type(value) for _, value in table.entries} == {bool}
    assert {value for _, value in table.entries} == {False, True}
    assert convert.readable(Operator.SELECT, table) is table
  # Offsets q == k + c over indices: a shift of the sequence.
  shifts = [t for t in selects for c in (-2, -1, 1, 2) if all(
      value == (query == key + c) for (key, query), value in t.entries)]
  assert shifts


def test_string_vocabs_take_only_what_makes_sense_on_strings():
  config = _small_config(string_vocab_share=1.0, table_share=0.3,
                         custom_select_share=0.3)
  samples = _samples(0, 30, config)
  _checked(samples)
  assert all(s.vocab == tuple("abc") or s.vocab == tuple("bcd")
             for s in samples)
  kinds = lambda values: {isinstance(v, str) for v in values}
  reads_tokens = 0
  for sample in samples:
    values = labels.value_sets(sample.program, sample.vocab,
                               sample.max_seq_len)
    for instruction in sample.program.instructions:
      reads_tokens += "tokens" in instruction.args
      function = instruction.function
      if not isinstance(function, str):
        continue
      domains = [values[a] for a in instruction.args]
      if instruction.operator == Operator.SELECT:
        if any(True in kinds(d) for d in domains):
          assert function in sampler.STRING_PREDICATES
          assert kinds(domains[0]) == kinds(domains[1])
      elif instruction.encoding == Encoding.CATEGORICAL or (
          instruction.operator == Operator.MAP):
        named = (functions.MAP_BY_NAME if instruction.operator == Operator.MAP
                 else functions.SEQUENCE_MAP_BY_NAME)[function]
        assert all(functions.accepts(named, d) for d in domains), instruction
  assert reads_tokens >= len(samples)
  # Without tables a string vocab still gives programs, named ones only.
  plain = _samples(2, 10, _small_config(string_vocab_share=1.0))
  _checked(plain)
  assert not _functions(plain, set(Operator), (Table, Linear))


def _select_readers(sample) -> list[list[Operator]]:
  """Per Select of the program, the operators of the instructions reading it."""
  readers = collections.defaultdict(list)
  for instruction in sample.program.instructions:
    for arg in instruction.args:
      readers[arg].append(instruction.operator)
  return [readers[i.output] for i in sample.program.instructions
          if i.operator == Operator.SELECT]


def test_one_selector_feeds_an_aggregate_and_a_selector_width():
  samples = _samples(3, 100, _shares(reuse_select_share=0.8))
  shared = sum(any(len(r) > 1 for r in _select_readers(s)) for s in samples)
  both = sum(any({Operator.AGGREGATE, Operator.SELECTOR_WIDTH} <= set(r)
                 for r in _select_readers(s)) for s in samples)
  assert shared >= 20 and both >= 1
  # Off, every Aggregate and SelectorWidth writes its own Select.
  assert all(len(r) == 1 for s in _samples(3, 100)
             for r in _select_readers(s))


def _shares(**shares):
  config = data.get_config().sampler
  config.update(shares)
  return config


def test_programs_of_32_instructions():
  config = _shares(grow_past_dead_code=True, max_numerical_product=1024,
                   length=(32, 32), vocab_size=(3, 4), max_seq_len=(4, 5))
  sample = sampler.sample_program(sampler.sampler_rng(0, 0), config)
  assert len(sample.program) == 32
  validate(sample.program)
  assert canonicalize(sample.program) == sample.program
  # Growing exactly 32 instructions, none dead, does not get there.
  config.grow_past_dead_code = False
  config.max_attempts = 100
  with pytest.raises(sampler.SamplingError) as error:
    sampler.sample_program(sampler.sampler_rng(0, 0), config)
  assert error.value.rejections["no_program"] >= 90


def test_linear_factors_are_drawn_with_tables():
  config = _shares(table_share=1.0, numerical_share=0.5)
  linear = _functions(_samples(0, 60, config), {Operator.SEQUENCE_MAP},
                      Linear)
  assert linear and all(
      (f.fst_factor, f.snd_factor) not in ((1.0, 1.0), (1.0, -1.0))
      for f in linear)
