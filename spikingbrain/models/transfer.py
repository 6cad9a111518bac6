"""Conversion by training (report section 3): a pretrained Qwen2- or Llama-style causal LM
becomes a SpikingBrain-7B-architecture hybrid, and the hybrid is then trained to behave like it.

1. **Build** (:func:`~spikingbrain.models.from_transformer`): every weight is reused; the
   layers outside ``attn_layers`` become gated linear attention (GLA) with fresh gate
   projections ``gk_proj`` and output norms ``g_norm``; the others keep softmax attention
   over a sliding window.
2. **Attention transfer** (:func:`attention_transfer`): each GLA layer ``i`` is trained alone
   to reproduce the teacher's attention output at layer ``i`` from the teacher's own input to
   that attention (after its input norm), with the MSE normalised by the target's mean square.
   The inputs and targets come from one teacher forward with hooks, so every GLA layer trains
   in parallel and no student forward is needed (layer-local).
3. **Distillation** (:func:`distill`): the whole student on the teacher's logits, KL divergence
   at temperature ``T`` (times ``T^2``), optionally mixed with the next-token loss.
4. **Perplexity** (:func:`perplexity`) on held-out text before transfer, after each step, and of
   the teacher, with each step's wall time (:func:`transfer` runs everything).

Text (:func:`text_split`): held-out passages of the Python language reference
(``pydoc_data.topics``: topics in sorted order whose index is 1 mod 4, paragraphs that several
topics share used once and only on the held-out side); training text: the other topics plus
standard-library docstrings. Both are English prose that ships with Python, a few MB in all.

>>> import torch
>>> from transformers import LlamaConfig, LlamaForCausalLM
>>> torch.manual_seed(0) is not None
True
>>> teacher = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48,
...     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
>>> ids = torch.randint(0, 50, (8, 16))
>>> cfg = TransferConfig(sliding_window=8, seq_len=16, batch_size=4, steps_attn=6,
...                      steps_distill=0, lr_attn=3e-3)
>>> student = build_student(teacher, cfg)
>>> res = attention_transfer(teacher, student, ids, cfg)
>>> res.steps, res.losses[-1] < res.losses[0]
(6, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PhaseResult", "TransferConfig", "TransferResult", "attention_transfer",
           "build_student", "distill", "gla_layers", "heldout_passages", "perplexity",
           "save_transfer", "text_split", "token_blocks", "training_texts", "transfer"]

SCHEDULES = ("cosine", "linear", "constant")
DISTILL_PARAMS = ("all", "attention", "gla")


@dataclass
class TransferConfig:
    """Every setting of a conversion by training (see the module docstring).

    Attributes:
        sliding_window: window of the softmax layers (a query sees ``w + 1`` keys).
        attn_layers: layers that stay softmax attention (None: the odd ones); the rest are GLA.
        seq_len, batch_size: training and evaluation blocks ``[batch_size, seq_len]``.
        train_tokens: training tokens taken from the text (None: all of it).
        eval_tokens: held-out tokens for the perplexities (None: all of them).
        steps_attn, steps_distill: optimiser steps of each training step (0 skips it).
        lr_attn, lr_distill: peak AdamW learning rates; ``warmup`` is the fraction of steps
            with a linear warm-up, then ``schedule`` (cosine, linear or constant) decays.
        weight_decay, clip: AdamW weight decay and the gradient-norm clip (0: none).
        fresh_only: attention transfer trains only the fresh ``gk_proj`` and ``g_norm`` (not
            the reused q/k/v/o).
        distill_params: what the distillation trains: ``all`` parameters, every layer's
            ``attention`` (GLA and softmax), or the ``gla`` attention alone (less to overfit
            on little text).
        temperature, lm_weight: distillation loss ``(1 - a) T^2 KL + a CE`` with ``a`` the
            ``lm_weight``.
        max_seconds: wall-time budget of the two training steps together (None: no limit);
            after seven steps the step counts are cut so that each finishes in its share
            (``attn_share`` for the attention transfer, the rest for distillation).
        autocast: bf16 autocast on CUDA (training and perplexities of both models).
        seed: of the fresh parameters and the batch order.
    """

    sliding_window: int = 256
    attn_layers: list[int] | None = None
    seq_len: int = 512
    batch_size: int = 8
    train_tokens: int | None = None
    eval_tokens: int | None = 65536
    steps_attn: int = 400
    steps_distill: int = 400
    lr_attn: float = 1e-3
    lr_distill: float = 1e-4
    warmup: float = 0.05
    schedule: str = "cosine"
    weight_decay: float = 0.0
    clip: float = 1.0
    fresh_only: bool = False
    distill_params: str = "all"
    temperature: float = 2.0
    lm_weight: float = 0.0
    max_seconds: float | None = None
    attn_share: float = 0.5
    autocast: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sliding_window", "seq_len", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps_attn", "steps_distill"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0 (0 skips the step), got "
                                 f"{getattr(self, name)}")
        for name in ("train_tokens", "eval_tokens"):
            v = getattr(self, name)
            if v is not None and int(v) < self.seq_len:
                raise ValueError(f"{name} must be at least seq_len ({self.seq_len}) or None "
                                 f"(all the text), got {v}")
        for name in ("lr_attn", "lr_distill", "temperature"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        for name in ("warmup", "lm_weight", "attn_share"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {v}")
        if self.weight_decay < 0 or self.clip < 0:
            raise ValueError(f"weight_decay and clip must be >= 0 (clip 0 = off), got "
                             f"{self.weight_decay} and {self.clip}")
        if self.distill_params not in DISTILL_PARAMS:
            raise ValueError(f"distill_params must be one of {DISTILL_PARAMS}, got "
                             f"{self.distill_params!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 or None (no limit), got "
                             f"{self.max_seconds}")


@dataclass
class PhaseResult:
    """One training step: optimiser steps done (after any cut by the time budget), the loss
    of each step, and the wall time in seconds."""

    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class TransferResult:
    """What :func:`transfer` returns: the trained student, the perplexity table (rows
    ``teacher``, ``before transfer``, ``after attention transfer``, ``after distillation``),
    the phases, every timing (seconds) and the token counts."""

    student: nn.Module
    perplexity: dict[str, float]
    attention: PhaseResult
    distillation: PhaseResult
    seconds: dict[str, float]
    tokens: dict[str, int]
    config: TransferConfig

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no tensors)."""
        t = self.perplexity["teacher"]
        return {"perplexity": self.perplexity,
                "ratio_to_teacher": {k: v / t for k, v in self.perplexity.items()},
                "seconds": self.seconds, "tokens": self.tokens,
                "attention_transfer": {"steps": self.attention.steps,
                                       "first_loss": _first(self.attention.losses),
                                       "last_loss": _last(self.attention.losses)},
                "distillation": {"steps": self.distillation.steps,
                                 "first_loss": _first(self.distillation.losses),
                                 "last_loss": _last(self.distillation.losses)},
                "config": asdict(self.config)}

    def markdown(self) -> str:
        """The perplexity table and the timings as Markdown."""
        t = self.perplexity["teacher"]
        lines = ["| model | perplexity | x teacher |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {v:.3f} | {v / t:.3f} |" for k, v in self.perplexity.items()]
        lines += ["", "| step | seconds |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.1f} |" for k, v in self.seconds.items()]
        return "\n".join(lines) + "\n"


def _first(x: list[float]) -> float | None:
    return x[0] if x else None


def _last(x: list[float]) -> float | None:
    return x[-1] if x else None


# ---- text ----------------------------------------------------------------------------------
#: folders of the standard library whose files give no training text (tests, IDLE, bundled
#: packages)
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "idlelib",
              "ensurepip", "lib2to3", "turtledemo", "__pycache__"}


def heldout_passages() -> list[str]:
    """Held-out text: :func:`spikingbrain.data_llm.pydoc_passages` ``("heldout")``, the same
    passages the LLM fidelity benchmark scores (deterministic for a given Python version)."""
    from spikingbrain.data_llm import pydoc_passages

    return pydoc_passages("heldout")


def training_texts() -> Iterator[str]:
    """Training text, lazily, in a fixed order: the calibration passages of ``pydoc_data`` (no paragraph
    that a held-out topic contains), then the docstrings (module, class, function; prose
    paragraphs only, over 80 characters) of every standard-library source file outside tests
    and bundled packages, files in sorted order. Nothing is imported: the files are parsed."""
    import ast
    import sysconfig
    from pathlib import Path

    from spikingbrain.data_llm import prose_paragraphs, pydoc_passages

    yield from pydoc_passages("calibration")  # no paragraph a held-out passage holds
    held = {p for t in heldout_passages() for p in t.split("\n\n")}
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree) if isinstance(
            n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in nodes:
            doc = ast.get_docstring(node)
            paras = [p for p in prose_paragraphs(doc or "", drop_titles=False)
                     if p not in held]
            text = "\n\n".join(paras)
            if len(text) > 80:
                yield text


def text_split() -> tuple[list[str], list[str]]:
    """``(all training texts, held-out passages)`` (see :func:`training_texts` and
    :func:`heldout_passages`); no paragraph is on both sides."""
    return list(training_texts()), heldout_passages()


def token_blocks(tokenizer: Any, texts: Iterable[str], seq_len: int,
                 max_tokens: int | None = None) -> torch.Tensor:
    """``[N, seq_len]`` int64 blocks of the texts' tokens, concatenated with the tokenizer's
    end-of-sequence (or separator) token between texts; texts are read in order until
    ``max_tokens`` are gathered, and a partial last block is dropped.

    Raises ValueError when the texts give less than one block.
    """
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else \
        getattr(tokenizer, "sep_token_id", None)
    ids: list[int] = []
    limit = max_tokens if max_tokens is not None else math.inf
    for text in texts:
        if len(ids) >= limit:
            break
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if sep is not None:
            ids.append(int(sep))
    n = int(min(len(ids), limit)) // seq_len
    if n == 0:
        raise ValueError(f"the text gives {len(ids)} tokens, fewer than one block of "
                         f"seq_len={seq_len}: give a shorter --seq-len")
    return torch.tensor(ids[:n * seq_len], dtype=torch.int64).view(n, seq_len)


# ---- models --------------------------------------------------------------------------------
def build_student(teacher: nn.Module, config: TransferConfig, *,
                  device: torch.device | str | None = None) -> nn.Module:
    """The hybrid student: :func:`from_transformer` of ``teacher`` with the config's window
    and softmax layers, in float32 (its master weights), trainable."""
    from spikingbrain.models.from_transformer import from_transformer

    attn = config.attn_layers
    if attn is None:
        attn = list(range(1, teacher.config.num_hidden_layers, 2))
    return from_transformer(teacher, sliding_window=config.sliding_window, attn_layers=attn,
                            seed=config.seed, dtype=torch.float32, device=device).train()


def gla_layers(student: nn.Module) -> list[int]:
    """Indices of the student's GLA layers."""
    return [i for i, b in enumerate(student.model.layers) if b.kind == "gla"]


def _teacher_attention(teacher: nn.Module, i: int) -> nn.Module:
    try:
        return teacher.model.layers[i].self_attn
    except (AttributeError, IndexError):
        raise TypeError(f"the teacher {type(teacher).__name__} has no model.layers[{i}]."
                        "self_attn: it is not a Qwen2- or Llama-style causal LM") from None


def _autocast(device: torch.device, on: bool):
    import contextlib

    if on and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def teacher_attention_io(teacher: nn.Module, ids: torch.Tensor, layers: list[int],
                         autocast: bool = True) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """For every layer in ``layers``: ``(input of the teacher's attention after its input
    norm, the attention's output before the residual)``, both ``[B, L, hidden]``, from one
    teacher forward on ``ids [B, L]``."""
    got: dict[int, list[torch.Tensor]] = {i: [] for i in layers}

    def pre(i):
        def hook(_m, args, kwargs):
            got[i].append(args[0] if args else kwargs["hidden_states"])
        return hook

    def post(i):
        def hook(_m, _args, out):
            got[i].append(out[0] if isinstance(out, tuple) else out)
        return hook

    hs = []
    for i in layers:
        m = _teacher_attention(teacher, i)
        hs += [m.register_forward_pre_hook(pre(i), with_kwargs=True),
               m.register_forward_hook(post(i))]
    try:
        with _autocast(ids.device, autocast):
            teacher(input_ids=ids, use_cache=False)
    finally:
        for h in hs:
            h.remove()
    return {i: (v[0], v[1]) for i, v in got.items()}


# ---- training ------------------------------------------------------------------------------
def _lr_factor(step: int, total: int, warmup: float, schedule: str) -> float:
    """Learning-rate multiplier at ``step`` (0-based) of ``total``."""
    w = int(round(warmup * total))
    if step < w:
        return (step + 1) / w
    if schedule == "constant" or total <= w + 1:
        return 1.0
    p = (step - w) / (total - w - 1)
    return 0.5 * (1 + math.cos(math.pi * p)) if schedule == "cosine" else 1.0 - p


def _batches(data: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Shuffled batches, an endless cycle of epochs (each epoch a new permutation)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(data.shape[0], generator=gen)
        for s in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1,
                       batch_size):
            yield data[order[s:s + batch_size]]


def _train(params: list[nn.Parameter], data: torch.Tensor, steps: int, lr: float,
           config: TransferConfig, budget: float | None, device: torch.device,
           loss_fn: Callable[[torch.Tensor], float], log: Callable[[str], None] | None,
           name: str) -> PhaseResult:
    """AdamW steps of ``loss_fn`` (which computes the loss of a batch, calls backward and
    returns its value); the step count is cut to fit ``budget`` seconds once steps 3 to 7
    are timed (the first two warm up: kernel compilation, allocator)."""
    res = PhaseResult(steps=steps)
    if steps == 0:
        return res
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay,
                            betas=(0.9, 0.95))
    batches = _batches(data, config.batch_size, config.seed)
    t0 = time.perf_counter()
    step = 0
    while step < res.steps:
        for g in opt.param_groups:
            g["lr"] = lr * _lr_factor(step, res.steps, config.warmup, config.schedule)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(next(batches).to(device))
        if config.clip:
            torch.nn.utils.clip_grad_norm_(params, config.clip)
        opt.step()
        res.losses.append(loss)
        step += 1
        if budget is not None and step in (2, 7):  # steps 3-7 timed (2 warm-ups): fit
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            if step == 2:
                t2 = now
            else:
                per = (now - t2) / 5
                res.steps = max(step, min(res.steps, step + int((budget - (now - t0)) / per)))
        if log is not None and (step % max(1, res.steps // 10) == 0 or step == res.steps):
            log(f"{name}: step {step}/{res.steps} loss {loss:.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    res.seconds = time.perf_counter() - t0
    return res


@torch.no_grad()
def fit_output_scales(teacher: nn.Module, mods: dict[int, nn.Module], ids: torch.Tensor,
                      autocast: bool = True) -> dict[int, float]:
    """Before training: scale each GLA layer's ``g_norm`` weight by the least-squares factor
    ``<out, y> / <out, out>`` between its output and the teacher's attention output on
    ``ids``. The output is linear in that weight (RMS norm, then ``o_proj``), so this is the
    best start of that one degree of freedom: a fresh GLA's output has unit RMS per head
    before ``o_proj``, where the teacher's (a softmax average of values) is usually far
    smaller, and the first relative loss would be far above 1. Returns the factors."""
    from spikingbrain.models._common import Layout
    from spikingbrain.models.gla_swa.layers import Step

    io = teacher_attention_io(teacher, ids, list(mods), autocast)
    step = Step(Layout(0, ids.shape[1]), rope=(None, None))
    factors = {}
    for i, mod in mods.items():
        x, y = io.pop(i)
        out = mod(x.float(), step).float()
        y = y.float()
        f = float((out * y).sum() / (out * out).sum().clamp_min(1e-30))
        if math.isfinite(f) and f > 0:
            mod.g_norm.weight.mul_(f)
            factors[i] = f
    return factors


def attention_transfer(teacher: nn.Module, student: nn.Module, data: torch.Tensor,
                       config: TransferConfig, *, budget: float | None = None,
                       log: Callable[[str], None] | None = None) -> PhaseResult:
    """Train every GLA layer of ``student`` to reproduce the teacher's attention output at
    the same layer from the teacher's input to it (layer-local, all layers from one teacher
    forward per batch); ``data [N, seq_len]`` token blocks. The loss of a step is the mean
    over GLA layers of ``mean((gla(x) - y)^2) / mean(y^2)``; each layer's graph is freed as
    soon as its gradient is taken. Only the GLA attention parameters change (all of them, or
    ``gk_proj`` and ``g_norm`` alone with ``config.fresh_only``)."""
    from spikingbrain.models._common import Layout
    from spikingbrain.models.gla_swa.layers import Step

    layers = gla_layers(student)
    if not layers:
        raise ValueError("the student has no GLA layer to train: give attn_layers that leave "
                         "some layers to linear attention")
    device = next(student.parameters()).device
    mods = {i: student.model.layers[i].attn for i in layers}
    params = [p for m in mods.values() for n, p in m.named_parameters()
              if not config.fresh_only or n.startswith(("gk_proj", "g_norm"))]
    teacher.eval()
    student.train()
    if len(data):
        fit_output_scales(teacher, mods, data[: config.batch_size].to(device), config.autocast)

    def loss_fn(ids: torch.Tensor) -> float:
        io = teacher_attention_io(teacher, ids, layers, config.autocast)
        step = Step(Layout(0, ids.shape[1]), rope=(None, None))  # GLA uses no RoPE
        total = 0.0
        for i in layers:
            x, y = io.pop(i)
            with _autocast(device, config.autocast):
                out = mods[i](x.float(), step)
            y = y.float()
            loss = (out.float() - y).pow(2).mean() / y.pow(2).mean().clamp_min(1e-12)
            (loss / len(layers)).backward()
            total += float(loss.detach()) / len(layers)
        return total

    return _train(params, data, config.steps_attn, config.lr_attn, config, budget, device,
                  loss_fn, log, "attention transfer")


def distill(teacher: nn.Module, student: nn.Module, data: torch.Tensor, config: TransferConfig,
            *, budget: float | None = None, log: Callable[[str], None] | None = None
            ) -> PhaseResult:
    """Train the whole student on the teacher's logits: ``(1 - a) T^2 KL(p_T || q_T) + a CE``
    per token (``p``, ``q`` the teacher's and student's softmax at temperature ``T``; ``a``
    the ``lm_weight``; CE the next-token loss), training ``config.distill_params``."""
    device = next(student.parameters()).device
    T, a = config.temperature, config.lm_weight
    teacher.eval()
    student.train()

    def loss_fn(ids: torch.Tensor) -> float:
        with torch.no_grad(), _autocast(device, config.autocast):
            t_logits = teacher(input_ids=ids, use_cache=False).logits
        with _autocast(device, config.autocast):
            s_logits = student(input_ids=ids, use_cache=False).logits
        s = s_logits.float().flatten(0, 1)
        kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t_logits.float().flatten(0, 1) / T,
                      -1), log_target=True, reduction="batchmean") * T * T
        loss = (1 - a) * kl
        if a:
            loss = loss + a * F.cross_entropy(s_logits[:, :-1].flatten(0, 1).float(),
                                              ids[:, 1:].flatten())
        loss.backward()
        return float(loss.detach())

    gla = {f"model.layers.{i}.attn." for i in gla_layers(student)}
    scope = config.distill_params
    params = [p for n, p in student.named_parameters() if p.requires_grad and (
        scope == "all" or (scope == "attention" and ".attn." in n)
        or (scope == "gla" and n.startswith(tuple(gla))))]
    return _train(params, data,
                  config.steps_distill, config.lr_distill, config, budget, device, loss_fn, log,
                  "distillation")


@torch.no_grad()
def perplexity(model: nn.Module, data: torch.Tensor, batch_size: int = 8,
               autocast: bool = True) -> float:
    """``exp`` of the mean next-token cross entropy over ``data [N, L]`` blocks (each block
    alone, ``N * (L - 1)`` predictions), computed in float32 from the logits."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    nll, n = 0.0, 0
    try:
        for s in range(0, data.shape[0], batch_size):
            ids = data[s:s + batch_size].to(device)
            with _autocast(device, autocast):
                logits = model(input_ids=ids, use_cache=False).logits
            nll += float(F.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                         ids[:, 1:].flatten(), reduction="sum"))
            n += ids[:, 1:].numel()
    finally:
        model.train(was)
    return math.exp(nll / n)


def transfer(teacher: nn.Module, tokenizer: Any, config: TransferConfig | None = None, *,
             device: torch.device | str | None = None,
             log: Callable[[str], None] | None = None) -> TransferResult:
    """The whole conversion by training (module docstring): text, student, perplexity of the
    teacher and of the student before transfer, attention transfer, perplexity, distillation,
    perplexity. ``device``: where to train (default: the teacher's); the teacher is moved
    there and left unchanged (its ``requires_grad`` flags are restored)."""
    config = config or TransferConfig()
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[name] = time.perf_counter() - t
        if log is not None:
            log(f"{name}: {seconds[name]:.1f} s")
        return out

    train = timed("text", lambda: token_blocks(tokenizer, training_texts(), config.seq_len,
                                               config.train_tokens))
    held = token_blocks(tokenizer, heldout_passages(), config.seq_len, config.eval_tokens)
    teacher = teacher.to(device).eval()
    grads = [(p, p.requires_grad) for p in teacher.parameters()]
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        return _transfer(teacher, tokenizer, config, device, log, train, held, seconds, t_all,
                         timed)
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)


def _transfer(teacher, tokenizer, config, device, log, train, held, seconds, t_all, timed
              ) -> TransferResult:
    student = timed("build student", lambda: build_student(teacher, config, device=device))
    ppl: dict[str, float] = {}
    bs = config.batch_size
    ppl["teacher"] = timed("perplexity teacher",
                           lambda: perplexity(teacher, held, bs, config.autocast))
    ppl["before transfer"] = timed("perplexity before transfer",
                                   lambda: perplexity(student, held, bs, config.autocast))
    budget_attn = budget_distill = None
    if config.max_seconds is not None:  # what is left after two more evaluations
        left = config.max_seconds - (time.perf_counter() - t_all) - \
            2 * seconds["perplexity before transfer"]
        left = max(left, 1.0)
        budget_attn = left * config.attn_share if config.steps_distill else left
        budget_distill = left - budget_attn if config.steps_attn else left
    attn = attention_transfer(teacher, student, train, config, budget=budget_attn, log=log)
    seconds["attention transfer"] = attn.seconds
    ppl["after attention transfer"] = timed(
        "perplexity after attention transfer",
        lambda: perplexity(student, held, bs, config.autocast))
    if budget_distill is not None and budget_attn is not None and config.steps_distill:
        budget_distill += max(0.0, budget_attn - attn.seconds)  # time the first step left
    dist = distill(teacher, student, train, config, budget=budget_distill, log=log)
    seconds["distillation"] = dist.seconds
    ppl["after distillation"] = timed("perplexity after distillation",
                                      lambda: perplexity(student, held, bs, config.autocast))
    seconds["total"] = time.perf_counter() - t_all
    tokens = {"train": int(train.numel()), "heldout": int(held.numel()),
              "seq_len": config.seq_len,
              "attention_transfer_seen": attn.steps * bs * config.seq_len,
              "distillation_seen": dist.steps * bs * config.seq_len}
    return TransferResult(student.eval(), ppl, attn, dist, seconds, tokens, config)


def save_transfer(result: TransferResult, out_dir: Any, tokenizer: Any = None) -> None:
    """Write the student (``save_pretrained``), the tokenizer and ``transfer_summary.json`` /
    ``.md`` to ``out_dir``, all or nothing; a non-empty ``out_dir`` is replaced only when it
    holds an earlier ``transfer_summary.json``."""
    import json
    from pathlib import Path

    from spikingbrain.utils.atomic import atomic_folder

    with atomic_folder(out_dir, replaceable=lambda p: (p / SUMMARY).is_file()) as tmp:
        result.student.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (Path(tmp) / SUMMARY).write_text(json.dumps(result.summary(), indent=2) + "\n")
        (Path(tmp) / "transfer_summary.md").write_text(result.markdown())


#: the summary file a transfer output folder holds
SUMMARY = "transfer_summary.json"
