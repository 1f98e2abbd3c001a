"""verify(program, model): the program computes what the weights compute."""

import dataclasses

import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import compare
from compiled import inputs as inputs_lib
from compiled import verify
from compiled import compiler, forward, saved
from configs import data
from encoding import synthetic
from rasp_gen import convert, functions, sampler
from rasp_gen.program import (Encoding, Instruction, Operator, Program,
                              canonicalize, validate)

BOS, PAD = compiler.COMPILER_BOS, compiler.COMPILER_PAD
M, SM, SEL, AGG, SW = (Operator.MAP, Operator.SEQUENCE_MAP, Operator.SELECT,
                       Operator.AGGREGATE, Operator.SELECTOR_WIDTH)
NUM = Encoding.NUMERICAL
VOCAB, MAX_SEQ_LEN = (0, 1, 2, 3), 4


def program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


def _sop(prog) -> rasp.SOp:
  return prog if isinstance(prog, rasp.SOp) else convert.to_rasp(prog)


def _verify(prog, model, **options) -> verify.Verification:
  """`verify.verify` of a tracr SOp or, converted, a Program."""
  return verify.verify(_sop(prog), model, **options)


def _model(prog, vocab=VOCAB, max_seq_len=MAX_SEQ_LEN) -> saved.SavedModel:
  """The weights `prog` compiles to, as a saved model (fast compiler)."""
  compiled = compiler.compile_rasp_to_model_numpy(_sop(prog), set(vocab),
                                                  max_seq_len)
  return saved.SavedModel(compiled.params, tuple(vocab), max_seq_len, BOS,
                          PAD, compiled.num_heads, False,
                          compiled.output_decoding)


# Issue 9's counterexample: identical params, different output values
# ({9, 16, 25, 36} vs {1, 4, 9, 16}), different functions.
ADD_3_SQUARE = program((M, "LAM_ADD_3", ("tokens",), "v1"),
                       (M, "LAM_SQUARE", ("v1",), "v2"))
ADD_1_SQUARE = program((M, "LAM_ADD_1", ("tokens",), "v1"),
                       (M, "LAM_SQUARE", ("v1",), "v2"))


@pytest.mark.parametrize("exhaustive_limit", [2000, 0],
                         ids=["exhaustive", "random"])
def test_same_params_different_output_values_is_rejected(exhaustive_limit):
  model = _model(ADD_3_SQUARE)
  other = _model(ADD_1_SQUARE)
  assert verify._same_params(other.params, model.params)  # Identical.
  assert model.output.values == (9, 16, 25, 36)
  result = _verify(ADD_1_SQUARE, model,
                         exhaustive_limit=exhaustive_limit)
  assert not result.verified and result.reason == "output values differ"
  xs, from_weights, from_program = result.first_difference
  assert from_weights == [(x + 3)**2 for x in xs]
  assert from_program == [(x + 1)**2 for x in xs]
  assert result.num_agreeing == 0
  assert result.exhaustive == (exhaustive_limit > 0)
  truth = _verify(ADD_3_SQUARE, model,
                        exhaustive_limit=exhaustive_limit)
  assert truth.verified and truth.reason == "" and truth.first_difference is None
  assert truth.num_inputs == truth.num_agreeing == (
      340 if exhaustive_limit else 64 + len(VOCAB))


def test_bool_outputs_are_not_int_outputs():
  as_bool = rasp.Map(lambda x: x < 2, rasp.tokens)
  as_int = rasp.Map(lambda x: int(x < 2), rasp.tokens)
  model = _model(as_bool)
  assert verify._same_params(_model(as_int).params, model.params)
  result = _verify(as_int, model)
  assert not result.verified and result.reason == "output values differ"
  assert result.first_difference[1:] == ([True], [1])
  assert _verify(as_bool, model).verified
  # As a Program from the function table, too.
  assert _verify(program((M, "LAM_LT_2", ("tokens",), "v1")),
                       model).verified


def test_numerical_output_and_encoding():
  frac = lib.make_frac_prevs(rasp.tokens == 1)
  model = _model(frac)
  assert model.output.numerical
  assert _verify(frac, model).verified
  other = lib.make_frac_prevs(rasp.tokens == 2)
  result = _verify(other, model)
  assert not result.verified and result.reason == "output values differ"
  categorical = rasp.Map(lambda x: x == 1, rasp.tokens)
  assert _verify(categorical, model).reason.startswith(
      "output encoding differs")


@pytest.fixture(scope="module")
def hist_model():
  return compiling.compile_rasp_to_model(lib.make_hist(), {1, 2, 3, 4}, 5,
                                         compiler_bos="BOS")


def test_stock_tracr_models(hist_model, tmp_path):
  # make_hist's own SOp, its canonical Program, and a saved file.
  hist = lib.make_hist()
  assert _verify(hist, hist_model).verified
  assert _verify(canonicalize(convert.from_rasp(hist)),
                       hist_model).verified
  path = tmp_path / "hist.npz"
  saved.save_compiled(path, hist_model)
  assert _verify(hist, path).verified
  assert _verify(hist, str(path)).verified
  wrong = _verify(lib.make_length(), hist_model)
  assert not wrong.verified and wrong.reason == "output values differ"
  assert wrong.exhaustive and wrong.num_inputs == 4 + 16 + 64 + 256 + 1024
  xs, from_weights, from_program = wrong.first_difference
  assert from_weights == [xs.count(x) for x in xs] != from_program == [
      len(xs)] * len(xs)


def test_stock_make_length_with_random_inputs():
  length = compiling.compile_rasp_to_model(lib.make_length(), {"a", "b", "c"},
                                           6, compiler_bos="BOS")
  result = _verify(lib.make_length(), length, exhaustive_limit=100)
  assert result.verified and not result.exhaustive
  # Same function, other structure: equal outputs are not enough evidence on
  # random inputs, but are on all of them.
  other = rasp.Map(lambda x: x, lib.make_length())
  assert _verify(other, length).verified
  assert _verify(other, length, exhaustive_limit=100).reason.startswith(
      "compiled residual stream differs")
  wrong = _verify(lib.make_hist(), length, exhaustive_limit=100)
  assert not wrong.verified and wrong.first_difference is not None


def test_renamed_program_verifies_on_random_inputs():
  # Renaming reorders the residual stream; the residual still agrees.
  sample = synthetic.two_heads_sample()
  model = _model(sample.program, sample.vocab, sample.max_seq_len)
  names = {f"v{i}": f"z{9 - i}" for i in range(1, 6)}
  renamed = Program(tuple(
      dataclasses.replace(i, args=tuple(names.get(a, a) for a in i.args),
                          output=names[i.output])
      for i in sample.program.instructions))
  assert model.num_heads == 2
  for limit in (0, 2000):
    assert _verify(sample.program, model, exhaustive_limit=limit
                         ).verified
    assert _verify(renamed, model, exhaustive_limit=limit).verified


def test_a_program_that_fails_on_an_input_disagrees():
  # Position 0 has no previous token: None reaches a Select and RASP raises.
  fails = program((M, "LAM_SUB_1", ("indices",), "v1"),
                  (SEL, "PRED_EQ", ("indices", "v1"), "v2"),
                  (AGG, None, ("v2", "tokens"), "v3"),
                  (SEL, "PRED_EQ", ("v3", "v3"), "v4"),
                  (SW, None, ("v4",), "v5"))
  model = _model(program((SEL, "PRED_EQ", ("tokens", "tokens"), "v1"),
                         (SW, None, ("v1",), "v2")))
  result = _verify(fails, model)
  assert not result.verified and result.reason == "program fails on an input"
  assert "None" in result.first_difference[2]


def test_a_program_that_does_not_compile_is_not_verified_on_random_inputs(
    monkeypatch):
  model = _model(ADD_3_SQUARE)

  def refuse(*args, **kwargs):
    raise NotImplementedError("unsupported")

  monkeypatch.setattr(compiler, "compile_rasp_to_model_numpy", refuse)
  result = _verify(ADD_3_SQUARE, model, exhaustive_limit=0)
  assert not result.verified and result.reason == "does not compile"
  assert result.num_agreeing == result.num_inputs  # The outputs agreed.
  assert _verify(ADD_3_SQUARE, model).verified  # Exhaustive: enough.


def test_reference_is_built_once_and_reused():
  model = _model(ADD_3_SQUARE)
  reference = verify.reference(model, exhaustive_limit=0, num_random=16)
  assert len(reference.inputs) == 16 + len(VOCAB)
  assert not reference.exhaustive and len(reference.columns) == 20
  early = verify.verify_against(reference, _sop(ADD_1_SQUARE))
  assert early.num_inputs == 1 and not early.verified
  assert verify.verify_against(reference, _sop(ADD_3_SQUARE)).verified
  given = verify.reference(model, [[0, 1], [3]])
  assert given.outputs == ([9, 16], [36]) and not given.exhaustive
  everything = inputs_lib.check_inputs(None, VOCAB, MAX_SEQ_LEN, 0, 10**6)
  assert verify.reference(model, everything[::-1]).exhaustive


@pytest.mark.parametrize("change, inputs, error, message", [
    (dict(num_heads=None), None, ValueError, "number of attention heads"),
    ({}, [[0, 9]], ValueError, r"tokens \[9\] outside the vocab"),
    ({}, [[0, BOS]], ValueError, "outside the vocab"),
    ({}, [[0] * (MAX_SEQ_LEN + 1)], ValueError, "longer than max_seq_len"),
    ({}, [], ValueError, "at least one non-empty input"),
    (dict(num_heads=3), None, ValueError, "not divisible by num_heads=3"),
])
def test_reference_errors(change, inputs, error, message):
  model = dataclasses.replace(_model(ADD_3_SQUARE), **change)
  with pytest.raises(error, match=message):
    verify.reference(model, inputs)


def test_wrong_argument_types():
  with pytest.raises(TypeError, match="cannot verify against a dict"):
    verify.verify(_sop(ADD_3_SQUARE), {})
  with pytest.raises(TypeError, match="cannot verify a Program"):
    verify.verify(ADD_3_SQUARE, _model(ADD_3_SQUARE))


@pytest.mark.parametrize("vocab, bos", [
    ((3, 1, 2, 10), BOS), (("b", "a", "c"), BOS), ((-1, 0, 7), "BOS")])
def test_input_tokens_is_the_compilers_order(vocab, bos):
  prog = program((SEL, "PRED_EQ", ("tokens", "tokens"), "s"),
                 (SW, None, ("s",), "w"))
  compiled = compiler.compile_rasp_to_model_numpy(convert.to_rasp(prog),
                                                  set(vocab), 4,
                                                  compiler_bos=bos)
  assert forward.input_tokens(vocab, bos, PAD) == compiled.input_tokens


def _mutants(prog: Program) -> list[Program]:
  """Every program that differs from `prog` in one function."""
  table = {M: [f.name for f in functions.MAP_FUNCTIONS],
           SM: [f.name for f in functions.SEQUENCE_MAP_FUNCTIONS],
           SEL: list(functions.PREDICATES)}
  mutants = []
  for position, instruction in enumerate(prog.instructions):
    if instruction.operator not in table or instruction.function.startswith(
        "LAM_LINEAR"):
      continue
    for name in table[instruction.operator]:
      if name == instruction.function:
        continue
      instructions = list(prog.instructions)
      instructions[position] = dataclasses.replace(instruction, function=name)
      mutant = Program(tuple(instructions))
      try:
        validate(mutant)
      except ValueError:
        continue
      mutants.append(mutant)
  return mutants


def test_verified_mutants_compute_the_same_function_everywhere():
  """Verification on 16 random inputs (plus structure) => equal on all."""
  config = data.get_config().sampler
  config.vocab_size, config.max_seq_len, config.length = (3, 4), (4, 4), (2, 4)
  rng = np.random.default_rng(0)
  counts = dict(mutants=0, verified=0, same_params_rejected=0)
  for index in range(12):
    sample = sampler.sample_program(sampler.sampler_rng(9, index), config)
    model = _model(sample.program, sample.vocab, sample.max_seq_len)
    reference = verify.reference(model, exhaustive_limit=0, num_random=16,
                                 seed=index)
    everything = inputs_lib.check_inputs(rng, sample.vocab, sample.max_seq_len,
                                      0, exhaustive_limit=10**6)
    for mutant in _mutants(sample.program)[::2]:
      counts["mutants"] += 1
      result = verify.verify_against(reference, _sop(mutant))
      if result.verified:
        counts["verified"] += 1
        truth, mutant_sop = map(convert.to_rasp, (sample.program, mutant))
        for xs in everything:  # Typed, as verification compares.
          assert compare.same_output(rasp.evaluate(truth, xs),
                                     rasp.evaluate(mutant_sop, xs),
                                     model.output.numerical), (mutant, xs)
        continue
      try:
        params = compiler.compile_rasp_to_params(
            convert.to_rasp(mutant), set(sample.vocab), sample.max_seq_len)
      except (ValueError, NotImplementedError):
        continue
      counts["same_params_rejected"] += verify._same_params(params,
                                                            model.params)
  # Hundreds of mutants; some verify (functions equal on this input space),
  # and some that compile to the very same params are rejected.
  assert counts["mutants"] >= 200, counts
  assert counts["verified"] >= 5, counts
  assert counts["same_params_rejected"] >= 5, counts
