"""compiled.compiler: stock tracr's params bit for bit; each pass's contract.

Stock compilation costs ~1-3 s per new model shape on CPU (haiku init JIT),
so the default run checks a representative subset (~10 stock compiles).
Set COMPILER_TEST_FULL=1 to check every program built from each
`tracr.compiler.lib` function below and every case of
`tracr.compiler.test_cases` TEST_CASES (causal=False) and CAUSAL_TEST_CASES
(causal=True); that takes a few minutes on CPU.
"""

import os
from typing import Any, NamedTuple

import numpy as np
import pytest
from tracr.compiler import compiling, lib, test_cases
from tracr.rasp import rasp
from tracr.transformer import encoder

from compiled import compiler

FULL = os.environ.get("COMPILER_TEST_FULL") == "1"


class Case(NamedTuple):
  name: str
  program: rasp.SOp
  vocab: set
  max_seq_len: int
  causal: bool = False
  mlp_exactness: int = 100


# Same-shape compilations hit JAX's cache, so a causal variant placed right
# after its non-causal twin is nearly free.
_LIB_ALL = [
    Case("length", lib.make_length(), {"a", "b", "c"}, 5),
    Case("reverse", lib.make_reverse(rasp.tokens), {"a", "b", "c", "d"}, 4),
    Case("reverse_causal", lib.make_reverse(rasp.tokens), {"a", "b", "c", "d"},
         4, causal=True),
    Case("pair_balance", lib.make_pair_balance(rasp.tokens, "(", ")"),
         set("()ab"), 6),
    Case("shuffle_dyck3", lib.make_shuffle_dyck(["()", "{}", "[]"]),
         set("(){}[]"), 5),
    Case("hist", lib.make_hist(), {1, 2, 3, 4}, 5),
    Case("sort_unique", lib.make_sort_unique(rasp.tokens, rasp.tokens),
         {1, 2, 3, 4, 5}, 5),
    Case("sort", lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5,
                               min_key=1), {1, 2, 3}, 5),
    Case("sort_freq", lib.make_sort_freq(6), {1, 2, 3}, 6),
    Case("frac_prevs", lib.make_frac_prevs(rasp.tokens == "x"), {"x", "y"}, 6),
    Case("frac_prevs_causal", lib.make_frac_prevs(rasp.tokens == "x"),
         {"x", "y"}, 6, causal=True),
    Case("shift_by", lib.shift_by(3, rasp.tokens), {0, 1, 2}, 6),
    Case("detect_pattern", lib.detect_pattern(rasp.tokens, "aba"), {"a", "b"},
         6),
    Case("count_less_freq", lib.make_count_less_freq(2), {"a", "b", "c"}, 6),
    Case("count", lib.make_count(rasp.tokens, 2), {1, 2, 3}, 7),
    Case("nary_sequencemap", lib.make_nary_sequencemap(
        lambda x, y: x + y, rasp.tokens, rasp.indices), {0, 1, 2}, 4),
    Case("map_only", rasp.Map(lambda x: x + 1, rasp.tokens), {1, 2}, 3),
    Case("shuffle_dyck2", lib.make_shuffle_dyck2(), set("(){}"), 6),
    Case("reverse_of_map", lib.make_reverse(rasp.Map(lambda x: x % 2,
                                                     rasp.tokens)),
         {1, 2, 3}, 4),
    Case("length_numerical", rasp.numerical(lib.make_length()), {0, 1}, 7),
    Case("hist_mlp_exactness", lib.make_hist(), {"p", "q"}, 3,
         mlp_exactness=7),
]


def _tracr_cases(cases: list[dict], causal: bool) -> list[Case]:
  return [Case(f"{c['testcase_name']}{'_causal' if causal else ''}",
               c["program"], c["vocab"], c["max_seq_len"], causal)
          for c in cases]


# Default subset: covers MLP-only and attention-only layers, skipped slots,
# multi-head layers, numerical and categorical outputs, and causal masks.
_LIB_DEFAULT_NAMES = {"map_only", "length", "reverse", "reverse_causal",
                      "pair_balance", "hist", "sort_freq"}
_TRACR_DEFAULT_NAMES = {"frac_prevs_2", "frac_prevs_2_causal",
                        "selector_width_causal"}
_TRACR_ALL = (_tracr_cases(test_cases.TEST_CASES, causal=False)
              + _tracr_cases(test_cases.CAUSAL_TEST_CASES, causal=True))
_TRACR_ALL.sort(key=lambda c: c.name)  # keeps causal next to its twin
_TRACR = [c for c in _TRACR_ALL if FULL or c.name in _TRACR_DEFAULT_NAMES]
_LIB = [c for c in _LIB_ALL if FULL or c.name in _LIB_DEFAULT_NAMES]


def _assert_same_params(fast: dict[str, dict[str, np.ndarray]],
                        stock: Any) -> None:
  assert list(fast) == list(stock)
  for module, stock_params in stock.items():
    assert list(fast[module]) == list(stock_params), module
    for name, stock_value in stock_params.items():
      want = np.asarray(stock_value)
      got = fast[module][name]
      where = f"{module}/{name}"
      assert isinstance(got, np.ndarray), where
      assert got.dtype == want.dtype == np.float32, where
      assert got.shape == want.shape, where
      assert np.array_equal(got, want), where
      assert got.tobytes() == want.tobytes(), where  # also the sign of zeros


def _check(case: Case) -> None:
  args = (case.program, case.vocab, case.max_seq_len)
  kwargs = dict(causal=case.causal, mlp_exactness=case.mlp_exactness)
  try:
    stock = compiling.compile_rasp_to_model(*args, **kwargs)
  except Exception as e:  # pylint: disable=broad-except
    # Stock rejects it: the fast path must reject it the same way (checked,
    # so a pass, not a skip).
    assert _error(compiler.compile_rasp_to_model_numpy, *args, **kwargs) == (
        type(e), str(e))
    return
  fast = compiler.compile_rasp_to_model_numpy(*args, **kwargs)
  _assert_same_params(fast.params, stock.params)

  config = stock.model_config
  assert (fast.num_layers, fast.num_heads, fast.key_size,
          fast.mlp_hidden_size, fast.causal) == (
              config.num_layers, config.num_heads, config.key_size,
              config.mlp_hidden_size, config.causal)
  assert fast.residual_labels == stock.residual_labels
  assert fast.input_tokens == list(stock.input_encoder.encoding_map)
  if fast.categorical_output:
    assert isinstance(stock.output_encoder, encoder.CategoricalEncoder)
    assert fast.output_values == list(stock.output_encoder.encoding_map)
  else:
    assert isinstance(stock.output_encoder, encoder.NumericalEncoder)
    assert len(fast.output_labels) == 1
  assert len(fast.output_labels) == len(fast.output_values)


@pytest.mark.parametrize("case", _LIB, ids=lambda c: c.name)
def test_lib_programs_match_stock(case: Case) -> None:
  _check(case)


@pytest.mark.parametrize("case", _TRACR, ids=lambda c: c.name)
def test_tracr_test_cases_match_stock(case: Case) -> None:
  _check(case)


def test_compile_rasp_to_params_is_the_params() -> None:
  program = lib.make_length()
  model = compiler.compile_rasp_to_model_numpy(program, {1, 2}, 4)
  params = compiler.compile_rasp_to_params(program, {1, 2}, 4)
  _assert_same_params(params, model.params)


_CAT = rasp.categorical
_TWO_MAPS = _CAT(rasp.Map(lambda x: x - 1, _CAT(rasp.Map(
    lambda x: x + 1, rasp.tokens)), simplify=False))
_SELECT_EQ = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.EQ)


def test_rasp_to_craft_adds_the_special_tokens_and_positions() -> None:
  craft = compiler.rasp_to_craft(lib.make_length(), {"b", "a"}, 4)
  assert [d.value for d in craft.tokens_space.basis] == [
      "a", "b", compiler.COMPILER_BOS, compiler.COMPILER_PAD]
  assert [d.value for d in craft.indices_space.basis] == [0, 1, 2, 3]
  assert [d.value for d in craft.output_space.basis] == [0, 1, 2, 3, 4]
  assert craft.categorical_output
  assert not compiler.rasp_to_craft(rasp.numerical(lib.make_length()),
                                    {"a"}, 4).categorical_output


# (program, vocab, max_seq_len, module slots, (layers, heads, key size,
# MLP hidden size)): skipped slots, attention-only and MLP-only models get
# tracr's sizes, 1 where a model has no heads or no MLP.
_LAYOUTS = {
    "mlp_only": (rasp.Map(lambda x: x + 1, rasp.tokens), {1, 2}, 3,
                 ["0/mlp"], (1, 1, 1, 2)),
    "skips_an_attn": (_TWO_MAPS, {1, 2}, 3, ["0/mlp", "1/mlp"],
                      (2, 1, 1, 2)),
    "attn_only": (_CAT(rasp.Aggregate(_SELECT_EQ, rasp.tokens)), {1, 2}, 3,
                  ["0/attn"], (1, 1, 5, 1)),
    "length": (lib.make_length(), {"a", "b"}, 4, ["0/attn", "0/mlp"],
               (1, 1, 4, 10)),
    "reverse": (lib.make_reverse(rasp.tokens), {"a", "b"}, 4,
                ["0/attn", "0/mlp", "1/mlp", "2/mlp", "3/attn"],
                (4, 1, 10, 20)),
}


@pytest.mark.parametrize("name", sorted(_LAYOUTS))
def test_craft_to_layout_places_blocks_and_sizes_the_model(name) -> None:
  program, vocab, max_seq_len, slots, sizes = _LAYOUTS[name]
  craft = compiler.rasp_to_craft(program, vocab, max_seq_len)
  layout = compiler.craft_to_layout(craft)
  assert layout.module_names == tuple(f"transformer/layer_{s}"
                                      for s in slots)
  assert (layout.num_layers, layout.num_heads, layout.key_size,
          layout.mlp_hidden_size) == sizes
  residual = set(layout.residual_space.basis)
  for space in (craft.model.residual_space, craft.tokens_space,
                craft.indices_space, craft.output_space):
    assert set(space.basis) <= residual
  assert layout.residual_space.basis == sorted(residual)


def test_craft_to_params_zeroes_skipped_slots_and_embeds_tokens() -> None:
  craft = compiler.rasp_to_craft(_TWO_MAPS, {1, 2}, 3)
  params = compiler.craft_to_params(craft, compiler.craft_to_layout(craft))
  assert list(params) == sorted(params)
  assert all(v.dtype == np.float32 for p in params.values()
             for v in p.values())
  for module, weights in params.items():
    used = not module.startswith("transformer/") or "mlp" in module
    assert any(w.any() for w in weights.values()) == used, module

  craft = compiler.rasp_to_craft(lib.make_length(), {"a", "b"}, 4)
  layout = compiler.craft_to_layout(craft)
  params = compiler.craft_to_params(craft, layout)
  labels = [str(d) for d in layout.residual_space.basis]
  token_embed = params["token_embed"]["embeddings"]
  for row, direction in zip(token_embed, craft.tokens_space.basis):
    assert [labels[i] for i in np.flatnonzero(row)] == sorted(
        ["one", str(direction)])
  pos_embed = params["pos_embed"]["embeddings"]
  assert not pos_embed[0].any()  # The BOS position.
  for row, direction in zip(pos_embed[1:], craft.indices_space.basis):
    assert [labels[i] for i in np.flatnonzero(row)] == [str(direction)]


def _error(fn, *args, **kwargs) -> tuple[type, str]:
  with pytest.raises(Exception) as info:
    fn(*args, **kwargs)
  return type(info.value), str(info.value)


@pytest.mark.parametrize("kwargs", [
    dict(vocab={"a", "compiler_bos"}),
    dict(vocab={"a", "compiler_pad"}),
    dict(vocab={"a", "BOS"}, compiler_bos="BOS"),
], ids=["bos", "pad", "custom_bos"])
def test_special_token_in_vocab_raises_like_stock(kwargs: dict) -> None:
  args = (lib.make_length(),)
  kwargs = dict(max_seq_len=4, **kwargs)
  fast = _error(compiler.compile_rasp_to_params, *args, **kwargs)
  assert fast[0] is ValueError
  assert fast == _error(compiling.compile_rasp_to_model, *args, **kwargs)


@pytest.mark.parametrize(
    "case", test_cases.UNSUPPORTED_TEST_CASES + [dict(
        testcase_name="no_tokens",
        program=rasp.categorical(rasp.Map(lambda x: x, rasp.indices)),
        vocab={1, 2}, max_seq_len=3)],
    ids=lambda c: c["testcase_name"])
def test_unsupported_raises_like_stock(case: dict) -> None:
  args = (case["program"], case["vocab"], case["max_seq_len"])
  fast = _error(compiler.compile_rasp_to_params, *args)
  assert fast[0] in (NotImplementedError, ValueError)
  assert fast == _error(compiling.compile_rasp_to_model, *args)


def test_value_wider_than_key_raises_like_stock() -> None:
  """tracr sizes heads by the widest W_QK only; a wider W_OV cannot be placed.

  assemble.py then fails with a numpy broadcast ValueError; so must we.
  """
  cat = rasp.categorical
  gt2 = cat(rasp.Map(lambda x: x > 2, rasp.indices, simplify=False))
  gathered = cat(rasp.Aggregate(
      rasp.Select(rasp.indices, gt2, rasp.Comparison.EQ), rasp.indices))
  diff = cat(rasp.SequenceMap(
      lambda x, y: x - y, rasp.tokens,
      cat(rasp.Map(abs, gathered, simplify=False))))
  program = cat(rasp.Aggregate(
      rasp.Select(rasp.indices, gathered, rasp.Comparison.EQ), diff))
  args = (program, {0, 1, 2, 3}, 4)
  fast = _error(compiler.compile_rasp_to_params, *args)
  assert fast[0] is ValueError and "broadcast" in fast[1]
  assert fast == _error(compiling.compile_rasp_to_model, *args)
