"""How a model or a metric plugs in: the hook specs, the registry, the entries a plugin registers, the
contract and config bases it is checked against, the model interfaces and the conformance checks."""
