"""Pretraining on the reviews without their labels (imdb task): what `model.init_from` starts a classifier's
weights from. The `pretrain` DVC stage learns from the training split and the unlabelled texts only
(`corpus`); `word2vec` trains word vectors on them; `outputs` says where a method's results are written and
how a training run finds them. `word_lm`, `stream` and `transfer`: a word-level language model whose embedding
and first recurrent layer initialise the classifier (`model.init_from: lm`), trained by the
`pretrain_lm@<cell>` stage on `lm_data`'s streams (the corpus; the validation split to monitor it)."""
