"""Matplotlib figures as inline SVG that a strict Content-Security-Policy lets render.

Matplotlib writes its colours and fonts as ``style="..."`` attributes and a ``<style>`` element;
a policy without ``'unsafe-inline'`` for styles blocks both. SVG has presentation attributes for
the same properties (``fill="#fff"``), which no policy blocks, so every style is rewritten into
them. Ids are prefixed per figure (several inline SVGs share one document, and matplotlib's
clip-path ids would collide), metadata is dropped, fonts become the generic ``sans-serif`` (no
font is ever fetched), and elements tagged with a gid ("marks") get classes, data attributes and
a tooltip, for the page's script and its tests.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

# The CSS properties matplotlib writes that SVG also accepts as presentation attributes.
PRESENTATION = {
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap",
    "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "opacity", "font-size",
    "font-family", "font-weight", "font-style", "font-stretch", "text-anchor", "clip-path", "dominant-baseline",
    "letter-spacing", "visibility", "display",
}
FONT_FAMILY = "sans-serif"
_URL = re.compile(r"url\(#([^)]+)\)")


def configure_matplotlib():
    """The svg backend, text kept as text (no embedded glyphs) in a generic family; deterministic ids."""
    import matplotlib

    matplotlib.use("svg", force=True)
    matplotlib.rcParams.update({
        "svg.fonttype": "none", "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"],
        "svg.hashsalt": "evalsuite", "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8,
    })
    import matplotlib.pyplot as plt

    return plt


def figure_svg(fig, prefix: str, marks: dict[str, dict] | None = None) -> str:
    """``fig`` as an inline ``<svg>`` element (see the module docstring); the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    return csp_safe(buffer.getvalue(), prefix, marks or {})


def style_declarations(style: str) -> dict[str, str]:
    """``"fill: #fff; stroke: none"`` -> {"fill": "#fff", "stroke": "none"}."""
    out = {}
    for part in style.split(";"):
        name, sep, value = part.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _apply(element: ET.Element, declarations: dict[str, str]) -> None:
    for name, value in declarations.items():
        if name not in PRESENTATION:
            raise ValueError(f"matplotlib wrote the style property {name!r}, which has no SVG attribute")
        element.set(name, FONT_FAMILY if name == "font-family" else value)


def _rename_ids(root: ET.Element, prefix: str) -> None:
    href = f"{{{XLINK_NS}}}href"
    for element in root.iter():
        if "id" in element.attrib:
            element.set("id", f"{prefix}-{element.get('id')}")
        for name, value in list(element.attrib.items()):
            if "url(#" in value:
                element.set(name, _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", value))
            if name in (href, "href") and value.startswith("#"):
                element.set(name, f"#{prefix}-{value[1:]}")


def _mark(root: ET.Element, prefix: str, marks: dict[str, dict]) -> None:
    by_id = {f"{prefix}-{gid}": attrs for gid, attrs in marks.items()}
    for element in root.iter():
        attrs = by_id.get(element.get("id", ""))
        if attrs is None:
            continue
        for name, value in attrs.items():
            if name != "title":
                element.set(name, str(value))
        if "title" in attrs:
            title = ET.Element(f"{{{SVG_NS}}}title")
            title.text = str(attrs["title"])
            element.insert(0, title)


def csp_safe(svg_text: str, prefix: str, marks: dict[str, dict]) -> str:
    root = ET.fromstring(svg_text.encode("utf-8"))
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{{{SVG_NS}}}metadata",):
                parent.remove(child)
            elif child.tag == f"{{{SVG_NS}}}style":  # "*{stroke-linejoin: round; ...}": inherited, so onto the root
                body = re.search(r"\{([^}]*)\}", child.text or "")
                _apply(root, style_declarations(body.group(1) if body else ""))
                parent.remove(child)
    for element in root.iter():
        style = element.attrib.pop("style", None)
        if style:
            _apply(element, style_declarations(style))
    _rename_ids(root, prefix)
    _mark(root, prefix, marks)
    root.set("class", "chart")
    root.set("role", "img")
    return ET.tostring(root, encoding="unicode")
