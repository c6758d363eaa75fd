"""The plugin interface: every extension point of zoo, each a hook handed a ``register`` callback.

A plugin module implements any of them::

    import zoo

    @zoo.hookimpl
    def register_sr_models(register):
        register(MY_MODEL_ENTRY)          # a zoo.ModelEntry

What a registered entry must satisfy is written down (and checked at registration) in :mod:`zoo.plugins.contract`.
A function marked ``@zoo.hookimpl`` whose name matches no hook below is reported, never silently ignored.
"""

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_colorizers(register):
    """Register colorizers: call ``register(entry)`` once per :class:`zoo.ModelEntry`.

    A colorizer maps an L channel batch (B, 1, H, W), L in [0, 100], to ab (B, 2, H, W) in Lab units.
    """


@hookspec
def register_sr_models(register):
    """Register super-resolution models: call ``register(entry)`` once per :class:`zoo.ModelEntry`.

    An SR model maps RGB (B, 3, h, w) in [0, 1] to RGB (B, 3, scale*h, scale*w).
    """


@hookspec
def register_metrics(register):
    """Register image-quality metrics: call ``register(entry)`` once per :class:`zoo.MetricEntry`.

    ``entry.build(**params)`` returns a :class:`zoo.Metric` fed ``update(pred, target)`` with RGB batches in
    [0, 1]; ``params`` carry the evaluation's convention (``shave``, ``device``, ``cache_dir``, ...), and a
    metric ignores the ones it does not use.
    """
