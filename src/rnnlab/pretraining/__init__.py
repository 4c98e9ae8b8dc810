"""Pretraining on the reviews without their labels: a word-level language model whose embedding and first
recurrent layer initialise the classifier (`model.init_from: lm`)."""
