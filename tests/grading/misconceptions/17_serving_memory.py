"""Misconceptions for chapter 17's exercises (serving memory): each is a wrong
implementation that the grader must fail and name."""

from __future__ import annotations

import torch

from attnkit.grading.misconceptions import misconception


# ------------------------------------------------------------------------ kv_cache_bytes
@misconception(
    "kv_cache_bytes",
    en="your cache is half the size: every layer stores a key AND a value per head (factor 2).",
    zh="你的缓存只有一半大：每一层对每个头都要存一个键和一个值（乘以 2）。",
)
def keys_only(num_layers, num_kv_heads, head_dim, num_tokens, bytes_per_element):
    return num_layers * num_kv_heads * head_dim * num_tokens * bytes_per_element


@misconception(
    "kv_cache_bytes",
    en="you counted one layer: every layer keeps its own cache (multiply by num_layers).",
    zh="你只算了一层：每一层都有自己的缓存（要乘以 num_layers）。",
)
def one_layer(num_layers, num_kv_heads, head_dim, num_tokens, bytes_per_element):
    return 2 * num_kv_heads * head_dim * num_tokens * bytes_per_element


@misconception(
    "kv_cache_bytes",
    en="you counted bits, not bytes: bytes_per_element is already in bytes (do not multiply by 8).",
    zh="你算的是比特而不是字节：bytes_per_element 已经是字节数（不要再乘 8）。",
)
def bits_not_bytes(num_layers, num_kv_heads, head_dim, num_tokens, bytes_per_element):
    return num_layers * 2 * num_kv_heads * head_dim * num_tokens * bytes_per_element * 8


@misconception(
    "kv_cache_bytes",
    en="your answer is a float: return an exact int (use // or plain products, not /).",
    zh="你返回了浮点数：请返回精确的 int（用整数乘法或 //，不要用 /）。",
)
def float_result(num_layers, num_kv_heads, head_dim, num_tokens, bytes_per_element):
    return float(num_layers * 2 * num_kv_heads * head_dim * num_tokens * bytes_per_element)


# -------------------------------------------------------------------------- absorb_query
@misconception(
    "absorb_query",
    en="you summed over the heads: each head must use its own w_uk[i], keep the H axis.",
    zh="你把各个头加在了一起：每个头要用自己的 w_uk[i]，保留 H 这一维。",
)
def summed_heads(q_c, w_uk):
    q_lat = torch.einsum("bhtd,hdc->btc", q_c, w_uk)  # (B, T, d_c)
    return q_lat[:, None].expand(-1, q_c.shape[1], -1, -1)


@misconception(
    "absorb_query",
    en="you used head 0's w_uk for every head: index the up-projection by head.",
    zh="你让所有头都用了第 0 个头的 w_uk：上投影矩阵要按头取。",
)
def first_head_only(q_c, w_uk):
    return q_c @ w_uk[0]


@misconception(
    "absorb_query",
    en="you contracted the wrong axis of w_uk (used it transposed): the absorbed query is "
    "W_UK,i^T q, so contract q's d_h axis with w_uk's d_h axis (its middle one).",
    zh="你收缩了 w_uk 的错误维度（把它转置着用了）：吸收后的查询是 W_UK,i^T q，"
    "要把 q 的 d_h 维和 w_uk 中间的 d_h 维收缩。",
)
def transposed_w_uk(q_c, w_uk):
    return q_c @ w_uk.transpose(-2, -1)


@misconception(
    "absorb_query",
    en="you scaled the absorbed query by 1/sqrt(d_h): the scale belongs to the scores, not here.",
    zh="你把吸收后的查询除以了 sqrt(d_h)：缩放属于打分那一步，不在这里。",
)
def scaled_here(q_c, w_uk):
    return torch.einsum("bhtd,hdc->bhtc", q_c, w_uk) / q_c.shape[-1] ** 0.5


# -------------------------------------------------------------------------------- locate
@misconception(
    "locate",
    en="you swapped block and slot: the block index is position // block_size, the slot "
    "position % block_size.",
    zh="你把块号和槽位弄反了：块序号是 position // block_size，槽位是 position % block_size。",
)
def swapped(position, block_table, block_size):
    index, slot = position % block_size, position // block_size
    if index >= len(block_table):
        raise IndexError(position)
    return block_table[index], slot


@misconception(
    "locate",
    en="you returned the index into the table instead of the block id stored there.",
    zh="你返回的是块表里的下标，而不是那里存的块号。",
)
def index_not_id(position, block_table, block_size):
    index, slot = divmod(position, block_size)
    if index >= len(block_table):
        raise IndexError(position)
    return index, slot


@misconception(
    "locate",
    en="positions beyond the request's blocks must raise IndexError, not wrap around or "
    "return a made-up block.",
    zh="超出该请求所有块的位置必须抛出 IndexError，而不是绕回去或编造一个块号。",
)
def wraps_around(position, block_table, block_size):
    index, slot = divmod(position, block_size)
    return block_table[index % len(block_table)], slot


@misconception(
    "locate",
    en="off by one: positions count from 0, so position block_size is the first slot of the "
    "second block.",
    zh="差一错误：位置从 0 开始数，position = block_size 是第二个块的第一个槽位。",
)
def off_by_one(position, block_table, block_size):
    index, slot = divmod(position - 1, block_size)  # counts positions from 1
    if index >= len(block_table):
        raise IndexError(position)
    return block_table[index], slot


# -------------------------------------------------------------------------- gather_paged
@misconception(
    "gather_paged",
    en="you flattened blocks and heads without moving the head axis first: transpose "
    "(n_blocks, H_kv, ...) to (H_kv, n_blocks, ...) before merging blocks.",
    zh="你在合并块之前没有先把头这一维移到前面："
    "先把 (n_blocks, H_kv, ...) 转成 (H_kv, n_blocks, ...)。",
)
def no_transpose(pool, block_table, length):
    blocks = pool[block_table]  # (n, H_kv, bs, D)
    H_kv, D = pool.shape[1], pool.shape[-1]
    return blocks.reshape(H_kv, -1, D)[:, :length]


@misconception(
    "gather_paged",
    en="you read the pool's first blocks in order: a request's blocks are wherever its "
    "block table says, not consecutive.",
    zh="你按顺序读了池里最前面的块：一个请求的块在块表指定的位置，并不连续。",
)
def consecutive_blocks(pool, block_table, length):
    blocks = pool[: len(block_table)]
    return blocks.transpose(0, 1).flatten(1, 2)[:, :length]


@misconception(
    "gather_paged",
    en="you kept the empty slots of the last block: cut the result to `length` positions.",
    zh="你保留了最后一个块里的空槽位：结果要截到 length 个位置。",
)
def keeps_padding(pool, block_table, length):
    return pool[block_table].transpose(0, 1).flatten(1, 2)


@misconception(
    "gather_paged",
    en="you sorted the block ids: the table's order is the order of the positions.",
    zh="你把块号排了序：块表的顺序就是位置的顺序，不能排序。",
)
def sorted_blocks(pool, block_table, length):
    return pool[sorted(block_table)].transpose(0, 1).flatten(1, 2)[:, :length]
