"""Training loss and metrics of the meta model's teacher-forced logits."""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax


def loss_and_metrics(
    logits_BxRx5xV: jax.Array, batch: Mapping[str, jax.Array], *, pad_id: int,
    na_id: int) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean cross-entropy over the slots of counted rows, and accuracies.

  logits[:, r] predict program[:, r + 1]; a target row counts where
  program_mask[:, r + 1]. Metrics:
    token_accuracy: over counted slots whose target is neither NA nor PAD,
      so unused argument slots do not inflate it;
    sequence_accuracy: share of programs (with any counted row) whose counted
      slots are all right, teacher-forced.
  """
  logits_BxRx5xV = logits_BxRx5xV[:, :-1].astype(jnp.float32)
  target_BxRx5 = batch["program"][:, 1:]
  rowmask_BxR = batch["program_mask"][:, 1:]
  slotmask_BxRx5 = jnp.broadcast_to(rowmask_BxR[..., None], target_BxRx5.shape)
  nll_BxRx5 = optax.softmax_cross_entropy_with_integer_labels(
      logits_BxRx5xV, target_BxRx5)
  loss = (jnp.sum(nll_BxRx5 * slotmask_BxRx5)
          / jnp.maximum(jnp.sum(slotmask_BxRx5), 1))

  correct_BxRx5 = jnp.argmax(logits_BxRx5xV, axis=-1) == target_BxRx5
  counted_BxRx5 = (slotmask_BxRx5 & (target_BxRx5 != pad_id)
                   & (target_BxRx5 != na_id))
  token_accuracy = (jnp.sum(correct_BxRx5 & counted_BxRx5)
                    / jnp.maximum(jnp.sum(counted_BxRx5), 1))
  has_rows_B = jnp.any(rowmask_BxR, axis=1)
  program_right_B = has_rows_B & jnp.all(correct_BxRx5 | ~slotmask_BxRx5,
                                         axis=(1, 2))
  sequence_accuracy = (jnp.sum(program_right_B)
                       / jnp.maximum(jnp.sum(has_rows_B), 1))
  return loss, {"loss": loss, "token_accuracy": token_accuracy,
                "sequence_accuracy": sequence_accuracy}
