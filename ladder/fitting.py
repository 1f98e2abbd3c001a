"""Full-batch gradient descent, as the ladder's trained rungs (R4, R5) use it."""

from typing import Callable

import jax
import optax


def minimize(loss: Callable, start, optimizer: optax.GradientTransformation,
             num_steps: int):
  """`start` (a pytree of jax arrays) after `num_steps` steps of `optimizer`
  on `loss` (one jitted step)."""

  @jax.jit
  def step(params, state):
    grads = jax.grad(loss)(params)
    updates, state = optimizer.update(grads, state)
    return optax.apply_updates(params, updates), state

  params, state = start, optimizer.init(start)
  for _ in range(num_steps):
    params, state = step(params, state)
  return params
