"""Classical models on pixel or HOG features, scored with k-fold CV and recorded as runs."""
