r"""Judges a trained meta-model, or decompiles weights a user brings.

  python eval.py --decompile=MODEL.npz [--json_out=OUT.json] [--workdir=DIR]
  python eval.py --workdir=DIR [--split=test] [--beam_size=32] [--num_examples=N]

The first form decompiles a tracr model saved with
`compiled.saved.save_compiled` (`meta_model.decompiler`): the program read
off the weights (`readout`, no training needed), or, with --workdir, that
run's meta-model's when the read-out does not verify. It prints the rows, runnable tracr.rasp source
(save it as prog.py, edit it, and check it with `python -m compiled.verify
--model=MODEL.npz --program=prog.py`) and whether the program is verified,
with the first input on which it disagrees with the weights when it is not.
The second prints held-out metrics (`meta_model.heldout`) and writes
DIR/eval/metrics.json and DIR/eval/accuracy_by_length.png.
Exit status: 0 when verified or evaluated, 1 for a user error (one line on
stderr: bad path, unreadable file, weights over the meta-model's limits).
An unverified decompilation also exits 0; --json_out has `verified`.
"""

import json

from absl import app, flags, logging

from compiled import inputs, transformer_lens, verify
from meta_model import decompiler, errors, heldout, search

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A train.py workdir: its config.json and latest "
    "checkpoint are the meta-model. Needed to evaluate a split; optional "
    "with --decompile (the read-out alone without it).")
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split to evaluate "
                             "(train, validation or test).")
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", 0, "Evaluate the split's first N records; 0 means all. "
    "Records over the encoder's size limits are dropped and counted.")
_BEAM_SIZE = flags.DEFINE_integer(
    "beam_size", search.BEAM_SIZE, "Beam candidates for search-and-verify decoding (and "
    "for --decompile).")
_NUM_CHECK_INPUTS = flags.DEFINE_integer(
    "num_check_inputs", inputs.NUM_CHECK_INPUTS, "Random check inputs for functional accuracy "
    "and verification when the input space is larger than "
    "--exhaustive_limit.")
_EXHAUSTIVE_LIMIT = flags.DEFINE_integer(
    "exhaustive_limit", inputs.EXHAUSTIVE_LIMIT, "Check on every input sequence when there "
    "are at most this many.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "Evaluate this dataset's split instead of the run's "
    "own (config.json's data_dir), e.g. two models on the same records.")
_DECOMPILE = flags.DEFINE_string(
    "decompile", None, "Decompile this saved tracr model (.npz, see "
    "compiled/saved.py; or a TransformerLens .pt/.pth/.safetensors file, "
    "see --encoders) instead of evaluating a split.")
_ENCODERS = flags.DEFINE_string(
    "encoders", None, "With --decompile of a TransformerLens model (.pt/.pth: "
    "a torch.save'd HookedTransformer or its state_dict; .safetensors with "
    "its config JSON beside it): a pickle of tracr's encoders (a dict with "
    "input_encoder and output_encoder, a pair, or one encoder), which give "
    "the vocabulary, BOS/PAD and the output values. Both files are read "
    "without running code from them and without torch. What the files do "
    "not say (output dims, mlp_exactness, causality) is inferred and "
    "printed as 'inferred: ...'.")
_READ_WEIGHTS = flags.DEFINE_bool(
    "read_weights", True, "First read the program straight off the weights "
    "(readout); the meta-model (--workdir) decodes only when that does "
    "not verify. On a split this adds the read/dec.* columns; "
    "--noread_weights skips them (and, with --decompile, uses the "
    "meta-model alone).")
_JSON_OUT = flags.DEFINE_string(
    "json_out", None, "With --decompile: also write the rows, Python "
    "source, verdict and evidence here as JSON.")


@errors.exit_on_user_error
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if _DECOMPILE.value:
    meta = (decompiler.load(_WORKDIR.value) if _WORKDIR.value
            else decompiler.Decompiler())
    model = _DECOMPILE.value
    if _ENCODERS.value or transformer_lens.is_transformer_lens_path(model):
      try:
        model = verify.load_model(model, _ENCODERS.value)
      except (ValueError, FileNotFoundError) as error:
        raise errors.UserError(str(error)) from error
      for note in model.inferred:
        print(f"inferred: {note}")
    result = meta.decompile(
        model, beam_size=_BEAM_SIZE.value,
        exhaustive_limit=_EXHAUSTIVE_LIMIT.value,
        num_check_inputs=_NUM_CHECK_INPUTS.value,
        read_weights=_READ_WEIGHTS.value)
    print(result.report())
    if _JSON_OUT.value:
      with open(_JSON_OUT.value, "w") as f:
        json.dump(result.to_json(), f, indent=2)
    return
  if not _WORKDIR.value:
    raise errors.UserError("give --workdir=DIR (a train.py run) to evaluate "
                           "a split, or --decompile=MODEL.npz")
  options = heldout.default_options()
  options.update(split=_SPLIT.value, data_dir=_DATA_DIR.value,
                 num_examples=_NUM_EXAMPLES.value,
                 beam_size=_BEAM_SIZE.value,
                 num_check_inputs=_NUM_CHECK_INPUTS.value,
                 exhaustive_limit=_EXHAUSTIVE_LIMIT.value,
                 read_weights=_READ_WEIGHTS.value)
  heldout.evaluate(_WORKDIR.value, options)


if __name__ == "__main__":
  app.run(main)
