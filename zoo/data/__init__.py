"""Images in and out, and what is done to them before a model sees them: file I/O, data sets, the SR
degradation, MATLAB bicubic resizing, colour spaces, the ab bins of classification colorizers, the training
loader."""
