"""How the read-out sees the weights: in tracr's residual basis, recovered.

tracr gives every categorical value its own residual direction and every
numerical variable one, each written by exactly one module. Any invertible
map A of the residual stream (a rotation, a permutation, a general basis
change) leaves the function unchanged and makes every matrix dense, but the
directions survive as vectors: the "atoms" e_d·A. This pass finds them in
the order tracr's modules write them, and rewrites the model in their basis,
where the later passes read as on tracr's own weights:

1. embeddings: each token row is one atom (tracr: `one` + the token's
   direction); each position row that writes anything is one;
2. a head writes its value-output image of the atoms it reads: one new atom
   per atom copied (a categorical Aggregate, a SelectorWidth's BOS), or one
   direction for a numerical mean (unit norm: the scale of an intermediate
   numerical variable is itself a symmetry);
3. an MLP writes into the span of its neurons' output rows; that span splits
   into independent parts (the connected components of the rows' linear
   matroid), and the distinct vectors each part takes on the check inputs'
   positions are its atoms (one per categorical value; one direction for a
   numerical output);
4. the model in the atoms' basis: readers are atoms · W, writers solve
   X · atoms = W, tracr's `one` is split from the token rows (a query and an
   MLP neuron read BOS never, so `one` is what they read from BOS); each MLP
   neuron rescaled so its largest output weight is 1 (neuron scaling is a
   symmetry); entries at the noise level dropped; the unembedding becomes
   tracr's output directions again.

A model already in tracr's basis (no `unembed` matrix) is returned as it is.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np

from compiled import inputs as inputs_lib
from compiled import params as params_lib
from compiled import forward, saved
from compiled.compiler import OutputDecoding
from readout.errors import ReadoutError

Params = dict[str, dict[str, np.ndarray]]

_RELATIVE_ZERO = 1e-6  # Below this times a module's largest vector: nothing.
_NOISE_FACTOR = 8.0  # Entries under this times a matrix's median are noise.
_NUM_CHECK_INPUTS = 2000


@dataclasses.dataclass(frozen=True)
class Atoms:
  """The residual directions found so far, as rows in the model's basis.

  Attributes:
    vectors_KxD: one row per direction.
    tokens: the number of leading rows that are token-embedding rows (in
      row order); the rest are positions' and modules' directions.
  """

  vectors_KxD: np.ndarray
  tokens: int

  def extended(self, new_NxD: np.ndarray) -> "Atoms":
    return Atoms(np.concatenate([self.vectors_KxD, new_NxD]), self.tokens)


def _float64(model: saved.SavedModel) -> Params:
  return {module: {name: np.asarray(value, np.float64)
                   for name, value in leaves.items()}
          for module, leaves in model.params.items()}


def _nonzero_rows(matrix_NxD: np.ndarray, scale: float) -> np.ndarray:
  return np.linalg.norm(matrix_NxD, axis=1) > _RELATIVE_ZERO * max(scale, 1e-30)


def _rank(matrix_NxD: np.ndarray, tolerance: float) -> int:
  if not matrix_NxD.size:
    return 0
  singular = np.linalg.svd(matrix_NxD, compute_uv=False)
  return int(np.sum(singular > tolerance * max(singular[0], 1e-30)))


def embedding_atoms(params: Params) -> Atoms:
  """Token rows, then the position rows that write anything."""
  token_VxD = params["token_embed"]["embeddings"]
  position_NxD = params["pos_embed"]["embeddings"]
  scale = np.linalg.norm(token_VxD, axis=1).max()
  positions = position_NxD[_nonzero_rows(position_NxD, scale)]
  return Atoms(np.concatenate([token_VxD, positions]), len(token_VxD))


def _new_directions(images_NxD: np.ndarray, atoms: Atoms,
                    tolerance: float) -> np.ndarray:
  """The part of `images_NxD` outside the atoms' span, per row."""
  basis_KxD = atoms.vectors_KxD
  coefficients, *_ = np.linalg.lstsq(basis_KxD.T, images_NxD.T, rcond=None)
  return images_NxD - coefficients.T @ basis_KxD


def head_atoms(value_output_DxD: np.ndarray, atoms: Atoms,
               tolerance: float) -> np.ndarray:
  """The atoms one head writes (rows), from the atoms it copies."""
  images_KxD = atoms.vectors_KxD @ value_output_DxD
  norms = np.linalg.norm(images_KxD, axis=1)
  if norms.max(initial=0) <= tolerance:
    return np.zeros((0, images_KxD.shape[1]))
  images = images_KxD[norms > tolerance * norms.max()]
  rank = _rank(images, tolerance)
  if rank == len(images):  # A copy: each atom read becomes its own.
    return images
  if rank == 1:  # A numerical mean: one direction.
    largest = images[np.argmax(np.linalg.norm(images, axis=1))]
    return (largest / np.linalg.norm(largest))[None]
  raise ReadoutError(f"a head writes {len(images)} directions spanning "
                     f"{rank}: neither a copy nor a numerical mean")


def matroid_components(rows_NxD: np.ndarray,
                       tolerance: float) -> list[list[int]]:
  """Rows joined when some linear dependence holds them together: the
  connected components of the rows' linear matroid (each spans its own
  part of a direct sum)."""
  count = len(rows_NxD)
  parent = list(range(count))

  def root(item: int) -> int:
    while parent[item] != item:
      parent[item] = parent[parent[item]]
      item = parent[item]
    return item

  basis: list[int] = []
  for row in range(count):
    if basis:
      chosen = rows_NxD[basis]
      coefficients, *_ = np.linalg.lstsq(chosen.T, rows_NxD[row], rcond=None)
      residual = rows_NxD[row] - coefficients @ chosen
      scale = max(np.linalg.norm(rows_NxD[row]), 1e-30)
      if np.linalg.norm(residual) <= tolerance * scale:
        for member, weight in zip(basis, coefficients):
          if abs(weight) > tolerance:
            parent[root(member)] = root(row)
        continue
    basis.append(row)
  groups: dict[int, list[int]] = {}
  for row in range(count):
    groups.setdefault(root(row), []).append(row)
  return list(groups.values())


def _distinct(vectors_NxD: np.ndarray, tolerance: float) -> np.ndarray:
  """The distinct rows (within `tolerance` of the largest), as cluster means."""
  scale = np.linalg.norm(vectors_NxD, axis=1).max(initial=0)
  centres: list[np.ndarray] = []
  members: list[list[np.ndarray]] = []
  for vector in vectors_NxD:
    if np.linalg.norm(vector) <= tolerance * scale:
      continue
    for index, centre in enumerate(centres):
      if np.linalg.norm(vector - centre) <= tolerance * scale:
        members[index].append(vector)
        break
    else:
      centres.append(vector)
      members.append([vector])
  return np.array([np.mean(m, axis=0) for m in members]).reshape(
      -1, vectors_NxD.shape[1])


def mlp_atoms(output_rows_MxD: np.ndarray, outputs_PxD: np.ndarray,
              bos_outputs_BxD: np.ndarray, atoms: Atoms,
              tolerance: float) -> np.ndarray:
  """The atoms an MLP writes: per independent part of its output span, the
  distinct vectors its outputs take there (`outputs_PxD`: its output at
  every checked non-BOS position; `bos_outputs_BxD` at BOS and on probes,
  used only for values no checked position takes, e.g. a SelectorWidth's
  width 0, which no input has)."""
  empty = np.zeros((0, output_rows_MxD.shape[1]))
  scale = np.linalg.norm(output_rows_MxD, axis=1).max(initial=0)
  if scale <= 0:
    return empty
  fresh_MxD = _new_directions(output_rows_MxD, atoms, tolerance)
  live = np.linalg.norm(fresh_MxD, axis=1) > tolerance * scale
  rows = fresh_MxD[live]
  parts = []
  for component in matroid_components(rows, tolerance):
    span = rows[component]
    rank = _rank(span, tolerance)
    _, _, right_VxD = np.linalg.svd(span)
    parts.append(right_VxD[:rank])
  if not parts:
    return empty
  known = len(atoms.vectors_KxD)
  bases = np.concatenate([atoms.vectors_KxD] + parts)
  project = lambda out_NxD: np.linalg.lstsq(bases.T, out_NxD.T,
                                            rcond=None)[0][known:]
  coefficients, bos_coefficients = project(outputs_PxD), project(
      bos_outputs_BxD)
  found, start = [], 0
  for part in parts:
    end = start + len(part)
    distinct = _distinct(coefficients[start:end].T @ part, 1e-3)
    if len(distinct) < len(part):
      extra = _distinct(bos_coefficients[start:end].T @ part, 1e-3)
      for vector in extra:
        if len(distinct) < len(part) and all(
            np.linalg.norm(vector - d) > 1e-3 * np.linalg.norm(d)
            for d in distinct):
          distinct = np.concatenate([distinct, vector[None]])
    start = end
    if len(part) == 1:
      if len(distinct) == 1:  # One value (or 0 and one): that vector.
        found.append(distinct)
      elif len(distinct) > 1:  # A numerical variable: one direction.
        largest = distinct[np.argmax(np.abs(distinct @ part[0]))]
        found.append(part * np.sign(largest @ part[0]))
      continue
    if len(distinct) != len(part) or _rank(distinct, tolerance) != len(part):
      raise ReadoutError(f"an MLP writes a {len(part)}-direction part that "
                         f"takes {len(distinct)} distinct values on the "
                         "check inputs, not one per direction")
    found.append(distinct)
  return np.concatenate(found) if found else empty


def _check_positions(model: saved.SavedModel, params: Params,
                     seed: int) -> list[tuple]:
  return [tuple(xs) for xs in inputs_lib.check_inputs(
      np.random.default_rng(seed), list(model.vocab), model.max_seq_len,
      _NUM_CHECK_INPUTS, _NUM_CHECK_INPUTS)]


def _mlp_outputs(params: Params, model: saved.SavedModel,
                 check_inputs: Sequence[tuple], layer: int,
                 probe_atoms_NxD: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Layer `layer`'s MLP output at every non-BOS position of the inputs,
  and at every BOS position and on probes: a token row (tracr's `one` to an
  MLP that does not read tokens) plus one of `probe_atoms_NxD` (a head's
  atom of this layer at 1: a SelectorWidth of width 0)."""
  truncated = {k: v for k, v in params.items()
               if not k.startswith("transformer/layer_")
               or int(k.split("/")[1].split("_")[1]) < layer
               or (int(k.split("/")[1].split("_")[1]) == layer
                   and "/attn/" in k)}
  truncated.pop(params_lib.UNEMBED, None)
  lengths_B = np.array([1 + len(xs) for xs in check_inputs])
  token_ids = forward.token_ids(model.input_tokens, check_inputs,
                                model.compiler_bos)
  residual_BxTxD = forward.forward(_zero_mlp(truncated, layer, params),
                                   token_ids, model.num_heads, model.causal,
                                   lengths_B)
  first = params[params_lib.mlp_key(layer, "linear_1")]
  second = params[params_lib.mlp_key(layer, "linear_2")]
  mask_BxT = np.arange(residual_BxTxD.shape[1]) < lengths_B[:, None]
  mask_BxT[:, 0] = False
  run = lambda residual_PxD: np.maximum(
      residual_PxD @ first["w"] + first["b"], 0) @ second["w"] + second["b"]
  token_VxD = params["token_embed"]["embeddings"]
  plain = token_VxD[model.input_tokens.index(model.vocab[0])]
  probes = np.concatenate([residual_BxTxD[:, 0], plain + probe_atoms_NxD])
  return run(residual_BxTxD[mask_BxT]), run(probes)


def _zero_mlp(truncated: Params, layer: int, params: Params) -> Params:
  """`truncated` with layer `layer`'s MLP present and zero (the forward pass
  needs every layer whole)."""
  result = dict(truncated)
  for name in params_lib.MLP:
    key = params_lib.mlp_key(layer, name)
    result[key] = {k: np.zeros_like(v) for k, v in params[key].items()}
  return result


def find_atoms(model: saved.SavedModel, params: Params,
               tolerance: float, seed: int = 0) -> Atoms:
  """Every residual direction tracr's modules write, in writing order."""
  atoms = embedding_atoms(params)
  num_layers = params_lib.check_params(params).num_layers
  check_inputs = _check_positions(model, params, seed)
  for layer in range(num_layers):
    query = params[params_lib.attn_key(layer, "query")]["w"]
    key_size = query.shape[1] // model.num_heads
    value = params[params_lib.attn_key(layer, "value")]["w"]
    output = params[params_lib.attn_key(layer, "linear")]["w"]
    before = len(atoms.vectors_KxD)
    for head in range(model.num_heads):
      part = slice(head * key_size, (head + 1) * key_size)
      atoms = atoms.extended(head_atoms(value[:, part] @ output[part], atoms,
                                        tolerance))
    second = params[params_lib.mlp_key(layer, "linear_2")]["w"]
    atoms = atoms.extended(mlp_atoms(
        second, *_mlp_outputs(params, model, check_inputs, layer,
                              atoms.vectors_KxD[before:]), atoms, tolerance))
  if _rank(atoms.vectors_KxD, tolerance) != len(atoms.vectors_KxD):
    raise ReadoutError("the residual directions found are not independent")
  return atoms


def _split_one(rows_KxW: np.ndarray, tokens: int, bos_row: int,
               reads_one: str) -> np.ndarray:
  """Reader rows in the atoms' basis with tracr's `one` as row 0: token
  rows hold `one` + the token's weight. `reads_one` says how to split:
  "never" (keys, values: tracr's never read `one`), "bos" (queries: they
  never read BOS, so `one` is what they read from BOS), "neuron" (per MLP
  neuron: a neuron reading the same from every token but BOS reads that
  from `one`, else as queries)."""
  token_TxW = rows_KxW[:tokens]
  if reads_one == "never":
    one_W = np.zeros(rows_KxW.shape[1])
  else:
    one_W = token_TxW[bos_row].copy()
    if reads_one == "neuron":
      others = np.delete(token_TxW, bos_row, axis=0)
      spread = others.max(0) - others.min(0)
      scale = np.abs(token_TxW).max(0) + 1e-30
      same = spread <= 1e-3 * scale
      one_W[same] = others.mean(0)[same]
  token_TxW = token_TxW - one_W
  return np.concatenate([one_W[None], token_TxW, rows_KxW[tokens:]])


def _denoise(matrix: np.ndarray) -> np.ndarray:
  """Entries at the noise level set to 0, and near a multiple of 1/2 moved
  onto it: tracr writes round numbers, noise is small."""
  magnitude = np.abs(matrix)
  if not magnitude.size or magnitude.max() == 0:
    return matrix
  floor = max(_NOISE_FACTOR * float(np.median(magnitude)),
              1e-9 * float(magnitude.max()))
  result = np.where(magnitude <= floor, 0.0, matrix)
  nearest = np.round(result * 2) / 2
  return np.where(np.abs(result - nearest) <= floor, nearest, result)


def in_atom_basis(model: saved.SavedModel, params: Params,
                  atoms: Atoms) -> saved.SavedModel:
  """The model rewritten in the atoms' basis (`one` first, then the atoms),
  with its output decoded from residual directions as tracr's is."""
  vectors_KxD = atoms.vectors_KxD
  num_atoms, tokens = len(vectors_KxD), atoms.tokens
  width = 1 + num_atoms
  bos_row = model.input_tokens.index(model.compiler_bos)
  solve = lambda writer_NxD: np.linalg.lstsq(
      vectors_KxD.T, writer_NxD.T, rcond=None)[0].T
  write = lambda writer_NxD: _denoise(np.concatenate(
      [np.zeros((len(writer_NxD), 1)), solve(writer_NxD)], axis=1))
  new: Params = {}
  token_embed = np.zeros((tokens, width))
  token_embed[:, 0] = 1.0
  token_embed[np.arange(tokens), 1 + np.arange(tokens)] = 1.0
  new["token_embed"] = {"embeddings": token_embed}
  position_NxD = params["pos_embed"]["embeddings"]
  scale = np.linalg.norm(params["token_embed"]["embeddings"], axis=1).max()
  position = np.zeros((len(position_NxD), width))
  writes = np.flatnonzero(_nonzero_rows(position_NxD, scale))
  position[writes, 1 + tokens + np.arange(len(writes))] = 1.0
  new["pos_embed"] = {"embeddings": position}
  num_layers = params_lib.check_params(params).num_layers
  for layer in range(num_layers):
    for name, reads_one in (("query", "bos"), ("key", "never"),
                            ("value", "never")):
      key = params_lib.attn_key(layer, name)
      new[key] = {"w": _denoise(_split_one(
          vectors_KxD @ params[key]["w"], tokens, bos_row, reads_one)),
                  "b": _denoise(params[key]["b"])}
    key = params_lib.attn_key(layer, "linear")
    new[key] = {"w": write(params[key]["w"]),
                "b": write(params[key]["b"][None])[0]}
    first_key = params_lib.mlp_key(layer, "linear_1")
    second_key = params_lib.mlp_key(layer, "linear_2")
    first_DxM = _split_one(vectors_KxD @ params[first_key]["w"], tokens,
                           bos_row, "neuron")
    second_MxD = np.concatenate([np.zeros((len(params[second_key]["w"]), 1)),
                                 solve(params[second_key]["w"])], axis=1)
    # Neuron scaling is a symmetry: each neuron's largest output weight 1.
    scale_M = np.abs(second_MxD).max(1)
    scale_M = np.where(scale_M > 0, scale_M, 1.0)
    new[first_key] = {"w": _denoise(first_DxM * scale_M),
                      "b": _denoise(params[first_key]["b"] * scale_M)}
    new[second_key] = {"w": _denoise(second_MxD / scale_M[:, None]),
                       "b": write(params[second_key]["b"][None])[0]}
  return _with_output(model, new, _split_one(
      vectors_KxD @ params[params_lib.UNEMBED]["w"], tokens, bos_row,
      "never"), params[params_lib.UNEMBED]["b"])


def _with_output(model: saved.SavedModel, params: Params,
                 unembed_DxO: np.ndarray,
                 bias_O: np.ndarray) -> saved.SavedModel:
  """tracr's output directions where the unembedding reads one direction per
  output (weight 1, or any weight for a numerical output, whose direction
  is then rescaled); ReadoutError otherwise."""
  magnitude = np.abs(unembed_DxO)
  dims = tuple(int(d) for d in magnitude.argmax(0))
  for column, dim in enumerate(dims):
    others = np.delete(magnitude[:, column], dim)
    if others.max(initial=0) > 1e-2 * magnitude[dim, column]:
      raise ReadoutError("the unembedding does not read one direction per "
                         "output value")
  if np.abs(bias_O).max(initial=0) > 1e-2:
    raise ReadoutError("the unembedding has a bias")
  if model.output.numerical:
    factor = unembed_DxO[dims[0], 0]
    for key, leaves in params.items():
      if key.endswith(("/linear", "linear_2")):
        leaves["w"][:, dims[0]] *= factor
        leaves["b"][dims[0]] *= factor
      elif key.endswith(("query", "key", "value", "linear_1")):
        leaves["w"][dims[0]] /= factor
  elif np.abs(unembed_DxO[list(dims), np.arange(len(dims))] - 1).max() > 1e-2:
    raise ReadoutError("the unembedding reads its output directions with "
                       "weights other than 1")
  output = OutputDecoding(dims, model.output.values, model.output.numerical)
  return saved.SavedModel(
      params={k: {n: v.astype(np.float32) for n, v in leaves.items()}
              for k, leaves in params.items()},
      vocab=model.vocab, max_seq_len=model.max_seq_len,
      compiler_bos=model.compiler_bos, compiler_pad=model.compiler_pad,
      num_heads=model.num_heads, causal=model.causal, output=output,
      token_order=model.token_order)


def to_tracr_basis(model: saved.SavedModel,
                   tolerance: Optional[float] = None) -> saved.SavedModel:
  """`model` with its residual stream in tracr's basis (module doc).

  `tolerance`: relative size below which a direction or singular value is
  absent (default 1e-6, or 1e-2 for weights with noise, judged by how far
  the embeddings' rows are from their own span's round numbers).
  """
  if params_lib.UNEMBED not in model.params:
    return model
  if model.num_heads is None:
    raise ReadoutError("the number of heads is unknown")
  params = _float64(model)
  if tolerance is None:
    tolerance = 1e-6 if _exact(params) else 3e-2
  atoms = find_atoms(model, params, tolerance)
  return in_atom_basis(model, params, atoms)


def _exact(params: Params) -> bool:
  """Whether the weights are an exact basis change of tracr's: the token
  rows are then `one` + one direction each, so every difference of two
  token rows has the same norm relative to... (orthogonal) — or more simply,
  the position rows that write nothing are exactly zero."""
  position_NxD = params["pos_embed"]["embeddings"]
  norms = np.linalg.norm(position_NxD, axis=1)
  return bool(norms.min() <= 1e-9 * norms.max())
