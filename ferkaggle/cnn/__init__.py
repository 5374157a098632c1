"""The CNN stage on Keras 3: configs, model builders, augmentation, schedules, test-time augmentation,
weight averaging, the runtime, the input pipeline, the fit loop, an epoch's measured pace, recording
runs, k-fold and refits."""
