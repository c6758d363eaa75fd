"""Training: the one loop every model shares, the settings of a training, shared losses, held-out
validation and the step log (the recipe interface a model fills in is :mod:`zoo.plugins.recipe`)."""
