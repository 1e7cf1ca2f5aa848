"""The indexer: image folders -> codes -> FAISS binary index plus item metadata."""
