r"""tracr's lib.py programs as torch.save'd HookedTransformers, decompiled
through the CLI with no torch.

Two steps, two environments:

  # 1. With torch, transformer-lens (<3, which has HookedTransformer) and
  #    tracr-pypi (not the project's venv): compile each program with stock
  #    tracr, convert it with TransformerLens's API (TransformerLens's tracr
  #    demo; tests/fixtures/make_transformer_lens_fixtures.py), torch.save
  #    the whole module and pickle the encoders.
  /tmp/tlvenv/bin/python bench/transformer_lens_lib.py --make --out_dir=/tmp/tl_lib
  # 2. In the project's venv (no torch):
  python bench/transformer_lens_lib.py --out_dir=/tmp/tl_lib

Step 2 runs `python eval.py --decompile=NAME.pt --encoders=NAME_encoders.pkl
--json_out=NAME.json` per program and prints a markdown table: verified,
the inferred lines, seconds. The programs are bench/lib_programs.py's 15
that stock tracr compiles (copied here: step 1 cannot import the project).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def programs():
  from tracr.compiler import lib  # pylint: disable=g-import-not-at-top
  from tracr.rasp import rasp  # pylint: disable=g-import-not-at-top
  t, letters, parens = rasp.tokens, {"a", "b", "c"}, {"(", ")"}
  return [
      ("make_length", lib.make_length, letters, 5),
      ("make_hist", lib.make_hist, {1, 2, 3, 4}, 5),
      ("make_reverse", lambda: lib.make_reverse(t), letters, 5),
      ("make_sort_unique", lambda: lib.make_sort_unique(t, t),
       {1, 2, 3, 4, 5}, 5),
      ("make_sort", lambda: lib.make_sort(t, t, max_seq_len=5, min_key=1),
       {1, 2, 3, 4}, 5),
      ("make_sort_freq", lambda: lib.make_sort_freq(5), {1, 2, 3}, 5),
      ("make_frac_prevs_x", lambda: lib.make_frac_prevs(t == "x"),
       {"x", "y"}, 5),
      ("shift_by", lambda: lib.shift_by(1, t), {1, 2, 3}, 5),
      ("make_pair_balance", lambda: lib.make_pair_balance(t, "(", ")"),
       parens, 6),
      ("make_shuffle_dyck", lambda: lib.make_shuffle_dyck(["()"]), parens,
       6),
      ("make_shuffle_dyck2", lib.make_shuffle_dyck2, {"(", ")", "{", "}"},
       4),
      ("detect_pattern", lambda: lib.detect_pattern(t, "abc"), letters, 5),
      ("make_count_less_freq", lambda: lib.make_count_less_freq(2), letters,
       5),
      ("make_count", lambda: lib.make_count(t, "a"), letters, 5),
      ("make_nary_sequencemap",
       lambda: lib.make_nary_sequencemap(lambda x, y, z: x + y - z, t, t,
                                         rasp.indices), {1, 2, 3}, 4),
  ]


def make(out_dir: str) -> None:
  import pickle  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from tracr.compiler import compiling  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
  import make_transformer_lens_fixtures as fixtures  # pylint: disable=g-import-not-at-top
  os.makedirs(out_dir, exist_ok=True)
  for name, build, vocab, max_seq_len in programs():
    model = compiling.compile_rasp_to_model(build(), vocab, max_seq_len,
                                            compiler_bos="BOS")
    model_tl = fixtures.tl_model(model)
    torch.save(model_tl, os.path.join(out_dir, f"{name}.pt"))
    with open(os.path.join(out_dir, f"{name}_encoders.pkl"), "wb") as f:
      pickle.dump(fixtures.encoders(model), f)
    print(name, "written")


def decompile(out_dir: str) -> None:
  rows, verified = [], 0
  names = [p[0] for p in programs()]
  for name in names:
    json_out = os.path.join(out_dir, f"{name}.json")
    start = time.time()
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "eval.py"),
         f"--decompile={os.path.join(out_dir, name + '.pt')}",
         f"--encoders={os.path.join(out_dir, name + '_encoders.pkl')}",
         f"--json_out={json_out}"], capture_output=True, text=True,
        cwd=ROOT)
    seconds = time.time() - start
    ok = False
    if run.returncode == 0:
      with open(json_out) as f:
        ok = bool(json.load(f).get("verified"))
    verified += ok
    inferred = "; ".join(line[len("inferred: "):] for line in
                         run.stdout.splitlines()
                         if line.startswith("inferred: "))
    error = run.stderr.strip().splitlines()[-1:] if run.returncode else []
    rows.append(f"| {name} | {ok} | {inferred or '—'} | {seconds:.1f} |"
                f"{' ' + error[0] if error else ''}")
  print("| program | verified | inferred | seconds (CLI, incl. start-up) |")
  print("|---|---|---|---|")
  print("\n".join(rows))
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    print("\n(torch is importable in this environment)")
  except ImportError:
    print("\n(no torch in this environment)")
  print(f"\n{verified} of {len(names)} verified")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--make", action="store_true",
                      help="write the .pt files (needs torch, "
                      "transformer-lens<3 and tracr-pypi)")
  parser.add_argument("--out_dir", default="/tmp/tl_lib")
  args = parser.parse_args()
  (make if args.make else decompile)(args.out_dir)


if __name__ == "__main__":
  main()
