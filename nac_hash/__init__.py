"""nac-hash: unsupervised binary hashing with Neural Activation Coding, and Hamming search."""
