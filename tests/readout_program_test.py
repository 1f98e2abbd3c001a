"""readout.program: assembling the program; read_program, read_and_verify."""

from tracr.compiler import lib
from tracr.rasp import rasp

from compiled import verify
import readout
from rasp_gen.program import Instruction, Operator
from readout import basis, program
from readout_helpers import compile_model

_T = rasp.tokens


def test_only_the_instructions_the_output_needs_are_kept():
  used = Instruction(Operator.MAP, "LAM_ADD_1", ("tokens",), "a")
  unused = Instruction(Operator.MAP, "LAM_ADD_1", ("indices",), "b")
  final = Instruction(Operator.MAP, "LAM_ADD_1", ("a",), "c")
  assert program.needed_instructions([used, unused, final], "c") == (
      used, final)


def test_read_program_reads_the_model_the_basis_pass_returns(monkeypatch):
  model = compile_model(lib.make_length(), {"a", "b"}, 3)
  seen = []
  monkeypatch.setattr(basis, "tracr_basis_views",
                      lambda m: seen.append(m) or iter([m]))
  read = readout.read_program(model)
  assert seen == [model]
  assert [i.operator for i in read.instructions] == [
      Operator.SELECT, Operator.SELECTOR_WIDTH]


def test_read_and_verify_checks_the_read_program():
  model = compile_model(lib.make_hist(), {1, 2, 3}, 4)
  read, verification = readout.read_and_verify(verify.reference(model))
  assert verification.verified
  assert read.instructions[0].function == "PRED_EQ"


def test_a_select_on_a_value_that_may_be_none_matches_nothing():
  """An Aggregate that selects nothing is None (the weights: no direction
  on); a Select reading it must not raise where the weights answer."""
  after = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices,
                                     lambda k, q: k == q + 1), _T)
  width = rasp.SelectorWidth(rasp.Select(after, _T, rasp.Comparison.EQ))
  model = compile_model(width, {1, 2, 3}, 3)
  read, verification = readout.read_and_verify(verify.reference(model))
  assert verification.verified, (str(read), verification)
  assert verification.num_inputs == 39  # Length 1 included: [1], [2], [3].


def test_a_map_that_is_none_on_part_of_its_domain_verifies():
  model = compile_model(rasp.Map(lambda x: x if x > 1 else None, _T),
                        {1, 2, 3}, 3)
  read, verification = readout.read_and_verify(verify.reference(model))
  assert verification.verified, (str(read), verification)
