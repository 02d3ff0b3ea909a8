"""WCAG AA contrast of every colour pair the page's stylesheet uses, light and dark."""

from __future__ import annotations

import re

import pytest

from embedstore.api.routes.page import STATIC_DIR

#: (foreground, background, minimum ratio): 4.5 for text, 3 for borders and focus rings (WCAG 2.1
#: success criteria 1.4.3 and 1.4.11).
PAIRS = [
    ("text", "bg", 4.5), ("text", "surface", 4.5), ("text", "preview-bg", 4.5),
    ("muted", "bg", 4.5), ("muted", "surface", 4.5), ("muted", "preview-bg", 4.5),
    ("accent", "surface", 4.5), ("accent", "bg", 4.5), ("on-accent", "accent", 4.5),
    ("error-text", "error-bg", 4.5), ("on-overlay", "overlay-bg", 4.5),
    ("control-border", "surface", 3.0), ("control-border", "bg", 3.0),
    ("focus", "surface", 3.0), ("focus", "bg", 3.0), ("focus", "preview-bg", 3.0),
]  # fmt: skip


def palettes() -> dict[str, dict[str, str]]:
    """The ``:root`` custom properties of style.css: the light block and the dark media block."""
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    light = css.split("@media (prefers-color-scheme: dark)")[0]
    dark = css.split("@media (prefers-color-scheme: dark)")[1].split("\n}\n")[0]
    var = re.compile(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;")
    return {"light": dict(var.findall(light)), "dark": dict(var.findall(dark))}


def luminance(hex_colour: str) -> float:
    """Relative luminance of an sRGB colour (WCAG 2.1 definition)."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic near-miss


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_palette_meets_wcag_aa(scheme: str) -> None:
    palette = palettes()[scheme]
    assert len(palette) >= 13, f"{scheme} palette not parsed from style.css: {palette}"
    failures = []
    for fg, bg, minimum in PAIRS:
        ratio = contrast(palette[fg], palette[bg])
        if ratio < minimum:
            failures.append(f"--{fg} on --{bg}: {ratio:.2f} < {minimum}")
    assert not failures, f"{scheme}: " + "; ".join(failures)


def test_every_colour_in_rules_comes_from_the_palette() -> None:
    """Rules use only the checked variables (no stray hex colour escapes the contrast check)."""
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    rules = re.sub(r":root\s*\{[^}]*\}", "", css)
    assert re.findall(r"#[0-9a-fA-F]{3,8}\b", rules) == []
