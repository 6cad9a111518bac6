"""Conversion by training on a tiny Llama teacher (CPU): the attention transfer and the
distillation lower their losses, the perplexity table has its four rows, the saved student
reloads through AutoModelForCausalLM with the same logits, the text split never overlaps, and
the ``transfer`` command runs and rejects bad arguments."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from spikingbrain.models.transfer import (
    TransferConfig,
    attention_transfer,
    build_student,
    distill,
    heldout_passages,
    save_transfer,
    teacher_attention_io,
    token_blocks,
    training_texts,
    transfer,
)

SMALL = dict(sliding_window=8, seq_len=32, batch_size=4, train_tokens=2048, eval_tokens=512,
             steps_attn=12, steps_distill=8, lr_attn=3e-3, lr_distill=3e-4)


def _tokenizer():
    """A byte-level BPE tokenizer of 320 tokens trained on a little of the training text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(itertools.islice(training_texts(), 20), trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>")


@pytest.fixture(scope="module")
def tiny():
    """``(teacher, tokenizer)``: a 4-layer Llama (tied embeddings) trained 20 steps on the
    training text, so its attention carries something."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    torch.manual_seed(0)
    teacher = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=0, eos_token_id=0, tie_word_embeddings=True))
    data = token_blocks(tok, training_texts(), 32, 4096)
    opt = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids = data[torch.randint(0, len(data), (8,), generator=gen)]
        opt.zero_grad()
        teacher(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    return teacher.eval(), tok


def _falls(losses: list[float]) -> bool:
    k = max(1, len(losses) // 4)
    return sum(losses[-k:]) / k < sum(losses[:k]) / k


def test_text_split_is_deterministic_and_never_overlaps():
    held = heldout_passages()
    train = list(itertools.islice(training_texts(), 200))
    assert held == heldout_passages() and len(held) >= 10
    held_paras = {p for t in held for p in t.split("\n\n")}
    train_paras = {p for t in train for p in t.split("\n\n")}
    assert not held_paras & train_paras
    assert sum(len(t) for t in held) > 20_000  # English prose, tens of KB


def test_teacher_hooks_capture_the_attention_block(tiny):
    teacher, tok = tiny
    ids = torch.randint(1, len(tok), (2, 16), generator=torch.Generator().manual_seed(1))
    io = teacher_attention_io(teacher, ids, [0, 2])
    layer = teacher.model.layers[2]
    captured = {}

    def grab(_m, args, kwargs):
        captured["x"] = args[0] if args else kwargs["hidden_states"]

    h = layer.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            teacher(input_ids=ids, use_cache=False)
    finally:
        h.remove()
    x, y = io[2]
    torch.testing.assert_close(x, layer.input_layernorm(captured["x"]), rtol=0, atol=0)
    assert y.shape == x.shape == (2, 16, 48) and set(io) == {0, 2}


def test_transfer_lowers_the_losses_and_saves_a_reloadable_student(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    from spikingbrain.models import register

    teacher, tok = tiny
    before = {n: p.clone() for n, p in teacher.named_parameters()}
    res = transfer(teacher, tok, TransferConfig(**SMALL))
    assert list(res.perplexity) == ["teacher", "before transfer", "after attention transfer",
                                    "after distillation"]
    assert all(math.isfinite(v) and v > 1 for v in res.perplexity.values())
    assert res.attention.steps == 12 and len(res.attention.losses) == 12
    assert _falls(res.attention.losses), res.attention.losses
    assert len(res.distillation.losses) == 8
    for name in ("attention transfer", "distillation", "perplexity teacher", "total"):
        assert res.seconds[name] > 0
    assert all(torch.equal(p, before[n]) and p.requires_grad
               for n, p in teacher.named_parameters())
    assert [b.kind for b in res.student.model.layers] == ["gla", "swa", "gla", "swa"]

    save_transfer(res, tmp_path / "out", tok)
    summary = json.loads((tmp_path / "out" / "transfer_summary.json").read_text())
    assert summary["perplexity"] == pytest.approx(res.perplexity)
    assert "| after distillation |" in (tmp_path / "out" / "transfer_summary.md").read_text()
    register()
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = token_blocks(tok, heldout_passages(), 32, 64)
    with torch.no_grad():  # float32 both ways, the same code: bit for bit
        torch.testing.assert_close(back(ids, use_cache=False).logits,
                                   res.student(ids, use_cache=False).logits, rtol=0, atol=0)
    assert back.lm_head.weight.data_ptr() == back.model.embeddings.weight.data_ptr()


def test_only_the_gla_attention_trains_and_fresh_only_keeps_qkvo(tiny):
    teacher, tok = tiny
    cfg = TransferConfig(**{**SMALL, "steps_attn": 2, "fresh_only": True})
    student = build_student(teacher, cfg)
    start = {n: p.clone() for n, p in student.named_parameters()}
    attention_transfer(teacher, student, token_blocks(tok, training_texts(), 32, 512), cfg)
    changed = {n for n, p in student.named_parameters() if not torch.equal(p, start[n])}
    assert changed and all(".attn.gk_proj." in n or ".attn.g_norm." in n for n in changed)
    assert {n.split(".")[2] for n in changed} == {"0", "2"}  # the GLA layers


def test_distillation_lowers_the_kl_from_the_fresh_student(tiny):
    teacher, tok = tiny
    cfg = TransferConfig(**{**SMALL, "steps_distill": 10, "lr_distill": 3e-4, "warmup": 0.0})
    student = build_student(teacher, cfg)
    one_batch = token_blocks(tok, training_texts(), 32, 4 * 32)  # the same 4 blocks each step
    res = distill(teacher, student, one_batch, cfg)
    assert _falls(res.losses) and res.losses[-1] < res.losses[0], res.losses


@pytest.mark.parametrize("bad,match", [
    (dict(seq_len=0), "seq_len"), (dict(steps_attn=-1), "steps_attn"),
    (dict(schedule="step"), "schedule"), (dict(lm_weight=2.0), "lm_weight"),
    (dict(train_tokens=10), "train_tokens"), (dict(lr_attn=float("nan")), "lr_attn"),
])
def test_bad_settings_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        TransferConfig(**bad)


def test_the_transfer_command(tiny, tmp_path):
    from spikingbrain.cli import app

    teacher, tok = tiny
    src = tmp_path / "teacher"
    teacher.save_pretrained(src)
    tok.save_pretrained(src)
    run = CliRunner().invoke
    args = ["--window", "8", "--seq-len", "32", "--batch-size", "2", "--train-tokens", "512",
            "--eval-tokens", "256", "--steps-attn", "2", "--steps-distill", "2"]
    res = run(app, ["transfer", str(src), str(tmp_path / "out"), *args])
    assert res.exit_code == 0, res.output
    assert "after attention transfer" in res.output and "distillation" in res.output
    assert (tmp_path / "out" / "config.json").is_file()
    assert (tmp_path / "out" / "transfer_summary.json").is_file()
    for argv, match in (
        (["transfer", str(tmp_path / "nowhere"), str(tmp_path / "o2")], "no such folder"),
        (["transfer", str(src), str(tmp_path / "o3"), "--attn-layers", "a,b"], "--attn-layers"),
        (["transfer", str(src), str(tmp_path / "o4"), "--dtype", "int8"], "--dtype"),
        (["transfer", str(src), str(src / "inside")], "inside"),
        (["transfer", str(src), str(tmp_path / "o5"), "--seq-len", "0"], "seq_len"),
    ):
        res = run(app, argv)
        assert res.exit_code == 2 and match in res.output, (argv, res.output)


def test_output_scale_fit_starts_each_gla_layer_at_its_least_squares_scale(tiny):
    """The fitted g_norm scale minimises the layer's relative error over that one degree of
    freedom: after the fit, the relative loss is below 1 (the zero output's) and no other
    scale factor does better."""
    from spikingbrain.models._common import Layout
    from spikingbrain.models.gla_swa.layers import Step
    from spikingbrain.models.transfer import build_student, fit_output_scales, gla_layers

    teacher, tok = tiny
    student = build_student(teacher, TransferConfig(sliding_window=8))
    ids = torch.randint(1, len(tok), (4, 32), generator=torch.Generator().manual_seed(2))
    mods = {i: student.model.layers[i].attn for i in gla_layers(student)}
    factors = fit_output_scales(teacher, mods, ids, autocast=False)
    assert set(factors) == set(mods) and all(f > 0 for f in factors.values())
    io = teacher_attention_io(teacher, ids, list(mods), autocast=False)
    step = Step(Layout(0, ids.shape[1]), rope=(None, None))
    with torch.no_grad():
        for i, mod in mods.items():
            x, y = io[i]
            out = mod(x.float(), step)

            def rel(c):
                return float((c * out - y).pow(2).mean() / y.pow(2).mean())

            assert rel(1.0) < 1.0
            assert rel(1.0) <= min(rel(0.9), rel(1.1)) + 1e-9
