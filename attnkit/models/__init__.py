"""Complete models built from attnkit's layers: BERT and the Vision Transformer.

Import the submodules directly (``from attnkit.models.bert import ...``).
"""
