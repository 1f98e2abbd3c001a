"""bench/lib_programs.py and bench/beam_widths.py on a tiny trained model;
bench/input_pipeline.py and bench/train_speed.py for a few batches."""

import importlib.util
import os

import ml_collections
import pytest
from tracr.rasp import rasp

from compiled import verify
from configs import tiny
from encoding import synthetic, tokens
from encoding.vocabulary import NA, PROGRAM_END, PROGRAM_START
from meta_model import checkpoints, decompiler, fit, heldout
from rasp_gen import convert
from rasp_gen.program import Instruction, Operator, Program

_BENCH = os.path.join(os.path.dirname(__file__), os.pardir, "bench")


def _load(name: str):
  """A bench script as a module (bench/ is not a package)."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(_BENCH, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


lib_programs = _load("lib_programs")
beam_widths = _load("beam_widths")
input_pipeline = _load("input_pipeline")
train_speed = _load("train_speed")
read_split = _load("read_split")
weight_ladder = _load("weight_ladder")


def _entry(name: str):
  return next(e for e in lib_programs.LIB_PROGRAMS if e.name == name)


def _names(program: Program) -> tuple[tuple[str, ...], ...]:
  """Rows as a Decompilation holds them: token names, no PAD rows."""
  framing = lambda token: (token,) + (NA,) * 4
  return ((framing(PROGRAM_START),)
          + tuple(tuple(tokens.instruction_row(i))
                  for i in program.instructions)
          + (framing(PROGRAM_END),))


class _Answers:
  """A stand-in Decompiler that always answers `program`, verified as
  compiled.verify says."""

  def __init__(self, program: Program):
    self.program = program

  def decompile(self, model, **_):
    sop = convert.to_rasp(self.program)
    evidence = verify.verify(sop, model)
    return decompiler.Decompilation(sop, _names(self.program), "",
                                    evidence.verified, evidence)


def _hist(predicate: str) -> Program:
  return Program((
      Instruction(Operator.SELECT, predicate, ("tokens", "tokens"), "v1"),
      Instruction(Operator.SELECTOR_WIDTH, None, ("v1",), "v2")))


@pytest.mark.parametrize("name, program, right", [
    ("make_hist()", _hist("PRED_EQ"), True),
    ("make_hist()", _hist("PRED_LT"), False),
    ("make_length()", _hist("PRED_TRUE"), True),  # String vocab.
])
def test_checks_judge_a_decompilation(name, program, right):
  """With the decompiler answering `program`, both checks see if it is
  make_hist / make_length (compiled by stock tracr)."""
  options = ml_collections.ConfigDict(dict(
      beam_size=1, num_check_inputs=16, exhaustive_limit=5000,
      read_weights=False))
  row = lib_programs.run_one(_entry(name), _Answers(program), options)
  assert (row.verified, row.functional) == (right, right), row
  assert row.decompiled.startswith("SELECT PRED_")
  assert (row.layers, row.d_model) == ((1, 19) if name == "make_hist()"
                                       else (1, 18))


def _thirteen_layers() -> rasp.SOp:
  """A model deeper than any encoder's max_layers, quick to compile."""
  sop = rasp.tokens
  for _ in range(13):
    sop = rasp.SequenceMap(lambda x, i: (x + i) % 2, sop, rasp.indices)
  return sop


def test_both_scripts_on_a_tiny_trained_model(tmp_path):
  """One test, so pytest-xdist trains the tiny model once."""
  workdir = str(tmp_path / "workdir")
  fit.train_and_evaluate(tiny.get_config(), workdir)

  # lib_programs: a typed row per program, failures as messages.
  too_deep = lib_programs.LibProgram("13 SequenceMaps", _thirteen_layers,
                                     (0, 1), 2)
  programs = (_entry("make_hist()"), _entry("make_frac_prevs(tokens)"),
              too_deep)
  options = ml_collections.ConfigDict(dict(
      beam_size=2, num_check_inputs=8, exhaustive_limit=0, read_weights=False))
  rows = lib_programs.run(workdir, programs, options)
  assert [r.program for r in rows] == [e.name for e in programs]
  hist, frac_bools, deep = rows
  assert isinstance(hist.verified, bool) and isinstance(hist.functional, bool)
  assert hist.seconds > 0 and not hist.message
  assert frac_bools.message.startswith("stock tracr cannot compile")
  assert frac_bools.layers is None and frac_bools.verified is None
  # Over the meta-model's limits: the row names the limit.
  assert "max_layers" in deep.message and deep.verified is None
  assert deep.layers == 13 and hist.source == "meta-model"
  table = lib_programs.format_table(rows).splitlines()
  assert len(table) == 2 + len(rows) + 2  # Header, rows, blank, summary.
  assert all(line.count(" | ") == 9 for line in table[2:2 + len(rows)])
  assert table[-1].startswith("1 of 3 programs decompiled")
  # Read off the weights, the deep model needs no meta-model.
  options.read_weights = True
  (deep,) = lib_programs.run(workdir, [too_deep], options)
  assert deep.verified and deep.functional and deep.source == "weights"

  # beam_widths: eval.py's own numbers, per beam size.
  options = ml_collections.ConfigDict(dict(
      split="test", data_dir="", num_examples=1, num_check_inputs=8,
      exhaustive_limit=0, read_weights=False))
  report = beam_widths.run(workdir, [1, 2], options)
  assert list(report["beams"]) == [1, 2]
  assert report["programs"] == {"as compiled": 1, "permuted residual": 1}
  assert all(s > 0 for s in report["seconds"].values())
  metrics = heldout.evaluate(workdir, ml_collections.ConfigDict(dict(
      options.to_dict(), beam_size=2)))
  for split in ("as compiled", "permuted residual"):
    assert report["beams"][2][split] == metrics[split]["overall"]
  table = beam_widths.format_table(report).splitlines()
  assert [line.split(" | ")[0] for line in table[-2:]] == ["| 1", "| 2"]

  # read_split: the read-out alone on the same split, both layouts.
  read = read_split.run(checkpoints.data_dir(tiny.get_config(), workdir),
                        ml_collections.ConfigDict(dict(options.to_dict(),
                                                       num_examples=4)))
  for split in ("as compiled", "permuted residual"):
    assert read[split]["programs"] == 4
    assert read[split]["verified"] == read[split]["functional"] == 1.0
    assert read[split]["wrong"] == 0.0
  assert read_split.format_table(read).count("| 4 | 100.0% |") == 2


def test_input_pipeline_times_each_path_of_each_encoder():
  config = tiny.get_config()
  source = synthetic.record_source(0, 12, config.data.sampler)
  cached, per_example = input_pipeline.run(source, config, 0.1, 1)
  assert (cached.path, per_example.path) == ("cached", "per-example")
  assert config.input.cache  # The per-example run used a copy.
  for result in (cached, per_example):
    assert result.batches_per_second > 0
    assert sum(result.buckets.values()) == result.batches
    assert set(result.buckets) <= {n for n, _, _ in config.graph.buckets}
  config.input.encoder = "blocks"
  (blocks,) = input_pipeline.run(source, config, 0.1, 1)
  assert blocks.path == "per-example"
  assert set(blocks.buckets) <= set(config.blocks.buckets)


def test_train_speed_times_the_step_and_the_loop():
  config = tiny.get_config()
  source = synthetic.record_source(0, 16, config.data.sampler)
  report = train_speed.run(config, source, steps=3, warmup_steps=1)
  assert report.step_seconds > 0 and report.loop_seconds > 0
  assert report.step_flops > 0 and report.loop_flops > 0
  text = train_speed.format_report(report).splitlines()
  assert [line.split(":")[0] for line in text] == [
      "device", "step alone", "full loop (pipeline + step + logging)",
      "loop / step", "matmul chain of the step's FLOPs"]
  assert "MFU unknown" in text[1]  # No peak for CPUs.
  assert train_speed.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
  assert train_speed.peak_flops("NVIDIA H100 PCIe") == 756e12
  assert train_speed.peak_flops("TPU v5 lite") == 197e12
  assert train_speed.peak_flops("cpu") is None


def test_weight_ladder_reads_a_lib_program_through_an_invertible_map():
  options = ml_collections.ConfigDict({"num_check_inputs": 20,
                                       "exhaustive_limit": 200,
                                       "workdir": None})
  cases = weight_ladder.stock_cases("lib", [_entry("make_hist()")], options)
  decompilers = weight_ladder.make_decompilers(options)
  assert list(decompilers) == [weight_ladder.READ_OUT]  # No --workdir.
  results = [result for rung in ("R0", "R2-invertible")
             for result in weight_ladder.run_case(
                 cases[0], rung, seed=1, decompilers=decompilers)]
  summary = weight_ladder.summarize(results)
  assert summary["kept"] == summary["functional"] == summary["verified"] == 2
  assert summary["wrong"] == 0 and summary["agreement"] == 1.0
  assert summary["generation_seconds"] > 0
  assert "| gen s |" in weight_ladder.format_table({("lib", "R0", "x"): summary})
