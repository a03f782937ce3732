"""Complete models built from attnkit's layers, and the baselines they are compared with.

BERT, the Vision Transformer, an image-to-text model, a Transformer text classifier and an
extractive question-answering model; as baselines without attention, a small CNN, a GRU
encoder-decoder, two text classifiers and a GRU question-answering reader.

Import the submodules directly (``from attnkit.models.bert import ...``).
"""
