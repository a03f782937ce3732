"""A GRU encoder-decoder **without attention** (Sutskever et al., 2014; Cho et al., 2014).

The encoder reads the source and hands the decoder one fixed-size vector, its final
hidden state; the decoder is a GRU language model started from that vector. Everything
the decoder knows about the source must pass through that bottleneck, which is what
attention (Bahdanau et al., 2015; Vaswani et al., 2017) removes.

* :class:`GRUSeq2Seq`: ``forward(src, tgt_in) -> logits (B, T, V_tgt)`` (teacher forcing);
  ``encode(src) -> (1 or num_layers, B, hidden)``.
* :func:`rnn_greedy_decode`: greedy decoding, ``(B, L)`` ids without the BOS, like
  :func:`~attnkit.decoding.greedy_translate`.

Padding: ``src`` is right-padded with ``pad_id``; the encoder packs the sequences so the
final state is the one after each row's last real token.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validate import (
    check_floating,
    check_ids,
    check_instance,
    check_int,
    check_positive_int,
    check_probability,
    check_tensor,
)

__all__ = ["GRUSeq2Seq", "rnn_greedy_decode"]


class GRUSeq2Seq(nn.Module):
    """GRU encoder -> final hidden state -> GRU decoder -> ``Linear(hidden, V_tgt)``.

    Args:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        d_model: embedding size. hidden: GRU state size. num_layers: GRU layers.
        dropout: on embeddings and the decoder output. pad_id: padding id of ``src``.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 64,
        hidden: int = 128,
        num_layers: int = 1,
        dropout: float = 0.1,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        check_positive_int(src_vocab_size, "src_vocab_size")
        self.tgt_vocab_size = check_positive_int(tgt_vocab_size, "tgt_vocab_size")
        check_positive_int(d_model, "d_model")
        check_positive_int(hidden, "hidden")
        num_layers = check_positive_int(num_layers, "num_layers")
        dropout = check_probability(dropout, "dropout")
        self.pad_id = check_int(
            pad_id, "pad_id", low=0, high=min(src_vocab_size, tgt_vocab_size) - 1
        )
        self.src_vocab_size = src_vocab_size
        self.src_embed = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model)
        self.encoder = nn.GRU(d_model, hidden, num_layers, batch_first=True)
        self.decoder = nn.GRU(d_model, hidden, num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, tgt_vocab_size)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """Source ids ``(B, S)`` -> the final encoder state ``(num_layers, B, hidden)``."""
        check_ids(src, "src", vocab_size=self.src_vocab_size, dim=2)
        lengths = (src != self.pad_id).sum(dim=1).clamp(min=1).cpu()  # (B,)
        x = self.dropout(self.src_embed(src))  # (B, S, d_model)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        _, h = self.encoder(packed)  # (num_layers, B, hidden)
        return h

    def decode(self, tgt: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target ids ``(B, T)`` from state ``h`` -> logits ``(B, T, V_tgt)`` and new state."""
        check_ids(tgt, "tgt", vocab_size=self.tgt_vocab_size, dim=2)
        check_floating(check_tensor(h, "h", min_dim=3), "h")
        y, h = self.decoder(self.dropout(self.tgt_embed(tgt)), h)  # (B, T, hidden)
        return self.out_proj(self.dropout(y)), h

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``src (B, S)``, ``tgt_in (B, T)`` (BOS + target[:-1]) ->
        logits ``(B, T, V_tgt)``."""
        check_ids(tgt_in, "tgt_in", vocab_size=self.tgt_vocab_size, dim=2)
        logits, _ = self.decode(tgt_in, self.encode(src))
        return logits


@torch.no_grad()
def rnn_greedy_decode(
    model: GRUSeq2Seq, src: torch.Tensor, *, bos_id: int, eos_id: int, max_len: int
) -> torch.Tensor:
    """Greedy decoding: ``(B, L)`` ids without the BOS, ``L <= max_len``; after a row's EOS
    the row is filled with ``model.pad_id``; stops when every row has produced EOS."""
    check_instance(model, "model", GRUSeq2Seq)
    check_ids(src, "src", vocab_size=model.src_vocab_size, dim=2)
    max_len = check_positive_int(max_len, "max_len")
    for name, token in (("bos_id", bos_id), ("eos_id", eos_id)):
        check_int(token, name, low=0, high=model.tgt_vocab_size - 1)
    was_training = model.training
    model.eval()
    h = model.encode(src)  # (num_layers, B, hidden)
    B = src.shape[0]
    nxt = torch.full((B, 1), bos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, h = model.decode(nxt, h)  # (B, 1, V)
        tok = logits[:, -1].argmax(dim=-1).masked_fill(finished, model.pad_id)  # (B,)
        finished = finished | (tok == eos_id)
        out.append(tok)
        nxt = tok[:, None]
        if bool(finished.all()):
            break
    model.train(was_training)
    return torch.stack(out, dim=1)
