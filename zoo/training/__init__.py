"""Training: the one loop every model shares, the recipe interface each model fills in, shared losses, held-out
validation, the step log and the random state a checkpoint saves."""
