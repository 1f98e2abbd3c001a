"""AdamW with warmup + cosine decay and global-norm clipping."""

import ml_collections
import optax


def check_schedule(config: ml_collections.ConfigDict) -> None:
  """ValueError naming the fields of a schedule optax cannot build."""
  if config.steps < 1:
    raise ValueError(f"steps={config.steps} must be at least 1")
  if not 0 <= config.warmup_steps < config.steps:
    raise ValueError(f"warmup_steps={config.warmup_steps} must be in [0, "
                     f"steps={config.steps}): the cosine decay needs steps "
                     "after the warmup (lower --config.warmup_steps)")
  if config.grad_accumulation_steps < 1:
    raise ValueError(f"grad_accumulation_steps="
                     f"{config.grad_accumulation_steps} must be at least 1")


def make_optimizer(config: ml_collections.ConfigDict
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer of a training config, and its learning-rate schedule."""
  check_schedule(config)
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate,
      warmup_steps=config.warmup_steps, decay_steps=config.steps,
      end_value=config.learning_rate * config.final_learning_rate_fraction)
  optimizer = optax.chain(
      optax.clip_by_global_norm(config.grad_clip_norm),
      optax.adamw(schedule, weight_decay=config.weight_decay))
  if config.grad_accumulation_steps > 1:
    optimizer = optax.MultiSteps(optimizer, config.grad_accumulation_steps)
  return optimizer, schedule
