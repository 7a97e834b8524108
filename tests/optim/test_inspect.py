"""Attention detection: functional SDPA, hand-written attention, nested blocks counted once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_optkit.optim import OptimizerSettings, RunProfile, inspect_model, make_plan


class SDPALayer(nn.Module):  # no "attn" child, no "attention" in any class name
    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.norm, self.mlp = nn.LayerNorm(d), nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(),
                                                             nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(x)


class SDPANet(nn.Module):
    def __init__(self, layers: int = 3) -> None:
        super().__init__()
        self.emb, self.layers = nn.Embedding(50, 16), nn.ModuleList(SDPALayer() for _ in range(layers))
        self.head = nn.Linear(16, 50)

    def forward(self, idx):
        x = self.emb(idx)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=-1)
        return self.c_proj(F.scaled_dot_product_attention(q, k, v, is_causal=True))


class Block(nn.Module):  # nanoGPT's layout: Block -> attn (CausalSelfAttention) + mlp
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), CausalSelfAttention(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Mixer(nn.Module):  # hand-written attention: softmax over q @ k^T
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(-2, -1) / x.shape[-1] ** 0.5
        return scores.softmax(dim=-1) @ self.v(x)


class SoftmaxClassifier(nn.Module):  # a softmax, but no attention
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return F.softmax(self.net(x), dim=-1)


def _family(model: nn.Module) -> str:
    plan = make_plan(inspect_model(model), RunProfile(horizon=1000), OptimizerSettings(mode="rules"))
    return plan.choice.family


def test_functional_sdpa_blocks_are_attention() -> None:
    model = SDPANet(layers=3)
    model(torch.randint(0, 50, (2, 5)))  # the model really runs
    assert inspect_model(model).attention_layers == 3
    assert _family(model) == "transformer"


def test_nanogpt_blocks_count_once() -> None:
    model = nn.Sequential(nn.Embedding(50, 16), Block(), Block(), nn.Linear(16, 50))
    assert inspect_model(model).attention_layers == 2
    assert inspect_model(nn.Sequential(*(Block() for _ in range(5)))).attention_layers == 5


def test_torch_transformer_layers_count_once() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    assert inspect_model(nn.TransformerEncoder(layer, 4)).attention_layers == 4
    assert inspect_model(nn.MultiheadAttention(16, 2)).attention_layers == 1


def test_hand_written_attention_and_plain_softmax() -> None:
    assert inspect_model(nn.Sequential(Mixer(), nn.ReLU(), Mixer())).attention_layers == 2
    assert inspect_model(Mixer()).attention_layers == 1  # the model itself attends
    assert inspect_model(SoftmaxClassifier()).attention_layers == 0
    assert _family(SoftmaxClassifier()) == "mlp"


def test_unreadable_source_is_not_attention() -> None:
    namespace: dict = {}
    exec("import torch.nn as nn\nclass Dyn(nn.Module):\n    def forward(self, x):\n"
         "        return x.softmax(-1) @ x.transpose(-2, -1)\n", namespace)
    assert inspect_model(nn.Sequential(namespace["Dyn"](), nn.Linear(2, 2))).attention_layers == 0
