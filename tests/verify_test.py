"""A candidate reproduces weights exactly, or computes the same residual."""

import dataclasses

import numpy as np
import pytest
from tracr.compiler import compiling, lib

from configs import data
from encoding import synthetic, verify
from rasp_gen import compiler, convert, functional, sampler
from rasp_gen.program import (Encoding, Instruction, Operator, Program,
                              canonicalize)

BOS, PAD = compiler.COMPILER_BOS, compiler.COMPILER_PAD
M, SM, SEL, AGG, SW = (Operator.MAP, Operator.SEQUENCE_MAP, Operator.SELECT,
                       Operator.AGGREGATE, Operator.SELECTOR_WIDTH)
NUM = Encoding.NUMERICAL
VOCAB, MAX_SEQ_LEN = (0, 1, 2, 3), 4


def program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


def _compile(prog: Program, vocab=VOCAB, max_seq_len=MAX_SEQ_LEN,
             bos=BOS) -> compiler.CompiledModel:
  return compiler.compile_rasp_to_model_numpy(
      convert.to_rasp(prog), set(vocab), max_seq_len, compiler_bos=bos)


def _inputs(vocab=VOCAB, max_seq_len=MAX_SEQ_LEN, count=20):
  return sampler.random_inputs(np.random.default_rng(0), vocab, max_seq_len,
                               count)


def _agreement(candidate: Program, model: compiler.CompiledModel, vocab=VOCAB,
               max_seq_len=MAX_SEQ_LEN, **kwargs) -> float:
  return verify.residual_agreement(candidate, model.params, vocab,
                                   max_seq_len, _inputs(vocab, max_seq_len),
                                   BOS, PAD, **kwargs)


def _rename(prog: Program, names: dict[str, str]) -> Program:
  rename = lambda name: names.get(name, name)
  return Program(tuple(
      dataclasses.replace(i, args=tuple(rename(a) for a in i.args),
                          output=rename(i.output))
      for i in prog.instructions))


@pytest.mark.parametrize("vocab, bos", [
    ((3, 1, 2, 10), BOS), (("b", "a", "c"), BOS), ((-1, 0, 7), "BOS")])
def test_input_tokens_is_the_compilers_order(vocab, bos):
  prog = program((SEL, "PRED_EQ", ("tokens", "tokens"), "s"),
                 (SW, None, ("s",), "w"))
  assert verify.input_tokens(vocab, bos, PAD) == _compile(
      prog, vocab, 4, bos).input_tokens


def _samples():
  config = data.get_config().sampler
  samples = [sampler.sample_program(sampler.sampler_rng(0, index), config)
             for index in (1, 2, 56)]  # (0, 56) is numerical.
  return samples + [synthetic.two_heads_sample()]


@pytest.mark.parametrize("sample", _samples(),
                         ids=["sampled_1", "sampled_2", "numerical",
                              "two_heads"])
def test_a_program_reproduces_its_own_weights(sample):
  model = sample.compiled
  assert verify.recompiles_exactly(sample.program, model.params, sample.vocab,
                                   sample.max_seq_len, BOS, PAD)
  # num_heads is inferred from the candidate (two_heads has 2).
  assert _agreement(sample.program, model, sample.vocab,
                    sample.max_seq_len) == 1.0


def test_stock_tracr_weights_of_a_library_program():
  # jax arrays, tracr's own variable names, a custom BOS.
  hist = lib.make_hist()
  model = compiling.compile_rasp_to_model(hist, {1, 2, 3}, 5,
                                          compiler_bos="BOS")
  candidate = canonicalize(convert.from_rasp(hist))
  inputs = _inputs((1, 2, 3), 5)
  assert verify.residual_agreement(candidate, model.params, (1, 2, 3), 5,
                                   inputs, "BOS", PAD) == 1.0


def test_renamed_program_agrees_on_the_residual_only():
  # Renaming reverses the variables' order in the residual stream.
  sample = synthetic.two_heads_sample()
  names = {f"v{i}": f"z{9 - i}" for i in range(1, 6)}
  renamed = _compile(_rename(sample.program, names), sample.vocab,
                     sample.max_seq_len)
  assert renamed.residual_labels != sample.compiled.residual_labels
  assert not verify.recompiles_exactly(
      sample.program, renamed.params, sample.vocab, sample.max_seq_len, BOS,
      PAD)
  assert _agreement(sample.program, renamed, sample.vocab,
                    sample.max_seq_len) == 1.0


def test_wrong_head_count_lowers_agreement():
  sample = synthetic.two_heads_sample()
  assert _agreement(sample.program, sample.compiled, sample.vocab,
                    sample.max_seq_len, num_heads=1) < 1.0


def test_different_program_of_the_same_width_disagrees():
  mod_2 = program((M, "LAM_MOD_2", ("tokens",), "v1"),
                  (SM, "LAM_ADD", ("v1", "indices"), "v2"))
  lt_2 = program((M, "LAM_LT_2", ("tokens",), "v1"),
                 (SM, "LAM_ADD", ("v1", "indices"), "v2"))
  model = _compile(mod_2)
  assert len(_compile(lt_2).residual_labels) == len(model.residual_labels)
  assert not verify.recompiles_exactly(lt_2, model.params, VOCAB, MAX_SEQ_LEN,
                                       BOS, PAD)
  assert _agreement(lt_2, model) < 1.0


def test_weights_do_not_hold_categorical_values():
  # The output's values are labels outside the params: x + 1 and x + 2
  # compile to the same weights, though they compute different functions.
  add_1 = program((M, "LAM_ADD_1", ("tokens",), "v1"))
  add_2 = program((M, "LAM_ADD_2", ("tokens",), "v1"))
  assert verify.recompiles_exactly(add_2, _compile(add_1).params, VOCAB,
                                   MAX_SEQ_LEN, BOS, PAD)
  assert not functional.same_function(add_2, add_1, _inputs())


def test_same_function_other_structure_has_another_residual():
  two_steps = program((M, "LAM_SUB_1", ("tokens",), "v1"),
                      (M, "LAM_EQ_0", ("v1",), "v2"))
  one_step = program((M, "LAM_EQ_1", ("tokens",), "v1"))
  assert functional.same_function(two_steps, one_step, _inputs())
  assert _agreement(two_steps, _compile(one_step)) == 0.0  # Wider residual.


def test_candidate_that_does_not_compile_scores_zero():
  # tracr averages only 0/1 numerical values.
  bad = program((M, "LAM_ADD_1", ("tokens",), "v1", NUM),
                (SEL, "PRED_LT", ("indices", "indices"), "v2"),
                (AGG, None, ("v2", "v1"), "v3", NUM))
  model = _compile(program((M, "LAM_ADD_1", ("tokens",), "v1")))
  assert not verify.recompiles_exactly(bad, model.params, VOCAB, MAX_SEQ_LEN,
                                       BOS, PAD)
  assert _agreement(bad, model) == 0.0


@pytest.mark.parametrize("vocab, inputs, message", [
    (VOCAB, [], "at least one input"),
    (VOCAB, [[0, 9]], r"tokens \[9\] outside the vocab"),
    (VOCAB, [[0, BOS]], "outside the vocab"),
    (VOCAB, [[0] * (MAX_SEQ_LEN + 1)], "pos_embed has 5 rows"),
    ((0, 1, 2), [[0]], "token_embed has 6 rows"),
])
def test_residual_agreement_errors(vocab, inputs, message):
  prog = program((M, "LAM_ADD_1", ("tokens",), "v1"))
  with pytest.raises(ValueError, match=message):
    verify.residual_agreement(prog, _compile(prog).params, vocab, MAX_SEQ_LEN,
                              inputs, BOS, PAD)
