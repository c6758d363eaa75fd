"""The benchmark harness: suites, the plan of training and evaluation jobs, the executors that run them
(here or on Ray), failure isolation, the dry run, evaluation under the field's conventions, ``zoo run``, and
the conformance checks of ``zoo check`` (they train and evaluate for real)."""
