"""How a model or a metric plugs in: the hook specs, the registry, the entries a plugin registers, the
contract and config bases it is checked against, the model, recipe and metric interfaces, the core metrics'
registration, and the code hash that keys caches on a plugin's source. It imports nothing of zoo but
``zoo.errors``: every other layer stands on it."""
