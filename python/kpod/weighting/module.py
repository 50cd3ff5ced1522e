"""The keypoint token-weighting module (kpod-method section 2, Eqs. 2-7).

``WeightGenerator`` scores rationale tokens: frozen student input embeddings,
one self-attention layer over the rationale, a two-layer MLP and a sigmoid
(Eqs. 2-3). ``KeypointWeighting`` adds what training needs: hard
straight-through Gumbel-softmax keep masks (Eq. 4), one learned mask
embedding that replaces dropped tokens, and the answer predictor, a causal LM
sharing the student's tokenizer (optionally only its first L layers) that
reads the question and each masked rationale prefix and predicts the answer
(Eq. 5). Only the generator (plus the mask vector) is needed after training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kpod.data.prepared import ANSWER_PART, PAD, PROMPT
from kpod.weighting.losses import combined_loss, gumbel_keep_mask, mask_loss, prefix_answer_loss

CONFIG_FILE = "weighting_config.json"
WEIGHTS_FILE = "weighting.safetensors"
PREDICTOR_DIR = "predictor"

# step_ids values of the prepared-example contract (kpod.data.prepared).
ANSWER = ANSWER_PART


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of a tokenizer's vocabulary and special tokens.

    Two tokenizers with the same fingerprint map text to the same ids, so a
    module trained with one can score a dataset prepared with the other.
    """
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []))
    blob = json.dumps([vocab, special], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass
class ModuleConfig:
    """Architecture and provenance of a weighting module (saved as JSON)."""

    vocab_size: int
    embed_dim: int
    hidden_size: int = 256
    num_heads: int = 4
    tau: float = 1.0
    init_keep: float = 0.5
    max_prefixes: int | None = None
    student: str = ""
    predictor: str = ""
    predictor_layers: int | None = None
    tokenizer_fingerprint: str = ""
    # Soft bound b on the generator's logits, z = b * tanh(z_raw / b): keeps w in
    # [sigmoid(-b), sigmoid(b)] so a token pushed out can come back (the Gumbel
    # straight-through gradient vanishes as w(1 - w) at saturation). None: unbounded
    # (modules saved before the bound existed).
    logit_bound: float | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModuleConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _sinusoid(length: int, dim: int, device: torch.device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, dim, 2, device=device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * i / dim)
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


class WeightGenerator(nn.Module):
    """w = sigmoid(f_w(Att(Emb(r)))) over the rationale tokens (Eqs. 2-3).

    ``Emb`` is a frozen copy of the student's input embedding matrix. The
    attention layer sees rationale tokens only (keys outside the rationale are
    masked), with sinusoidal positions added after the input projection.
    """

    def __init__(self, config: ModuleConfig, embeddings: torch.Tensor | None = None) -> None:
        super().__init__()
        self.module_config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        if embeddings is not None:
            if tuple(embeddings.shape) != (config.vocab_size, config.embed_dim):
                raise ValueError(
                    f"embedding matrix {tuple(embeddings.shape)} does not match "
                    f"vocab_size={config.vocab_size}, embed_dim={config.embed_dim}"
                )
            with torch.no_grad():
                self.embed.weight.copy_(embeddings.detach().float())
        self.embed.weight.requires_grad_(False)
        h = config.hidden_size
        self.proj = nn.Linear(config.embed_dim, h)
        self.norm = nn.LayerNorm(h)
        self.attn = nn.MultiheadAttention(h, config.num_heads, batch_first=True)
        out = nn.Linear(h, 1)
        keep = min(max(config.init_keep, 1e-4), 1 - 1e-4)
        with torch.no_grad():
            out.bias.fill_(math.log(keep / (1 - keep)))
        self.mlp = nn.Sequential(nn.Linear(h, h), nn.GELU(), out)

    def forward(self, input_ids: torch.Tensor, rationale_mask: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores z ``[B, T]``; only rationale positions are meaningful."""
        # Standardise the frozen embeddings first: their scale differs a lot
        # between models and would otherwise drown in the position signal.
        emb = self.embed(input_ids)
        emb = nn.functional.layer_norm(emb, emb.shape[-1:])
        x = self.proj(emb)
        x = x + _sinusoid(x.shape[1], x.shape[2], x.device).to(x.dtype)
        # Rows without any rationale key would give NaN; callers validate
        # examples first, this only guards padding rows.
        key_pad = ~rationale_mask.bool()
        key_pad = key_pad & key_pad.logical_not().any(dim=1, keepdim=True)
        y = self.norm(x)
        a, _ = self.attn(y, y, y, key_padding_mask=key_pad, need_weights=False)
        e = x + a
        z = self.mlp(e).squeeze(-1)
        bound = self.module_config.logit_bound
        return z if bound is None else bound * torch.tanh(z / bound)

    def weights(self, input_ids: torch.Tensor, step_ids: torch.Tensor) -> torch.Tensor:
        """Sigmoid weights w_j for rationale tokens, 1.0 elsewhere."""
        rationale = step_ids >= 0
        w = torch.sigmoid(self.forward(input_ids, rationale).float())
        return torch.where(rationale, w, torch.ones_like(w))


def truncate_layers(model: Any, n_layers: int) -> Any:
    """Keep only the first ``n_layers`` decoder layers of a causal LM (in place)."""
    base = getattr(model, model.base_model_prefix, model)
    for name in ("layers", "h", "blocks"):
        layers = getattr(base, name, None)
        if isinstance(layers, nn.ModuleList):
            break
    else:
        raise ValueError(
            f"cannot find the decoder layers of {type(model).__name__} to keep the first "
            f"{n_layers}; pass predictor_layers=None to use the whole model"
        )
    if not 1 <= n_layers <= len(layers):
        raise ValueError(f"predictor_layers must be in 1..{len(layers)}, got {n_layers}")
    setattr(base, name, nn.ModuleList(list(layers)[:n_layers]))
    cfg = model.config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(cfg, attr):
            setattr(cfg, attr, n_layers)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[:n_layers]
    return model


def prefix_boundaries(n_steps: int, max_prefixes: int | None) -> list[int]:
    """Step counts k (1..n) of the prefixes r_<k used by L_p.

    All boundaries by default ([kpod decision] prefixes end at step
    boundaries). With a cap, evenly spaced boundaries that always include the
    full rationale (k = n).
    """
    if n_steps < 1:
        raise ValueError("an example needs at least one rationale step")
    ks = list(range(1, n_steps + 1))
    if max_prefixes is None or max_prefixes >= n_steps:
        return ks
    if max_prefixes < 1:
        raise ValueError(f"max_prefixes must be >= 1 or None, got {max_prefixes}")
    picks = {round(n_steps - i * n_steps / max_prefixes) for i in range(max_prefixes)}
    return sorted(k for k in picks if k >= 1)


def check_example(step_ids: Sequence[int], answer_mask: Sequence[int], name: str) -> None:
    """Raise a ValueError naming the example if it cannot train the module."""
    if len(step_ids) != len(answer_mask):
        raise ValueError(
            f"example {name}: step_ids has {len(step_ids)} entries but answer_mask has "
            f"{len(answer_mask)}; both must align with input_ids"
        )
    if not any(s >= 0 for s in step_ids):
        raise ValueError(
            f"example {name}: the rationale has no steps (no token with step_ids >= 0); "
            "drop it or fix its rationale before training or scoring"
        )
    if not any(answer_mask):
        raise ValueError(
            f"example {name}: answer_mask marks no answer tokens, so the answer loss is "
            "undefined; check the answer field"
        )


class KeypointWeighting(nn.Module):
    """Weight generator + mask embedding + answer predictor, trained with Eq. 7."""

    def __init__(
        self,
        config: ModuleConfig,
        embeddings: torch.Tensor | None = None,
        predictor: Any = None,
        *,
        alpha: float = 0.5,
    ) -> None:
        super().__init__()
        self.module_config = config
        self.alpha = alpha
        self.generator = WeightGenerator(config, embeddings)
        self.predictor = predictor
        dim = config.embed_dim
        if predictor is not None:
            emb = predictor.get_input_embeddings().weight
            if emb.shape[0] < config.vocab_size:
                raise ValueError(
                    f"the answer predictor's vocabulary ({emb.shape[0]}) is smaller than the "
                    f"student's ({config.vocab_size}); it must share the student's tokenizer"
                )
            dim = emb.shape[1]
            init = emb.detach().float().mean(dim=0)
        else:
            init = torch.zeros(dim)
        self.mask_embedding = nn.Parameter(init.clone())
        # During predictor warm-up masks are random and only L_p is trained.
        self.warming_up = False
        # One packed forward per example for all prefixes (False: one per prefix).
        self.pack_prefixes = True

    # -- training forward -------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        step_ids: torch.Tensor,
        answer_mask: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        mask_mode: str | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        """Eq. 7's parts for a batch of prepared examples.

        ``mask_mode`` picks the keep masks: ``gumbel`` (Eq. 4, the training
        default), ``threshold`` (w > 0.5, the evaluation default), ``random``
        (a random rate per example: predictor adaptation), ``keep_all`` and
        ``mask_all`` (the informativeness gates).
        """
        if self.predictor is None:
            raise RuntimeError(
                "this weighting module was loaded without its answer predictor; it can score "
                "tokens but not train (load with predictor=...)"
            )
        rationale = step_ids >= 0
        z = self.generator(input_ids, rationale)
        mode = mask_mode or (
            "random" if self.warming_up else ("gumbel" if self.training else "threshold")
        )
        if mode == "random":
            # Random masks at a random rate per example, so the predictor learns
            # to read the mask embedding before the masks start to mean anything.
            rate = torch.rand(z.shape[0], 1, device=z.device)
            keep = (torch.rand_like(z) < rate).to(z.dtype)
        elif mode == "gumbel":
            keep = gumbel_keep_mask(z, self.module_config.tau, hard=True)
        elif mode == "threshold":
            keep = (z > 0).to(z.dtype)
        elif mode == "keep_all":
            keep = torch.ones_like(z)
        elif mode == "mask_all":
            keep = torch.zeros_like(z)
        else:
            raise ValueError(
                f"mask_mode must be gumbel, threshold, random, keep_all or mask_all, got {mode!r}"
            )
        keep = torch.where(rationale, keep, torch.ones_like(keep))
        l_m = mask_loss(keep, rationale)

        emb_layer = self.predictor.get_input_embeddings()
        emb = emb_layer(input_ids)
        k = keep.to(emb.dtype)[..., None]
        masked = k * emb + (1 - k) * self.mask_embedding.to(emb.dtype)

        l_p = self.prefix_loss(masked, input_ids, step_ids, answer_mask)
        loss = l_p if mode == "random" else combined_loss(l_p, l_m, self.alpha)
        n_r = rationale.sum().clamp(min=1)
        soft_keep = (torch.sigmoid(z.detach().float()) * rationale).sum() / n_r
        return {
            "loss": loss,
            "prefix_loss": l_p.detach(),
            "mask_loss": l_m.detach(),
            "mean_weight": soft_keep,
            "kept_soft": l_m,  # L_m with its gradient (target_keep's penalty)
        }

    def prefix_loss(
        self,
        masked: torch.Tensor,
        input_ids: torch.Tensor,
        step_ids: torch.Tensor,
        answer_mask: torch.Tensor,
    ) -> torch.Tensor:
        """L_p (Eq. 5) of already masked input embeddings ``[B, T, D]``.

        Packed (``pack_prefixes``, the default): one forward per example over
        the prompt and the whole masked rationale, with the answer part
        appended once per prefix and a block attention mask, so each answer
        copy sees exactly its prefix (docs/weighting.md). Otherwise one
        sequence per prefix, the reference the packed form is tested against.
        """
        if self.pack_prefixes:
            logprobs, amask, owner = self._packed_answer_logprobs(
                masked, input_ids, step_ids, answer_mask
            )
        else:
            seqs, ids, ans, owner = self._prefix_sequences(masked, input_ids, step_ids, answer_mask)
            logprobs, amask = self._answer_logprobs(seqs, ids, ans)
        return prefix_answer_loss(logprobs, amask, owner)

    def _packed_answer_logprobs(
        self,
        masked: torch.Tensor,
        input_ids: torch.Tensor,
        step_ids: torch.Tensor,
        answer_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Answer log-probabilities of every prefix from one packed forward per example.

        Row b holds ``prompt, step 0, ..., step n-1`` (the masked rationale, in
        order) followed by one copy of the answer part per boundary k. Base
        tokens attend causally; copy k attends to the first L_k base tokens
        (prompt + steps < k) and causally to itself, with positions L_k, L_k + 1,
        ..., as if it followed the prefix directly. The result is laid out as
        :meth:`_answer_logprobs` lays out the unpacked prefixes (one row per
        prefix, answer-part positions as columns).
        """
        device = masked.device
        sid_all = step_ids.tolist()
        rows: list[tuple[int, int, int, list[int]]] = []  # (b, base_len, ans_len, L_k per copy)
        for b, sid in enumerate(sid_all):
            n_tok = sum(1 for s in sid if s != PAD)
            base_len = next((i for i, s in enumerate(sid) if s == ANSWER), n_tok)
            n_steps = max(s for s in sid[:base_len]) + 1
            starts = {}
            for i, s in enumerate(sid[:base_len]):
                if s >= 0 and s not in starts:
                    starts[s] = i
            ks = prefix_boundaries(n_steps, self.module_config.max_prefixes)
            lens = [starts.get(k, base_len) for k in ks]
            rows.append((b, base_len, n_tok - base_len, lens))
        width = max(base + ans * len(lens) for _, base, ans, lens in rows)
        n_prefix = sum(len(lens) for *_, lens in rows)
        max_ans = max(ans for _, _, ans, _ in rows)
        bsz = len(rows)
        pos = torch.zeros(bsz, width, dtype=torch.long)
        allow = torch.zeros(bsz, width, width, dtype=torch.bool)
        gather_src = torch.zeros(bsz, width, dtype=torch.long)  # source column in the batch
        # answer targets: (row, predicting position, source column, prefix index, slot)
        t_row: list[int] = []
        t_pred: list[int] = []
        t_src: list[int] = []
        t_prefix: list[int] = []
        t_slot: list[int] = []
        am = answer_mask.tolist()
        p_index = 0
        owner: list[int] = []
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        for b, base, ans, lens in rows:
            allow[b, :base, :base] = causal[:base, :base]
            pos[b, :base] = torch.arange(base)
            gather_src[b, :base] = torch.arange(base)
            for c, lk in enumerate(lens):
                s0 = base + c * ans
                allow[b, s0 : s0 + ans, :lk] = True
                allow[b, s0 : s0 + ans, s0 : s0 + ans] = causal[:ans, :ans]
                pos[b, s0 : s0 + ans] = torch.arange(lk, lk + ans)
                gather_src[b, s0 : s0 + ans] = torch.arange(base, base + ans)
                for m in range(ans):
                    if am[b][base + m] and (m > 0 or lk > 0):
                        t_row.append(b)
                        t_pred.append(s0 + m - 1 if m > 0 else lk - 1)
                        t_src.append(base + m)
                        t_prefix.append(p_index)
                        t_slot.append(m)
                owner.append(b)
                p_index += 1
            used = base + ans * len(lens)
            idle = torch.arange(used, width)
            allow[b, idle, idle] = True  # padding rows attend to themselves: no NaN
        gather_src = gather_src.to(device)
        x = torch.gather(masked, 1, gather_src[..., None].expand(-1, -1, masked.shape[-1]))
        pos = pos.to(device)
        mask4 = allow[:, None].to(device)
        if getattr(self.predictor.config, "_attn_implementation", "sdpa") == "eager":
            zero = torch.zeros((), dtype=x.dtype, device=device)
            mask4 = torch.where(mask4, zero, torch.finfo(x.dtype).min)
        base_model = getattr(self.predictor, self.predictor.base_model_prefix)
        hidden = base_model(
            inputs_embeds=x, attention_mask=mask4, position_ids=pos
        ).last_hidden_state
        rows_t = torch.tensor(t_row, dtype=torch.long, device=device)
        h = hidden[rows_t, torch.tensor(t_pred, dtype=torch.long, device=device)]
        logits = self.predictor.get_output_embeddings()(h).float()
        target = input_ids[rows_t, torch.tensor(t_src, dtype=torch.long, device=device)]
        lp = torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
        prefix_t = torch.tensor(t_prefix, dtype=torch.long, device=device)
        slot_t = torch.tensor(t_slot, dtype=torch.long, device=device)
        out = torch.zeros(n_prefix, max(max_ans, 1), dtype=lp.dtype, device=device)
        amask = torch.zeros(n_prefix, max(max_ans, 1), dtype=torch.long, device=device)
        out = out.index_put((prefix_t, slot_t), lp)
        amask[prefix_t, slot_t] = 1
        return out, amask, torch.tensor(owner, device=device)

    def _prefix_sequences(
        self,
        masked: torch.Tensor,
        input_ids: torch.Tensor,
        step_ids: torch.Tensor,
        answer_mask: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Question + masked steps < k + answer part, for every chosen boundary k."""
        seqs: list[torch.Tensor] = []
        ids: list[torch.Tensor] = []
        answers: list[torch.Tensor] = []
        owner: list[int] = []
        for b in range(step_ids.shape[0]):
            sid = step_ids[b]
            n_steps = int(sid.max().item()) + 1
            fixed = (sid == PROMPT) | (sid == ANSWER)
            for kk in prefix_boundaries(n_steps, self.module_config.max_prefixes):
                keep_pos = fixed | ((sid >= 0) & (sid < kk))
                idx = torch.nonzero(keep_pos, as_tuple=False).squeeze(-1)
                seqs.append(masked[b, idx])
                ids.append(input_ids[b, idx])
                answers.append(answer_mask[b, idx])
                owner.append(b)
        return seqs, ids, answers, torch.tensor(owner, device=masked.device)

    def _answer_logprobs(
        self, seqs: list[torch.Tensor], seq_ids: list[torch.Tensor], answers: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log P(answer token t | tokens < t) for every prefix sequence (right padded)."""
        n, length = len(seqs), max(s.shape[0] for s in seqs)
        dim = seqs[0].shape[-1]
        x = seqs[0].new_zeros(n, length, dim)
        attn = torch.zeros(n, length, dtype=torch.long, device=x.device)
        amask = torch.zeros(n, length, dtype=torch.long, device=x.device)
        ids = torch.zeros(n, length, dtype=torch.long, device=x.device)
        for i, (s, t, a) in enumerate(zip(seqs, seq_ids, answers, strict=True)):
            x[i, : s.shape[0]] = s
            ids[i, : s.shape[0]] = t
            attn[i, : s.shape[0]] = 1
            amask[i, : s.shape[0]] = a
        base = getattr(self.predictor, self.predictor.base_model_prefix)
        hidden = base(inputs_embeds=x, attention_mask=attn).last_hidden_state
        # Only answer positions need logits: gather the hidden state one step
        # before each answer token and project just those (the vocabulary
        # projection over every position would dominate the cost).
        amask[:, 0] = 0
        pos = torch.nonzero(amask, as_tuple=False)
        h = hidden[pos[:, 0], pos[:, 1] - 1]
        logits = self.predictor.get_output_embeddings()(h).float()
        target = ids[pos[:, 0], pos[:, 1]]
        lp = torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
        out = torch.zeros(n, length, dtype=lp.dtype, device=x.device)
        out[pos[:, 0], pos[:, 1]] = lp
        return out, amask

    # -- scoring ----------------------------------------------------------
    @torch.no_grad()
    def token_weights(self, input_ids: torch.Tensor, step_ids: torch.Tensor) -> torch.Tensor:
        return self.generator.weights(input_ids, step_ids)

    # -- persistence ------------------------------------------------------
    def save(
        self, directory: str | Path, *, tokenizer: Any = None, save_predictor: bool = False
    ) -> Path:
        """Write ``weighting.safetensors`` (generator + mask vector) and its JSON config."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {
            f"generator.{k}": v.detach().contiguous().cpu()
            for k, v in self.generator.state_dict().items()
        }
        state["mask_embedding"] = self.mask_embedding.detach().contiguous().cpu()
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
        (out / CONFIG_FILE).write_text(self.module_config.to_json() + "\n", encoding="utf-8")
        if tokenizer is not None:
            tokenizer.save_pretrained(out / "tokenizer")
        if save_predictor and self.predictor is not None:
            self.predictor.save_pretrained(out / PREDICTOR_DIR)
        return out

    @classmethod
    def load(
        cls, directory: str | Path, *, predictor: Any = None, alpha: float = 0.5
    ) -> KeypointWeighting:
        """Load a saved module. Without ``predictor`` it can score but not train."""
        from safetensors.torch import load_file

        d = Path(directory)
        cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise FileNotFoundError(
                f"{d} is not a kpod weighting module (expected {CONFIG_FILE} and {WEIGHTS_FILE}); "
                "create one with `kpod weights train`"
            )
        config = ModuleConfig.from_json(cfg_path.read_text(encoding="utf-8"))
        module = cls(config, None, predictor, alpha=alpha)
        state = load_file(str(w_path))
        gen = {
            k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")
        }
        module.generator.load_state_dict(gen)
        if predictor is not None or module.mask_embedding.shape == state["mask_embedding"].shape:
            module.mask_embedding.data.copy_(state["mask_embedding"])
        else:
            module.mask_embedding = nn.Parameter(state["mask_embedding"].clone())
        module.eval()
        return module

    def check_tokenizer(self, tokenizer: Any) -> None:
        """Raise if ``tokenizer`` is not the one this module was trained with."""
        want = self.module_config.tokenizer_fingerprint
        got = tokenizer_fingerprint(tokenizer)
        if want and got != want:
            raise ValueError(
                f"tokenizer mismatch: the weighting module was trained with a tokenizer of "
                f"fingerprint {want} (student {self.module_config.student!r}) but the given tokenizer has "
                f"fingerprint {got}; score a dataset prepared with the module's student tokenizer"
            )
