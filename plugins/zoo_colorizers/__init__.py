"""The built-in colorizers, registered through the ``zoo`` entry-point group like any third-party plugin."""

import zoo
from zoo_colorizers import gray

ENTRIES = [gray.ENTRY]


@zoo.hookimpl
def register_colorizers(register):
    for entry in ENTRIES:
        register(entry)
