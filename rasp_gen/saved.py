"""The file format for a compiled tracr model: weights plus what runs them.

A tracr params dict alone cannot be run or decompiled: the token vocabulary,
`max_seq_len`, the BOS/PAD names and the head count live outside it. A saved
model is one `.npz` holding

  "<module>/<param>"  float32 arrays, e.g. `transformer/layer_0/attn/query/w`,
                      `token_embed/embeddings` (haiku's `params[module][param]`)
  "__meta__"          a JSON string: `vocab` (list), `max_seq_len`,
                      `compiler_bos`, `compiler_pad`, and optionally
                      `num_heads` (int) and `causal` (bool, default false).

Tokens must be ints or strings: JSON keeps those exactly, and anything else
(floats, bools, tuples) would come back as a different value or type, so
`save_compiled` refuses it.
"""

import dataclasses
import json
import os
from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np

from rasp_gen import compiler

Params = dict[str, dict[str, np.ndarray]]
PathLike = Union[str, os.PathLike]

META_KEY = "__meta__"
_REQUIRED = ("vocab", "max_seq_len", "compiler_bos", "compiler_pad")
_OPTIONAL = ("num_heads", "causal")


@dataclasses.dataclass(frozen=True)
class SavedModel:
  """A loaded model. `num_heads` is None when the file does not say."""

  params: Params
  vocab: tuple
  max_seq_len: int
  compiler_bos: str
  compiler_pad: str
  num_heads: Optional[int]
  causal: bool


def _is_token(value: Any) -> bool:
  return isinstance(value, (str, int, np.integer)) and not isinstance(
      value, (bool, np.bool_))


def _check_vocab(vocab: Iterable, compiler_bos: str,
                 compiler_pad: str) -> list:
  """The vocabulary as a sorted JSON list; ValueError naming a bad token."""
  tokens = list(vocab)
  for token in tokens:
    if not _is_token(token):
      raise ValueError(f"vocab token {token!r} is a {type(token).__name__}; "
                       "only int and str tokens can be saved")
  tokens = [t if isinstance(t, str) else int(t) for t in tokens]
  if len(set(tokens)) != len(tokens):
    raise ValueError(f"vocab {tokens} has repeated tokens")
  for special in (compiler_bos, compiler_pad):
    if special in tokens:
      raise ValueError(f"vocab contains the special token {special!r}")
  return sorted(tokens, key=lambda t: (isinstance(t, str), t))


def _check_meta(meta: Any) -> None:
  """ValueError naming the first missing, unknown or mistyped meta field."""
  if not isinstance(meta, dict):
    raise ValueError(f"{META_KEY} must be a JSON object, got "
                     f"{type(meta).__name__}")
  missing = [f for f in _REQUIRED if f not in meta]
  if missing:
    raise ValueError(f"{META_KEY} is missing {missing}")
  unknown = sorted(set(meta) - set(_REQUIRED) - set(_OPTIONAL))
  if unknown:
    raise ValueError(f"{META_KEY} has unknown fields {unknown}")
  if not isinstance(meta["vocab"], list) or not all(
      _is_token(t) for t in meta["vocab"]):
    raise ValueError(f"{META_KEY} vocab must be a list of ints and strings, "
                     f"got {meta['vocab']!r}")
  positive = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
  if not positive(meta["max_seq_len"]):
    raise ValueError(f"{META_KEY} max_seq_len must be a positive int, got "
                     f"{meta['max_seq_len']!r}")
  for field in ("compiler_bos", "compiler_pad"):
    if not isinstance(meta[field], str):
      raise ValueError(f"{META_KEY} {field} must be a string, got "
                       f"{meta[field]!r}")
  if meta.get("num_heads") is not None and not positive(meta["num_heads"]):
    raise ValueError(f"{META_KEY} num_heads must be a positive int or null, "
                     f"got {meta['num_heads']!r}")
  if not isinstance(meta.get("causal", False), bool):
    raise ValueError(f"{META_KEY} causal must be true or false, got "
                     f"{meta['causal']!r}")


def _check_embeddings(params: Params, num_tokens: int,
                      max_seq_len: int) -> None:
  """The embeddings agree with the meta: a wrong vocab or length fails here,
  not as a silently wrong token id later."""
  for module, rows, what in (
      ("token_embed", num_tokens, f"{num_tokens - 2} vocab tokens + BOS, PAD"),
      ("pos_embed", max_seq_len + 1, f"max_seq_len {max_seq_len} + BOS")):
    embeddings = params.get(module, {}).get("embeddings")
    if embeddings is None:
      raise ValueError(f"params has no '{module}/embeddings'")
    if embeddings.ndim != 2 or embeddings.shape[0] != rows:
      raise ValueError(f"'{module}/embeddings' has shape {embeddings.shape}; "
                       f"expected {rows} rows ({what})")


def _split_key(key: str) -> tuple[str, str]:
  module, _, param = key.rpartition("/")
  if not module or not param:
    raise ValueError(f"array {key!r} is not named '<module>/<param>'")
  return module, param


def save_compiled(path: PathLike,
                  params: Mapping[str, Mapping[str, Any]],
                  vocab: Iterable,
                  max_seq_len: int,
                  compiler_bos: str = compiler.COMPILER_BOS,
                  compiler_pad: str = compiler.COMPILER_PAD,
                  num_heads: Optional[int] = None,
                  causal: bool = False) -> None:
  """Writes `params` (tracr's `.params`, jax or numpy) and meta to `path`.

  The file is written at `path` as given (numpy would otherwise append
  `.npz`). Raises ValueError for tokens other than int/str, a BOS/PAD name
  inside the vocab, parameter names that do not form '<module>/<param>',
  embeddings whose row counts disagree with the vocab or max_seq_len, or
  meta that `load_compiled` would reject.
  """
  plain = lambda v: int(v) if isinstance(v, np.integer) else v  # For JSON.
  meta = {
      "vocab": _check_vocab(vocab, compiler_bos, compiler_pad),
      "max_seq_len": plain(max_seq_len), "compiler_bos": compiler_bos,
      "compiler_pad": compiler_pad, "num_heads": plain(num_heads),
      "causal": causal,
  }
  _check_meta(meta)
  float_params: Params = {}
  for module, module_params in params.items():
    for param, value in module_params.items():
      if not module or not param or "/" in param:
        raise ValueError(f"params[{module!r}][{param!r}] cannot be saved as "
                         "'<module>/<param>'")
      float_params.setdefault(module, {})[param] = np.asarray(value,
                                                              np.float32)
  _check_embeddings(float_params, len(meta["vocab"]) + 2,
                    meta["max_seq_len"])
  arrays = {f"{module}/{param}": value
            for module, module_params in float_params.items()
            for param, value in module_params.items()}
  with open(path, "wb") as file:
    np.savez(file, **arrays, **{META_KEY: np.array(json.dumps(meta))})


def load_compiled(path: PathLike) -> SavedModel:
  """Reads a file written by `save_compiled` (or by hand, same layout).

  Raises ValueError, naming the problem, for a missing or non-JSON
  `__meta__`, missing or mistyped meta fields, arrays not named
  '<module>/<param>', and embeddings whose row counts disagree with the
  vocab or max_seq_len.
  """
  with np.load(path, allow_pickle=False) as data:
    arrays = {key: data[key] for key in data.files}
  if META_KEY not in arrays:
    raise ValueError(f"{path}: no {META_KEY!r} array; not a saved model")
  raw = arrays.pop(META_KEY)
  if raw.ndim != 0 or raw.dtype.kind != "U":
    raise ValueError(f"{path}: {META_KEY!r} must be a string, got "
                     f"{raw.dtype} array of shape {raw.shape}")
  try:
    meta = json.loads(str(raw[()]))
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}: {META_KEY!r} is not JSON: {error}") from error
  _check_meta(meta)

  params: Params = {}
  for key, value in sorted(arrays.items()):
    module, param = _split_key(key)
    if value.dtype.kind not in "fiu":
      raise ValueError(f"{path}: array {key!r} has dtype {value.dtype}, not "
                       "a number")
    params.setdefault(module, {})[param] = value.astype(np.float32)
  vocab = tuple(meta["vocab"])
  _check_embeddings(params, len(vocab) + 2, meta["max_seq_len"])
  return SavedModel(params=params, vocab=vocab,
                    max_seq_len=meta["max_seq_len"],
                    compiler_bos=meta["compiler_bos"],
                    compiler_pad=meta["compiler_pad"],
                    num_heads=meta.get("num_heads"),
                    causal=meta.get("causal", False))
