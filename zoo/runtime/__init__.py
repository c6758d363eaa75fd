"""The machine a job runs on: device choice, hardware facts and the decisions taken from them, determinism,
provenance, cached constant tensors."""
