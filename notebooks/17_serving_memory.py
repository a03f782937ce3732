# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Serving memory: the key/value cache, latent attention and paging
#
# A language model that answers requests spends most of its life *decoding*: one new
# token per step, for many requests at once. At every step each layer attends over all
# earlier tokens of each request, so it keeps their keys and values: the key/value cache
# of {ref}`chapter 4 <ch04-kv-cache>`. The arithmetic of a step is small; what limits how
# many requests a server can hold, and how long their contexts can be, is the **memory of
# that cache**. This chapter is about the three ideas that today's open models use to
# shrink it or to waste less of it:
#
# - sharing key/value heads between query heads (multi-query and grouped-query attention,
#   taught in {ref}`chapter 2 <ch02-gqa>`); here we only count what they save;
# - **multi-head latent attention** (MLA) of DeepSeek-V2 {cite:p}`deepseekai2024v2`: cache
#   one small latent vector per token and rebuild every head's keys and values from it,
#   with a trick (*weight absorption*) that avoids rebuilding them at all;
# - **PagedAttention** {cite:p}`kwon2023efficient`: keep the cache in fixed-size blocks
#   handed out on demand, like pages of virtual memory, instead of one reserved
#   contiguous slab per request.
#
# By the end you should be able to compute the cache of any published model from its
# configuration, derive MLA's absorbed form and say why its rotary part must be decoupled,
# and explain where a contiguous cache wastes memory and how paging removes the waste.
# Every number below is computed in this chapter; the model configurations are quoted from
# their papers (one from its configuration file), each cited where it is used.

# %%

import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue
from torch.utils.flop_counter import FlopCounterMode

import attnkit as ak
from attnkit import llm

torch.manual_seed(0)
# One thread: the book runs its chapters side by side, one thread each, so every number
# below is the same on any machine, however many cores it has.
torch.set_num_threads(1)
torch.set_printoptions(precision=4, sci_mode=False)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("torch", torch.__version__, "| attnkit", ak.__version__)

# %% [markdown]
# (ch17-bytes)=
# ## How big is the cache?
#
# Each layer stores, for every token, one key and one value per *stored* head. With $L$
# layers, $H_{kv}$ key/value heads of width $d_{\text{head}}$ and $b$ bytes per number,
#
# $$
# \text{cache bytes per token} = L \cdot 2 \cdot H_{kv} \cdot d_{\text{head}} \cdot b .
# $$
#
# Multi-head attention stores every head ($H_{kv} = H$); grouped-query attention stores
# $H_{kv} < H$ heads, each shared by $H / H_{kv}$ query heads {cite:p}`ainslie2023gqa`;
# multi-query attention stores one {cite:p}`shazeer2019fast`. `llm.kv_cache_bytes_per_token`
# computes this for a `llm.KVLayout`; `llm.PUBLISHED` holds the attention shapes of a few
# open models, each with its source. First, the formula must agree with a real cache:
# we decode with `ak.MultiHeadAttention` and read the bytes its `KVCache` holds.


# %%
def decoded_cache_bytes(num_heads: int, num_kv_heads: int, head_dim: int, steps: int) -> int:
    """Bytes held by one layer's KVCache after decoding `steps` tokens (float32)."""
    mha = ak.MultiHeadAttention(num_heads * head_dim, num_heads, num_kv_heads=num_kv_heads)
    cache = ak.KVCache()
    x = torch.randn(1, steps, num_heads * head_dim)  # (B, T, d_model)
    with torch.no_grad():
        for t in range(steps):
            mha(x[:, t : t + 1], x[:, t : t + 1], x[:, t : t + 1], cache=cache, is_causal=True)
    return cache.nbytes


for H, H_kv in ((8, 8), (8, 2), (8, 1)):
    layout = llm.KVLayout(
        "toy", 1, "mha" if H_kv == H else "gqa", H, head_dim=16, num_kv_heads=H_kv
    )
    measured = decoded_cache_bytes(H, H_kv, 16, steps=12)
    formula = 12 * llm.kv_cache_bytes_per_token(layout, bytes_per_element=4)
    print(f"H = {H}, H_kv = {H_kv}: KVCache holds {measured:6,} bytes, formula {formula:6,}")
    assert measured == formula, (
        f"the cache formula disagrees with KVCache ({measured} vs {formula})"
    )

# %% [markdown]
# Now the published models, in bfloat16 (2 bytes per number). The table gives the cache
# of one token, and of one request whose context fills 128k tokens (131,072).

# %%
rows = []
for name, layout in llm.PUBLISHED.items():
    per_token = llm.kv_cache_bytes_per_token(layout)  # bfloat16
    rows.append((name, layout, per_token))
    print(
        f"{name:12} {layout.kind.upper():4} L = {layout.num_layers:3}: "
        f"{per_token / 1024:6.1f} KiB per token, "
        f"{per_token * 2**17 / 2**30:6.2f} GiB per 128k tokens"
    )
per_token = {name: b for name, _, b in rows}
glue("ch17_llama3_8b_kib", per_token["Llama 3 8B"] / 1024, display=False)
glue("ch17_llama3_70b_kib", per_token["Llama 3 70B"] / 1024, display=False)
glue("ch17_llama3_70b_128k_gib", per_token["Llama 3 70B"] * 2**17 / 2**30, display=False)
glue("ch17_llama2_7b_kib", per_token["Llama 2 7B"] / 1024, display=False)
glue("ch17_dsv3_kib", per_token["DeepSeek-V3"] / 1024, display=False)
glue("ch17_dsv3_vs_70b", per_token["Llama 3 70B"] / per_token["DeepSeek-V3"], display=False)
v2 = llm.PUBLISHED["DeepSeek-V2"]
v2_per_layer = llm.kv_cache_elements_per_token(v2) // v2.num_layers
v2_as_mha = 2 * v2.num_heads * 128  # MHA over the same 128 heads of width d_h = 128
assert (v2_per_layer, v2_as_mha) == (576, 32768), (
    f"claim no longer holds: 'DeepSeek-V2: 576 numbers per token and layer, MHA 32,768' "
    f"({v2_per_layer}, {v2_as_mha})"
)
assert per_token["Llama 3 8B"] == 128 * 1024, "claim no longer holds: 'Llama 3 8B: 128 KiB'"
for accelerator in (80e9, 80 * 2**30):  # "80 GB", read as decimal or binary gigabytes
    share = per_token["Llama 3 70B"] * 2**17 / accelerator
    assert 0.45 < share < 0.55, (
        f"claim no longer holds: '128k tokens of Llama 3 70B: about half of 80 GB' ({share:.0%})"
    )
assert per_token["Llama 2 7B"] == 4 * per_token["Llama 3 8B"], (
    "claim no longer holds: 'Llama 2 7B keeps four times as much as Llama 3 8B'"
)

# %% [markdown]
# The sources: Llama 2 7B from its configuration file (the Llama 2 paper uses grouped-query
# attention only for its 34B and 70B models {cite:p}`touvron2023llama2`), Mistral 7B from
# table 1 of its paper {cite:p}`jiang2023mistral`, Llama 3 from table 3 of its paper
# {cite:p}`dubey2024llama`, DeepSeek-V2 and V3 from the hyper-parameters of their papers
# {cite:p}`deepseekai2024v2,deepseekai2024v3`.
#
# Read the table as a server would. Llama 3 8B keeps {glue:text}`ch17_llama3_8b_kib:.0f`
# KiB per token; its predecessor Llama 2 7B, with every head stored, kept
# {glue:text}`ch17_llama2_7b_kib:.0f` KiB. One 128k-token request to Llama 3 70B holds
# {glue:text}`ch17_llama3_70b_128k_gib:.0f` GiB of cache, about half the memory of an
# 80 GB accelerator, before a single weight is counted. DeepSeek-V3, a much larger model, keeps
# {glue:text}`ch17_dsv3_kib:.1f` KiB per token, {glue:text}`ch17_dsv3_vs_70b:.1f` times
# less than Llama 3 70B. How it does that is the next section.

# %% [markdown]
# (ch17-mla)=
# ## Multi-head latent attention
#
# ### Cache a latent, rebuild the heads
#
# Grouped-query attention saves memory by giving several query heads *the same* keys and
# values. MLA {cite:p}`deepseekai2024v2` keeps distinct keys and values for every head,
# but stores only a low-rank summary from which all of them are rebuilt. For the input
# $h_t$ of token $t$, with $H$ heads of width $d_h$ and a latent of size
# $d_c \ll H d_h$:
#
# $$
# c_t = W_{DKV}\, h_t \in \mathbb{R}^{d_c}, \qquad
# k^C_{t,i} = W_{UK,i}\, c_t, \qquad v_{t,i} = W_{UV,i}\, c_t \qquad (i = 1, \dots, H).
# $$
#
# Only $c_t$ is cached. The queries get a similar down- and up-projection (to save
# activation memory in training, not cache), $q^C_{t,i} = W_{UQ,i}\, c^Q_t$.
#
# ### Absorbing the up-projections
#
# Rebuilding $H$ keys and values for every cached token at every step would multiply the
# arithmetic of a decoding step (we count it below). It is not needed. The score of query $t$ with key $j$
# in head $i$ is
#
# $$
# q^{C\top}_{t,i}\, k^C_{j,i} = q^{C\top}_{t,i}\, W_{UK,i}\, c_j
# = \big(W_{UK,i}^\top\, q^C_{t,i}\big)^{\!\top} c_j ,
# $$
#
# so we can multiply the *query* by $W_{UK,i}^\top$ once and score it directly against the
# cached latents. The same holds on the output side: head $i$'s output
# $\sum_j p_{tj}\, W_{UV,i}\, c_j = W_{UV,i} \sum_j p_{tj}\, c_j$, so the weighted sum is
# taken over latents and $W_{UV,i}$ (which can be folded further into the output
# projection) is applied once. Attention then runs in the latent space, like multi-query
# attention with one shared key/value "head" of size $d_c$ (plus the rotary part below).
#
# ### Why the rotary part is decoupled
#
# RoPE ({ref}`chapter 2 <ch02-relative>`) rotates queries and keys by their positions:
# the score becomes $q^\top R_{t}^\top R_{j}\, k = q^\top R_{j - t}\, k$. Put that
# rotation on the content keys and the absorbed matrix becomes
# $W_{UQ,i}^\top R_{j-t} W_{UK,i}$, different for every distance: nothing can be absorbed.
# MLA therefore adds a small separate part: a rotary query per head $q^R_{t,i}$ and **one
# rotary key shared by all heads**, $k^R_t = \mathrm{RoPE}_t(W_{KR}\, h_t)$ of size $d_r$,
# cached next to $c_t$. Head $i$'s query and key are the concatenations
# $[q^C_{t,i}; q^R_{t,i}]$ and $[k^C_{j,i}; k^R_j]$, scored with $1/\sqrt{d_h + d_r}$.
# The cache per token and layer is $d_c + d_r$ numbers: $512 + 64 = 576$ in DeepSeek-V2,
# where multi-head attention over the same $128$ heads of width $128$ would keep $32{,}768$.
#
# `llm.MultiHeadLatentAttention` implements both forms; `absorb=True` attends in the latent
# space. In float64 the two must agree to rounding.

# %%
torch.manual_seed(0)
d_model, H, d_h, d_c, d_r = 256, 8, 32, 64, 16
mla = llm.MultiHeadLatentAttention(d_model, H, d_h, d_c, d_r, q_latent_dim=96).double()
x = torch.randn(2, 40, d_model, dtype=torch.float64)  # (B, T, d_model)
with torch.no_grad():
    explicit, absorbed = mla(x), mla(x, absorb=True)
mla_diff = (explicit - absorbed).abs().max().item()
print(f"max |explicit - absorbed| = {mla_diff:.1e}  (outputs of size {explicit.abs().max():.2f})")
assert mla_diff < 1e-12, (
    f"claim no longer holds: 'the two forms agree to rounding' ({mla_diff:.1e})"
)
glue("ch17_mla_diff", mla_diff, display=False)

mha_per_token = 2 * H * d_h
print(f"cached numbers per token and layer: MLA {mla.cache_elements_per_token()}, "
      f"MHA with the same heads {mha_per_token}")  # fmt: skip
glue("ch17_mla_elems", mla.cache_elements_per_token(), display=False)
glue("ch17_mha_elems", mha_per_token, display=False)

# %% [markdown]
# The two forms differ by {glue:text}`ch17_mla_diff:.0e` at most, the rounding of float64.
# This small layer caches {glue:text}`ch17_mla_elems` numbers per token instead of
# {glue:text}`ch17_mha_elems`.
#
# The decoupling argument can be checked numerically too. Take head 0's content
# query and key maps and put RoPE between them: the matrix that would have to be absorbed,
# $W_{UQ,0}^\top R_\Delta W_{UK,0}$, changes with the distance $\Delta$ between query and
# key. Without a rotation in between it is one fixed matrix.

# %%
W_uq0 = mla.per_head(mla.w_uq)[0]  # (d_h, d_c'): head 0's content query map
W_uk0 = mla.per_head(mla.w_uk)[0]  # (d_h, d_c): head 0's content key map
cos, sin = ak.rotary_cos_sin(64, d_h, dtype=torch.float64)  # positions 0..63


def rotation(delta: int) -> torch.Tensor:
    """The (d_h, d_h) matrix R with R @ x = apply_rotary(x) at position delta."""
    eye = torch.eye(d_h, dtype=torch.float64)  # rotate each basis vector
    return ak.apply_rotary(eye, cos[delta : delta + 1], sin[delta : delta + 1]).T


with torch.no_grad():
    absorbed_by_delta = [W_uq0.T @ rotation(delta).T @ W_uk0 for delta in (0, 1, 5, 40)]
    first = absorbed_by_delta[0]
    spread = max(float((m - first).norm() / first.norm()) for m in absorbed_by_delta)
print(f"relative change of W_UQ^T R_delta W_UK over delta in (0, 1, 5, 40): {spread:.2f}")
assert spread > 0.1, (
    f"claim no longer holds: 'the absorbed matrix changes with distance' ({spread:.3f})"
)
glue("ch17_rope_spread", spread, display=False)

# %% [markdown]
# The matrix changes by up to {glue:text}`ch17_rope_spread:.0%` of its size across those
# distances, so a single absorbed matrix cannot exist once the content part is rotated.
#
# ### What absorption saves at a decoding step
#
# At a decoding step the explicit form must up-project every cached latent into $H$ keys
# and values before it can score them; the absorbed form scores the latents directly. We
# count the floating-point operations of one step over a cache of 1,024 tokens with
# PyTorch's `FlopCounterMode` (2 per multiply-add, matrix products only).


# %%
def decode_step_flops(absorb: bool, past: int = 1024) -> int:
    """FLOPs of decoding one token after `past` cached tokens, in float32."""
    layer = llm.MultiHeadLatentAttention(d_model, H, d_h, d_c, d_r, q_latent_dim=96)
    cache = llm.LatentKVCache()
    with torch.no_grad():
        layer(torch.randn(1, past, d_model), cache=cache)  # fill the cache
        with FlopCounterMode(display=False) as counter:
            layer(torch.randn(1, 1, d_model), cache=cache, absorb=absorb)
    return counter.get_total_flops()


flops = {absorb: decode_step_flops(absorb) for absorb in (False, True)}
saving = flops[False] / flops[True]
print(f"one decoding step, 1,024 cached tokens: explicit {flops[False]:,} FLOPs, "
      f"absorbed {flops[True]:,} FLOPs ({saving:.1f}x fewer)")  # fmt: skip
assert saving > 4, (
    f"claim no longer holds: 'absorption saves several times the work' ({saving:.1f}x)"
)
T_step = 1024 + 1  # the cached tokens and the new one
rebuild = 2 * (2 * T_step * d_c * H * d_h)  # FLOPs of up-projecting T keys and T values
explained = (flops[False] - flops[True]) / rebuild
assert 0.9 < explained < 1.0, (
    f"claim no longer holds: 'the saving is most of the rebuilding, the absorbed form giving "
    f"the rest back' ({explained:.1%})"
)
glue("ch17_rebuild_share", explained, display=False)
glue("ch17_absorb_saving", saving, display=False)
glue("ch17_flops_explicit", flops[False], display=False)
glue("ch17_flops_absorbed", flops[True], display=False)

# %% [markdown]
# Absorbed, the step costs {glue:text}`ch17_absorb_saving:.1f` times fewer operations
# ({glue:text}`ch17_flops_absorbed:,` instead of {glue:text}`ch17_flops_explicit:,`),
# because the $2 \cdot T \cdot d_c \cdot H d_h$ multiply-adds of rebuilding keys and values
# ($T = 1{,}025$ with the new token) are gone. The saving is
# {glue:text}`ch17_rebuild_share:.0%` of those rebuilding operations: the absorbed form gives
# the rest back on its wider scores ($d_c + d_r$ numbers per key instead of $d_h + d_r$) and
# weighted sums ($d_c$ instead of $d_h$), and on folding $W_{UK}$ into the query and
# $W_{UV}$ into the output. In training,
# where every query needs every key anyway, the explicit form is the natural one; at
# inference the absorbed form is used.
#
# What MLA gives up is not obvious from the cache alone: its keys live in a
# $d_c$-dimensional subspace. DeepSeek-V2 reports that MLA performed better than
# multi-head attention in its ablations, at a fraction of the cache {cite:p}`deepseekai2024v2`; a
# claim about large models we can cite but not re-run here.

# %% [markdown]
# (ch17-paged)=
# ## Paging the cache
#
# ### Where a contiguous cache wastes memory
#
# A server does not know how long a request will run: it stops at an end-of-sequence token
# or at a maximum length. A cache kept as one contiguous tensor per request must be
# reserved for the maximum up front, and most of that room usually stays empty (the vLLM
# paper calls it *reservation* and *internal fragmentation*, and adds the *external*
# fragmentation between differently sized slabs {cite:p}`kwon2023efficient`).
#
# PagedAttention keeps every request's keys and values in **blocks** of a fixed number of
# positions, taken from one shared pool as the request grows. A request's **block table**
# lists its blocks in order: position $p$ lives in block `table[p // block_size]`, slot
# `p % block_size`. Only the last block of a request is partly empty, and a finished
# request returns its blocks to the pool at once.
#
# ### The same attention, read through a table
#
# `llm.PagedKVCache` is such a pool and `llm.paged_attention` attends through the block
# tables. Three requests grow in turns, so their blocks interleave in the pool; one of them
# finishes and its blocks are reused. Attention through the tables must equal attention
# over contiguous copies of the same keys and values.

# %%
torch.manual_seed(1)
H_kv, D, block = 2, 16, 4
pool = llm.PagedKVCache(
    num_blocks=32, block_size=block, num_kv_heads=H_kv, head_dim=D, dtype=torch.float64
)
contiguous: dict[int, list[torch.Tensor]] = {0: [], 1: [], 2: [], 3: []}


def grow(seq: int, n: int) -> None:
    """Append n random positions to request seq, in the pool and in a contiguous copy."""
    kv = torch.randn(2, H_kv, n, D, dtype=torch.float64)  # (k/v, H_kv, n, D)
    pool.append(seq, kv[0], kv[1])
    contiguous[seq].append(kv)


for _step in range(6):  # requests 0, 1, 2 grow in turns
    for seq, n in ((0, 3), (1, 2), (2, 1)):
        grow(seq, n)
freed_blocks = list(pool.tables[1])
pool.free(1)  # request 1 finishes: its blocks go back to the pool
for _step in range(4):
    grow(3, 3)
    grow(0, 1)

seqs = [0, 2, 3]
table, lengths = pool.block_table(seqs)
print("block tables (one row per request):\n", table)
print("lengths:", lengths.tolist(), "| free blocks:", pool.num_free_blocks)
q = torch.randn(len(seqs), 4, 1, D, dtype=torch.float64)  # (B, H, 1, D): one decoding step
paged = llm.paged_attention(q, pool.k_pool, pool.v_pool, table, lengths)
paged_diff = 0.0
for row, seq in enumerate(seqs):
    kv = torch.cat(contiguous[seq], dim=2)  # (2, H_kv, length, D)
    k, v = (ak.repeat_kv(t, 4 // H_kv) for t in kv)  # (H, length, D)
    want = ak.scaled_dot_product_attention(q[row], k, v)
    paged_diff = max(paged_diff, (paged[row] - want).abs().max().item())
print(f"max |paged - contiguous| = {paged_diff:.1e}")
assert paged_diff < 1e-12, (
    f"claim no longer holds: 'paged attention equals contiguous' ({paged_diff:.1e})"
)
for seq in seqs:
    empty = len(pool.tables[seq]) * block - pool.lengths[seq]
    assert 0 <= empty < block, (
        f"claim no longer holds: 'only last blocks are partly empty' (request {seq}: {empty})"
    )
reused = set(pool.tables[3]) & set(freed_blocks)
assert reused, "claim no longer holds: 'block ids reused after request 1 left'"

glue("ch17_paged_diff", paged_diff, display=False)

# %% [markdown]
# The block tables are scattered over the pool, block ids reused after request 1 left,
# and the attention equals the contiguous one to {glue:text}`ch17_paged_diff:.0e`. (Here
# the blocks are gathered into a contiguous view before attending; vLLM's kernels read
# them in place, which computes the same attention, up to rounding, without the copy.)
#
# ### How much memory paging saves: a simulated request mix
#
# How much is saved depends on the requests. We simulate a mix: prompt and output lengths
# drawn from log-normal distributions (long-tailed: most requests short, a few long), a
# maximum length of 2,048 tokens, and count, at the moment every request is halfway
# through its output,
#
# - **contiguous, reserved for the maximum**: each request holds 2,048 slots;
# - **paged**, blocks of 16: each request holds $\lceil \text{length} / 16 \rceil$ blocks.
#
# The *utilisation* is the fraction of held slots that store a token. Three request
# mixes (seeds) of 256 requests each; the answer is arithmetic, not timing, so it is the
# same on every machine.

# %%
MAX_LEN, BLOCK = 2048, 16


def request_mix(seed: int, n: int = 256) -> np.ndarray:
    """Tokens in the cache of n requests halfway through their outputs (ints <= MAX_LEN)."""
    rng = np.random.default_rng(seed)
    prompt = np.minimum(rng.lognormal(mean=5.5, sigma=0.8, size=n).astype(int) + 1, MAX_LEN // 2)
    output = np.minimum(rng.lognormal(mean=5.0, sigma=0.9, size=n).astype(int) + 1, MAX_LEN // 2)
    return prompt + output // 2


utilisation = {"contiguous (max length)": [], f"paged (blocks of {BLOCK})": []}
for seed in range(3):
    stored = request_mix(seed)
    paged_slots = sum(llm.blocks_needed(int(n), BLOCK) * BLOCK for n in stored)
    utilisation["contiguous (max length)"].append(stored.sum() / (len(stored) * MAX_LEN))
    utilisation[f"paged (blocks of {BLOCK})"].append(stored.sum() / paged_slots)
for scheme, values in utilisation.items():
    print(
        f"{scheme:24}: utilisation {np.mean(values):.1%} "
        f"(seeds: {', '.join(f'{v:.1%}' for v in values)})"
    )

contig = utilisation["contiguous (max length)"]
paged_u = utilisation[f"paged (blocks of {BLOCK})"]
assert max(contig) < 0.35, (
    f"claim no longer holds: 'contiguous: most slots empty' ({max(contig):.1%})"
)
assert min(paged_u) > 0.95, f"claim no longer holds: 'paged: over 95% used' ({min(paged_u):.1%})"
glue("ch17_util_contig", float(np.mean(contig)), display=False)
glue("ch17_util_paged", float(np.mean(paged_u)), display=False)
glue("ch17_capacity_ratio", float(np.mean(paged_u) / np.mean(contig)), display=False)

fig, ax = plt.subplots(figsize=(6, 2.6))
names = list(utilisation)
means = [np.mean(utilisation[s]) for s in names]
ax.barh(names, means, color=["tab:gray", "tab:blue"])
for i, s in enumerate(names):
    ax.plot(utilisation[s], [i] * 3, "k|", markersize=14)  # the three seeds
ax.set_xlim(0, 1)
ax.set_xlabel("fraction of held cache slots that store a token (3 request mixes)")
ax.set_title("KV-cache utilisation at mid-generation")
plt.tight_layout()
plt.show()

# %% [markdown]
# Reserved for the maximum length, only {glue:text}`ch17_util_contig:.0%` of the held cache
# stores tokens in this mix; paged, {glue:text}`ch17_util_paged:.1%` does (the rest is the
# partly filled last block of each request, never more than 15 slots). With the same
# memory, the paged server holds about {glue:text}`ch17_capacity_ratio:.1f` times as many
# requests of this mix at once, and a larger batch is what raises a memory-bound server's
# throughput. The vLLM paper reports 2–4 times the throughput of earlier serving systems
# at the same latency {cite:p}`kwon2023efficient`, from paging and from what it enables
# (sharing blocks between requests that share a prompt, for instance).
#
# A fairer contiguous baseline would reserve each request's *actual* final length, which a
# server does not know in advance; even then, slabs of different sizes fragment the free
# memory between them, which fixed-size blocks cannot do.

# %% [markdown]
# (ch17-summary)=
# ## Summary
#
# - The key/value cache of a decoder holds $L \cdot 2 \cdot H_{kv} \cdot d_{\text{head}}$
#   numbers per token; at serving time its memory, more than the arithmetic, limits batch
#   and context (the premise of the vLLM paper {cite:p}`kwon2023efficient`).
#   One function computes it for any layout, checked against a real cache.
# - Grouped- and multi-query attention divide it by $H / H_{kv}$ by sharing heads
#   ({ref}`chapter 2 <ch02-gqa>`).
# - Multi-head latent attention caches a latent of size $d_c$ plus one shared rotary key
#   of size $d_r$ per token and layer. Absorbing $W_{UK}$ into the query and $W_{UV}$
#   after the weighted sum gives the same outputs (to {glue:text}`ch17_mla_diff:.0e` in
#   float64) without rebuilding keys and values, which here saves
#   {glue:text}`ch17_absorb_saving:.1f` times the work of a decoding step. RoPE on the
#   content keys would make the absorbed matrix depend on the distance, hence the
#   decoupled rotary part.
# - PagedAttention stores the cache in fixed-size blocks found through a block table;
#   attention is unchanged, and only each request's last block is partly empty.
#
# The exercises build these pieces: the cache formula, the absorbed query, the block-table
# lookup and the paged gather.
