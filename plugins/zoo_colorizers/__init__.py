"""The built-in colorizers, registered through the ``zoo`` entry-point group like any third-party plugin."""

import zoo
from zoo_colorizers import gray, pix2pix, unet_vae, vgg_decoder, zhang

ENTRIES = [gray.ENTRY, zhang.ENTRY, vgg_decoder.ENTRY, unet_vae.ENTRY, pix2pix.ENTRY]


@zoo.hookimpl
def register_colorizers(register):
    for entry in ENTRIES:
        register(entry)
