"""The FastAPI search service: encodes query images and returns Hamming-ranked neighbours."""
