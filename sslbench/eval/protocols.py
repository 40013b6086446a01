"""Named evaluation protocols: how a raw map becomes predicted pixels in each reference."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """Upsampling of the raw map to the gt resolution, and the threshold rule
    (``sslbench.eval.functional.binarize``). ``size`` is the evaluation resolution."""

    name: str
    upsample: str
    rule: str
    size: int = 224
    reference: str = ""


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("ezvsl", "bilinear_align_corners", "ezvsl", reference="EZ-VSL test.py: bilinear align_corners, median, >="),
        Protocol("lvs", "bilinear", "lvs", reference="LVS test.py: cv2 INTER_LINEAR, inverted min-max, median"),
        Protocol("sspl", "bilinear", "sspl", reference="SSPL test.py: cv2 INTER_LINEAR, np.ptp min-max, fixed 0.5"),
        Protocol("sslalign", "bilinear_align_corners", "sslalign", reference="SSLalignment test.py: median, strict >"),
        Protocol("sslalign_adaptive", "bilinear_align_corners", "sslalign_adaptive", reference="SSLalignment adaptive threshold"),
    )
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown evaluation protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None
