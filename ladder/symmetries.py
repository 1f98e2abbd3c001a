"""Maps of a model's parameters that leave its function unchanged, and noise.

tracr models have no layer norm, so for any invertible A on the residual
stream the model with embeddings and every writer times A and every reader
(and the unembedding) times A⁻¹ computes the same outputs; per head, the
query-key pair can take any invertible M (W_Q M, W_K M⁻ᵀ) and the
value-output pair any invertible N (W_V N, N⁻¹ W_O); MLP neurons any
permutation and positive scaling (ReLU commutes with them).
"""

import numpy as np

from compiled import params as params_lib
from compiled import saved
from compiled.compiler import OutputDecoding

Params = dict[str, dict[str, np.ndarray]]


def float64_params(model: saved.SavedModel) -> Params:
  """A copy of the model's params in float64, to be changed in place."""
  return {module: {name: np.asarray(value, np.float64)
                   for name, value in leaves.items()}
          for module, leaves in model.params.items()}


def with_params(model: saved.SavedModel, params: Params,
                output: OutputDecoding) -> saved.SavedModel:
  """`model` with other params (and output decoding), all else kept."""
  return saved.SavedModel(
      params=params, vocab=model.vocab, max_seq_len=model.max_seq_len,
      compiler_bos=model.compiler_bos, compiler_pad=model.compiler_pad,
      num_heads=model.num_heads, causal=model.causal, output=output,
      token_order=model.token_order)


def with_unembedding(model: saved.SavedModel) -> saved.SavedModel:
  """The same model with its output read by an `unembed` matrix: tracr's
  output dims become the columns of a selection matrix."""
  if params_lib.UNEMBED in model.params:
    return model
  params = float64_params(model)
  d_model = params["token_embed"]["embeddings"].shape[1]
  dims = model.output.dims
  select_DxO = np.zeros((d_model, len(dims)))
  select_DxO[list(dims), np.arange(len(dims))] = 1.0
  params[params_lib.UNEMBED] = {"w": select_DxO, "b": np.zeros(len(dims))}
  output = OutputDecoding((), model.output.values, model.output.numerical)
  return with_params(model, params, output)


def _layers(params: Params) -> int:
  return sum(1 for key in params if key.endswith("/attn/query"))


def fold(params: Params, writer_DxE, reader_ExD) -> Params:
  """`params` with every residual writer (embeddings, attention and MLP
  outputs, their biases) times `writer_DxE` and every reader (queries, keys,
  values, MLP inputs, the unembedding) times `reader_ExD` from the left: the
  model of residual stream `residual @ writer_DxE`. Exact for an invertible
  map and its inverse; a compression for a projection (`ladder.compression`).
  Only products and sums: numpy or jax arrays."""
  folded = {module: dict(leaves) for module, leaves in params.items()}
  for module in ("token_embed", "pos_embed"):
    folded[module]["embeddings"] = params[module]["embeddings"] @ writer_DxE
  for layer in range(_layers(params)):
    for key in (params_lib.attn_key(layer, "query"),
                params_lib.attn_key(layer, "key"),
                params_lib.attn_key(layer, "value"),
                params_lib.mlp_key(layer, "linear_1")):
      folded[key]["w"] = reader_ExD @ params[key]["w"]
    for key in (params_lib.attn_key(layer, "linear"),
                params_lib.mlp_key(layer, "linear_2")):
      folded[key]["w"] = params[key]["w"] @ writer_DxE
      folded[key]["b"] = params[key]["b"] @ writer_DxE
  folded[params_lib.UNEMBED]["w"] = reader_ExD @ params[params_lib.UNEMBED]["w"]
  return folded


def map_residual(model: saved.SavedModel,
                 map_DxD: np.ndarray) -> saved.SavedModel:
  """The model whose residual stream is `residual @ map_DxD` (invertible)."""
  model = with_unembedding(model)
  params = fold(float64_params(model), map_DxD, np.linalg.inv(map_DxD))
  return with_params(model, params, model.output)


def random_permutation(rng: np.random.Generator, size: int) -> np.ndarray:
  return np.eye(size)[rng.permutation(size)]


def random_orthogonal(rng: np.random.Generator, size: int) -> np.ndarray:
  """Haar-distributed: QR of a Gaussian matrix with the signs fixed."""
  q, r = np.linalg.qr(rng.normal(size=(size, size)))
  return q * np.sign(np.diag(r))


def random_invertible(rng: np.random.Generator, size: int,
                      condition_number: float = 100.0) -> np.ndarray:
  """U diag(s) Vᵀ with s log-uniform in [1, condition_number]: exactly
  that condition number at most."""
  singular = np.exp(rng.uniform(0, np.log(condition_number), size))
  singular[:2] = [1.0, condition_number][:size]
  return (random_orthogonal(rng, size) * singular) @ random_orthogonal(
      rng, size).T


def map_heads(model: saved.SavedModel,
              rng: np.random.Generator) -> saved.SavedModel:
  """Each head's query/key by a random invertible M (W_Q M, W_K M⁻ᵀ) and
  value/output by a random invertible N (W_V N, N⁻¹ W_O)."""
  params = float64_params(model)
  for layer in range(_layers(params)):
    attn = lambda name: params[params_lib.attn_key(layer, name)]
    width = attn("query")["w"].shape[1]
    key_size = width // model.num_heads
    for head in range(model.num_heads):
      part = slice(head * key_size, (head + 1) * key_size)
      query_key = random_invertible(rng, key_size, 10.0)
      value_output = random_invertible(rng, key_size, 10.0)
      for name, matrix in (("query", query_key),
                           ("key", np.linalg.inv(query_key).T),
                           ("value", value_output)):
        attn(name)["w"][:, part] = attn(name)["w"][:, part] @ matrix
        attn(name)["b"][part] = attn(name)["b"][part] @ matrix
      attn("linear")["w"][part] = (np.linalg.inv(value_output)
                                   @ attn("linear")["w"][part])
  return with_params(model, params, model.output)


def scale_neurons(model: saved.SavedModel,
                  rng: np.random.Generator) -> saved.SavedModel:
  """Each MLP's hidden neurons permuted and scaled by factors in [0.5, 2]."""
  params = float64_params(model)
  for layer in range(_layers(params)):
    first = params[params_lib.mlp_key(layer, "linear_1")]
    second = params[params_lib.mlp_key(layer, "linear_2")]
    hidden = first["w"].shape[1]
    order = rng.permutation(hidden)
    scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0), hidden))
    first["w"] = first["w"][:, order] * scale
    first["b"] = first["b"][order] * scale
    second["w"] = second["w"][order] / scale[:, None]
  return with_params(model, params, model.output)


def add_noise(model: saved.SavedModel, relative_std: float,
              rng: np.random.Generator) -> saved.SavedModel:
  """N(0, (relative_std · rms)²) on every parameter, rms that of the
  module's weight matrix (so zero biases get noise too)."""
  params = float64_params(model)
  for module, leaves in params.items():
    weight = leaves.get("w", leaves.get("embeddings"))
    std = relative_std * float(np.sqrt(np.mean(weight ** 2)))
    for name in leaves:
      leaves[name] = leaves[name] + rng.normal(0, std, leaves[name].shape)
  return with_params(model, params, model.output)
