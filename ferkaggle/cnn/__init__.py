"""The CNN stage on Keras 3: configs, model builders, augmentation, schedules, test-time augmentation,
weight averaging, the runtime, the input pipeline, the fit loop, recording runs, k-fold and refits."""
