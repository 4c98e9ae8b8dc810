"""Data stages: acquire (download, verify, extract), tokenize, build the vocabulary, encode, load."""
