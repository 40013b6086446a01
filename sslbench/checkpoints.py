"""Released checkpoints of the reference repositories, remapped into the sslbench classes.

    sslbench test --config experiments/ezvsl.yaml --ckpt_path best.pth     # EZ-VSL's own file
    load_reference_checkpoint(model, "sspl_run/")                           # SSPL's four files

Each layout names where its state dict sits in the file, how its keys become sslbench keys,
and which of its keys have no use here (the LVS trunks' unused 6-channel flow conv, SSL-Align's
unused fusion layers). Anything else that does not fit, missing or unexpected or of another
shape, is an error that names the keys: a released file never loads half-way in silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from sslbench.errors import SSLBenchError

Rule = tuple[str, "str | Callable[[re.Match], str]"]


class ReferenceCheckpointError(SSLBenchError):
    """A reference checkpoint that does not fit the sslbench class it is loaded into."""


@dataclass(frozen=True)
class ReferenceLayout:
    """How one repository saved its model.

    Attributes:
        name: layout name (``lvs``, ``ezvsl``, ...).
        method: the sslbench class (or classes, same keys) it loads into.
        containers: keys of the saved dict that hold the state dict (the first present wins).
        rules: (regex, replacement) applied to each key after any ``module.`` prefix is removed;
            the first that matches renames it.
        unused: regexes of reference keys with no counterpart here (dropped and counted).
        parts: for layouts saved as several files, file-name prefix -> rules of that file.
    """

    name: str
    method: str | tuple[str, ...]
    containers: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    unused: tuple[str, ...] = ()
    parts: dict[str, tuple[Rule, ...]] = field(default_factory=dict)


#: LVS-style ResNets (``models/base_models.py``) carry three first convs; vision uses ``conv1``,
#: audio ``conv1_a``; ``conv1_flow`` and ``fc`` are never used in forward
_LVS_TRUNKS: tuple[Rule, ...] = (
    (r"^imgnet\.", "visual_net."),
    (r"^audnet\.conv1_a\.", "audio_net.conv1."),
    (r"^audnet\.", "audio_net."),
)
_LVS_UNUSED = (r"^imgnet\.(conv1_a|conv1_flow|fc)\.", r"^audnet\.(conv1|conv1_flow|fc)\.")


def _pcm_step_bn(path: str, per_step: int, flip: bool) -> Callable[[re.Match], str]:
    """SSPL's PCNet keeps the BatchNorms of steps 2..T in flat lists; ours nest them by step."""

    def rename(match: re.Match) -> str:
        step, i = divmod(int(match.group(1)), per_step)
        return f"pcm.{path}.{step + 1}.{(per_step - 1 - i) if flip else i}."

    return rename


LAYOUTS: dict[str, ReferenceLayout] = {
    "lvs": ReferenceLayout(  # hche11/Localizing-Visual-Sounds-the-Hard-Way test.py
        "lvs", ("LVS", "SSLTIE"), ("model_state_dict",), _LVS_TRUNKS, _LVS_UNUSED,
    ),
    "ssltie": ReferenceLayout(  # jinxiang-liu/SSL-TIE main.py: {"state_dict": AVENet's, "epoch", ...}
        "ssltie", ("SSLTIE", "LVS"), ("state_dict",), _LVS_TRUNKS,
        (*_LVS_UNUSED, r"^(vision_fc1|conv3|norm3)\."),  # built in AVENet.__init__, never in its loss or map
    ),
    "ssl_align": ReferenceLayout(  # kaistmm/ssl_kccv Alignment/train.py (AlignmentNet)
        "ssl_align", "SSLAlign", ("model_state_dict",),
        ((r"^img_proj\.", "visual_proj."), (r"^aud_proj\.", "audio_proj."), *_LVS_TRUNKS),
        (*_LVS_UNUSED, r"^(vision_fc1|conv3|norm3)\."),
    ),
    "ezvsl": ReferenceLayout(  # stoneMo/EZ-VSL train.py: {"model": DDP state dict, ...}; OpenNLPLab/FNAC_AVL saves the same keys
        "ezvsl", ("EZVSL", "FNAC"), ("model",),
        ((r"^imgnet\.", "visual_net."), (r"^img_proj\.", "visual_proj."), (r"^audnet\.", "audio_net."), (r"^aud_proj\.", "audio_proj.")),
    ),
    "avgn": ReferenceLayout(  # stoneMo/AVGN train.py: {"model": DDP state dict, "optimizer", "epoch", ...}
        "avgn", "AVGN", ("model",),
        (
            (r"^imgnet\.", "visual_net."), (r"^img_proj\.", "visual_proj."), (r"^audnet\.", "audio_net."),
            (r"^aud_proj\.", "audio_proj."), (r"^av_token$", "class_tokens"), (r"^audio_encoder\.", "audio_grouping."),
            (r"^visual_encoder\.", "visual_grouping."), (r"^fc_prob_a\.", "audio_presence."),
            (r"^fc_prob_v\.", "visual_presence."), (r"^fc_cls\.", "token_classifier."),
        ),
        # ModalityTrans(use_han=True) builds a second grouping block for the audio; forward never gets the
        # other modality it needs, so it is never used
        (r"^audio_encoder\.han_encoder\.",),
    ),
    "slavc": ReferenceLayout(  # stoneMo/SLAVC model.py (MoVSL)
        "slavc", "SLAVC", ("model",),
        tuple(
            (rf"^{ref}{part}", f"{ours}{mine}")
            for ref, ours in (("momentum_", "momentum_encoders."), ("", "online."))
            for part, mine in (
                (r"imgnet\.", "visual_net."), (r"audnet\.", "audio_net."),
                (r"img_proj([12])\.", r"visual_proj\1."), (r"aud_proj([12])\.", r"audio_proj\1."),
            )
        ),
    ),
    "noprior": ReferenceLayout(  # VisualAIKHU/NoPrior_MultiSSL train.py (Lightning, "model." prefix) or {"model": ...}
        "noprior", "IOI", ("state_dict", "model"),
        ((r"^(model\.)?imgnet\.", "visual_net."), (r"^(model\.)?audnet\.", "audio_net.")),
        # Hear-The-Flow's optical-flow branch: sslbench's IOI has no flow input (the paper never mentions it)
        (r"^(model\.)?(flownet|flowatt)\.",),
    ),
    "sspl": ReferenceLayout(  # zjsong/SSPL main.py: frame_/sound_/pcm_/ssl_head_best.pth
        "sspl", "SSPL",
        unused=(r"^pproc\.",),
        parts={
            "frame": ((r"^feat_extractor\.", "visual_net.features."),),
            "sound": ((r"^features\.", "vggish.features."), (r"^embeddings\.", "vggish.embeddings."), (r"^fc\.", "sound_head.")),
            "pcm": (
                (r"^PredProcess\.0\.", "pcm.predict_0."),
                (r"^PredProcess\.([12])\.conv2d\.", r"pcm.predict_\1.0."),
                (r"^ErrorProcess\.0\.", "pcm.error_1."),
                (r"^ErrorProcess\.1\.", "pcm.error_2."),
                (r"^ErrorProcess\.2\.convtrans2d\.", "pcm.error_3."),
                (r"^ErrorProcess\.3\.", "pcm.output."),
                (r"^a0\.(\d)", r"pcm.a.\1"),
                (r"^b0\.(\d)", r"pcm.b.\1"),
                # initial BNs: BNPred[0] normalises r_1, BNPred[1] r_2 (ours: bn_down[t] = (r_2, r_1))
                (r"^BNPred\.(\d)\.", lambda m: f"pcm.bn_down.0.{1 - int(m.group(1))}."),
                (r"^BNError\.(\d)\.", r"pcm.bn_up.0.\1."),
                (r"^BNPred_step\.(\d+)\.", _pcm_step_bn("bn_down", 2, flip=True)),
                (r"^BNError_step\.(\d+)\.", _pcm_step_bn("bn_up", 3, flip=False)),
            ),
            "ssl_head": tuple(
                (rf"^{head}\.layer{layer}\.{ref}", f"{head}.{ours}.")
                for head, table in (
                    ("projector", ((1, "0\\.", 0), (1, "1\\.", 1), (2, "0\\.", 3), (2, "1\\.", 4), (3, "0\\.", 6), (3, "1\\.", 7))),
                    ("predictor", ((1, "0\\.", 0), (1, "1\\.", 1), (2, "", 3))),
                )
                for layer, ref, ours in table
            ),
        },
    ),
}


def _strip_wrappers(state: dict) -> dict[str, Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def _rename(state: dict[str, Tensor], rules, unused, source: str) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """(renamed state, dropped unused keys, keys no rule knows)."""
    renamed, dropped, unknown = {}, [], []
    for key, value in state.items():
        if any(re.search(pattern, key) for pattern in unused):
            dropped.append(key)
            continue
        for pattern, replacement in rules:
            new, hits = re.subn(pattern, replacement, key, count=1)
            if hits:
                renamed[new] = value
                break
        else:
            unknown.append(f"{source}{key}")
    return renamed, dropped, unknown


def _load_file(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ReferenceCheckpointError(f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {err})") from None


def _sspl_files(path: Path) -> dict[str, Path]:
    folder = path if path.is_dir() else path.parent
    found = {}
    for part in LAYOUTS["sspl"].parts:
        names = [f"{part}_best.pth"] + (["pc_best.pth"] if part == "pcm" else [])
        hits = [folder / n for n in names if (folder / n).is_file()]
        if hits:
            found[part] = hits[0]
    return found


def detect_layout(path: str | Path) -> str | None:
    """The reference layout of ``path``, or None when it is not one (an sslbench/Lightning file)."""
    path = Path(path)
    if path.is_dir() or path.name in {f"{p}_best.pth" for p in LAYOUTS["sspl"].parts}:
        return "sspl" if _sspl_files(path) else None
    checkpoint = _load_file(path)
    if "state_dict" in checkpoint and "pytorch-lightning_version" in checkpoint:
        lightning_keys = checkpoint["state_dict"]
        return "noprior" if any(k.startswith("model.imgnet.") for k in lightning_keys) else None
    state = _strip_wrappers(_container(checkpoint, ("model", "model_state_dict", "state_dict")))
    keys = set(state)
    if any(k.startswith(("momentum_imgnet.", "img_proj1.")) for k in keys):
        return "slavc"
    if "av_token" in keys:
        return "avgn"
    if "img_proj.weight" in keys:
        return "ezvsl" if state["img_proj.weight"].dim() == 4 else "ssl_align"
    if "audnet.conv1_a.weight" in keys:
        return "ssltie" if "state_dict" in checkpoint and "vision_fc1.weight" in keys else "lvs"
    if "imgnet.conv1.weight" in keys and "audnet.conv1.weight" in keys:
        return "noprior"
    raise ReferenceCheckpointError(
        f"{path} is neither an sslbench checkpoint nor a known reference layout ({', '.join(LAYOUTS)}); "
        f"its first keys: {sorted(keys)[:6]}"
    )


def _container(checkpoint: dict, containers: tuple[str, ...]) -> dict:
    for key in containers:
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint  # a bare state dict


def reference_state_dict(path: str | Path, layout: str) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Read ``path`` in ``layout`` and rename its keys: (state, dropped unused keys, unknown keys)."""
    spec = LAYOUTS[layout]
    path = Path(path)
    if not spec.parts:
        state = _strip_wrappers(_container(_load_file(path), spec.containers))
        return _rename(state, spec.rules, spec.unused, "")
    files = _sspl_files(path)
    state, dropped, unknown = {}, [], []
    for part, file in files.items():
        part_state = _strip_wrappers(_container(_load_file(file), ("state_dict",)))
        renamed, d, u = _rename(part_state, spec.parts[part], spec.unused, f"{file.name}: ")
        state.update(renamed)
        dropped += d
        unknown += u
    return state, dropped, unknown


def _optional(key: str) -> bool:
    """Model keys a released file may lack: BN step counters and OGL's own frozen ImageNet net."""
    return key.endswith("num_batches_tracked") or key.startswith("object_guidance.")


def load_reference_checkpoint(model: nn.Module, path: str | Path, layout: str | None = None) -> str:
    """Load a reference repository's checkpoint into ``model``; returns a one-line report.

    Raises :class:`ReferenceCheckpointError` naming the keys that are missing, unexpected or of
    the wrong shape, or the class the layout belongs to when ``model`` is another.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ReferenceCheckpointError(f"checkpoint not found: {path}")
    layout = layout or detect_layout(path)
    if layout is None:
        raise ReferenceCheckpointError(f"{path} is an sslbench checkpoint, not a reference one: use it as --ckpt_path directly")
    if layout not in LAYOUTS:
        raise ReferenceCheckpointError(f"unknown reference layout {layout!r}; known: {', '.join(LAYOUTS)}")
    spec = LAYOUTS[layout]
    accepted = (spec.method,) if isinstance(spec.method, str) else spec.method
    if type(model).__name__ not in accepted:
        raise ReferenceCheckpointError(
            f"{path} is a {layout} checkpoint and loads into {' or '.join(accepted)}, not {type(model).__name__}: "
            f"use --model {accepted[0]}"
        )
    state, dropped, unknown = reference_state_dict(path, layout)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not _optional(k))
    unexpected = sorted(unknown + [k for k in state if k not in own])
    wrong = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        problems = [
            f"{len(missing)} missing (e.g. {missing[:5]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[:5]})" if unexpected else "",
            f"{len(wrong)} of another shape (e.g. {wrong[:3]}; check backbone_width / embed_dim)" if wrong else "",
        ]
        raise ReferenceCheckpointError(
            f"{path} ({layout} layout) does not fit {type(model).__name__}: " + "; ".join(p for p in problems if p)
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    note = f", ignored {len(dropped)} unused reference keys" if dropped else ""
    if layout == "noprior" and dropped:
        note += " (Hear-The-Flow's optical-flow attention: sslbench's IOI has no flow input, so maps are the flow-free model's)"
    return f"loaded {path} ({layout} layout) into {type(model).__name__}: {len(state)} tensors{note}"
