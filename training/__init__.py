"""Learning hash codes: datasets, protocol splits, GPU augmentations, LARS, the training loop, eval."""
