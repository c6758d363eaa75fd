"""The built-in super-resolution models, registered through the ``zoo`` entry-point group like any plugin."""

import zoo
from zoo_sr import bicubic, edsr, edsr_dqe, srgan

ENTRIES = [bicubic.ENTRY, edsr.ENTRY, edsr_dqe.ENTRY, srgan.ENTRY]


@zoo.hookimpl
def register_sr_models(register):
    for entry in ENTRIES:
        register(entry)
