"""Training loss and metrics of the meta model's teacher-forced logits."""

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class TokenHits(NamedTuple):
  """Teacher-forced slot results; row r of each array is program row r + 1.

  The one definition of token accuracy (training, validation and eval.py):
  `sum(correct & counted) / sum(counted)`, summed over whatever is
  aggregated, never averaged over batches.

  Attributes:
    predicted: [B, R-1, 5] argmax token ids.
    target: [B, R-1, 5] true token ids.
    slots: [B, R-1, 5] slots of counted rows (`program_mask`).
    counted: [B, R-1, 5] slots of counted rows whose target is neither PAD nor
      NA, so unused argument slots do not inflate accuracy.
  """

  predicted: jax.Array
  target: jax.Array
  slots: jax.Array
  counted: jax.Array

  @property
  def correct(self) -> jax.Array:
    return self.predicted == self.target


def token_hits(logits_BxRx5xV: jax.Array, batch: Mapping[str, jax.Array], *,
               pad_id: int, na_id: int) -> TokenHits:
  """Which slots the logits get right; logits[:, r] predict program[:, r+1]."""
  target_BxRx5 = jnp.asarray(batch["program"])[:, 1:]
  rowmask_BxR = jnp.asarray(batch["program_mask"])[:, 1:]
  slots_BxRx5 = jnp.broadcast_to(rowmask_BxR[..., None], target_BxRx5.shape)
  counted_BxRx5 = (slots_BxRx5 & (target_BxRx5 != pad_id)
                   & (target_BxRx5 != na_id))
  predicted_BxRx5 = jnp.argmax(jnp.asarray(logits_BxRx5xV)[:, :-1], axis=-1)
  return TokenHits(predicted_BxRx5, target_BxRx5, slots_BxRx5, counted_BxRx5)


def loss_and_metrics(
    logits_BxRx5xV: jax.Array, batch: Mapping[str, jax.Array], *, pad_id: int,
    na_id: int) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean cross-entropy over the slots of counted rows, and accuracies.

  logits[:, r] predict program[:, r + 1]; a target row counts where
  program_mask[:, r + 1]. Metrics:
    token_accuracy: over counted slots whose target is neither NA nor PAD
      (`token_hits`);
    sequence_accuracy: share of programs (with any counted row) whose counted
      slots are all right, teacher-forced.
  """
  hits = token_hits(logits_BxRx5xV, batch, pad_id=pad_id, na_id=na_id)
  nll_BxRx5 = optax.softmax_cross_entropy_with_integer_labels(
      logits_BxRx5xV[:, :-1].astype(jnp.float32), hits.target)
  loss = (jnp.sum(nll_BxRx5 * hits.slots)
          / jnp.maximum(jnp.sum(hits.slots), 1))

  token_accuracy = (jnp.sum(hits.correct & hits.counted)
                    / jnp.maximum(jnp.sum(hits.counted), 1))
  has_rows_B = jnp.any(hits.slots, axis=(1, 2))
  program_right_B = has_rows_B & jnp.all(hits.correct | ~hits.slots,
                                         axis=(1, 2))
  sequence_accuracy = (jnp.sum(program_right_B)
                       / jnp.maximum(jnp.sum(has_rows_B), 1))
  return loss, {"loss": loss, "token_accuracy": token_accuracy,
                "sequence_accuracy": sequence_accuracy}
