"""The plugin interface: two hooks, each handed a ``register`` callback.

A plugin module implements either or both::

    import zoo

    @zoo.hookimpl
    def register_sr_models(register):
        register(MY_MODEL_ENTRY)          # a zoo.ModelEntry
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
