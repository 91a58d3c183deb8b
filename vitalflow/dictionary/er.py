"""The entity-relationship picture: an SVG laid out here, one column of tables per layer."""

from __future__ import annotations

from html import escape
from typing import Any

BOX_WIDTH, HEADER, ROW, GAP_X, GAP_Y, MARGIN = 260, 26, 17, 110, 28, 24
PII_COLOURS = {"pseudonym": "#7b3fa0", "quasi": "#b35c00", "direct": "#b00020",
               "record_id": "#1f5f8b"}


def er_svg(dictionary: dict[str, Any], link_prefix: str = "") -> str:
    """The tables with columns (key and PII marked), join references as solid arrows and
    table-level lineage as dashed ones; each box links to its table page."""
    # meta first: its ledger points at raw batches and records, the next column.
    layers = sorted((layer["id"] for layer in dictionary["layers"] if not layer["restricted"]),
                    key=lambda name: name != "meta")
    boxes: dict[str, dict] = {}
    heights = []
    for index, layer in enumerate(layers):
        y = MARGIN + 30
        for table in (t for t in dictionary["tables"] if t["layer"] == layer):
            height = HEADER + ROW * len(table["columns"]) + 6
            boxes[table["id"]] = {"x": MARGIN + index * (BOX_WIDTH + GAP_X), "y": y,
                                  "height": height, "layer": index, "table": table}
            y += height + GAP_Y
        heights.append(y)
    width = MARGIN * 2 + len(layers) * BOX_WIDTH + (len(layers) - 1) * GAP_X
    height = max(heights) + MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="er" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Entity-relationship diagram of the vitalflow tables">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
             'fill="#555"/></marker></defs>',
             '<style>text{font:12px sans-serif}.h{font-weight:bold;fill:#fff}'
             '.t{fill:#222}.k{font-weight:bold}.e{fill:none;stroke:#555;stroke-width:1.2}'
             '.l{fill:none;stroke:#999;stroke-width:1;stroke-dasharray:5 4}</style>']
    for index, layer in enumerate(layers):
        x = MARGIN + index * (BOX_WIDTH + GAP_X)
        parts.append(f'<text x="{x}" y="{MARGIN + 12}" class="k">{escape(layer)} layer</text>')
    parts += _edges(boxes)
    parts += [_box(box, link_prefix) for box in boxes.values()]
    parts.append("</svg>")
    return "\n".join(parts)


def _box(box: dict, link_prefix: str) -> str:
    table, x, y = box["table"], box["x"], box["y"]
    rows = [f'<a href="{link_prefix}tables/{escape(table["id"])}.html">'
            f'<g class="er-table" id="er-{escape(table["id"])}">'
            f'<title>{escape(table["description"])}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{box["height"]}" rx="4" '
            'fill="#fafafa" stroke="#3c5a78"/>'
            f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{HEADER}" rx="4" fill="#3c5a78"/>'
            f'<text x="{x + 8}" y="{y + 17}" class="h">{escape(table["id"])}</text>']
    for number, column in enumerate(table["columns"]):
        row_y = y + HEADER + ROW * number + 13
        colour = PII_COLOURS.get(column["pii"] or "", "#222")
        key = " k" if column["primary_key"] else ""
        mark = "🔑 " if column["primary_key"] else ""
        rows.append(f'<text x="{x + 8}" y="{row_y}" class="t{key}" style="fill:{colour}">'
                    f'{mark}{escape(column["name"])}</text>'
                    f'<text x="{x + BOX_WIDTH - 8}" y="{row_y}" text-anchor="end" '
                    f'fill="#666">{escape(column["type"])}'
                    f'{"" if column["nullable"] else " !"}</text>')
    rows.append("</g></a>")
    return "".join(rows)


def _anchor(box: dict, column: str | None, right: bool) -> tuple[float, float]:
    names = [c["name"] for c in box["table"]["columns"]]
    y = box["y"] + (HEADER / 2 if column is None else HEADER + ROW * names.index(column) + ROW / 2)
    return box["x"] + (BOX_WIDTH if right else 0), y


def _curve(source: dict, source_column: str | None, target: dict, target_column: str | None,
           css: str) -> str:
    if source["layer"] == target["layer"]:  # loop out to the right of the layer's column
        (x1, y1), (x2, y2) = (_anchor(source, source_column, True),
                              _anchor(target, target_column, True))
        bulge = 45 + abs(y2 - y1) * 0.08
        path = f"M{x1},{y1} C{x1 + bulge},{y1} {x2 + bulge},{y2} {x2},{y2}"
    else:
        forward = source["layer"] < target["layer"]
        (x1, y1), (x2, y2) = (_anchor(source, source_column, forward),
                              _anchor(target, target_column, not forward))
        middle = (x1 + x2) / 2
        path = f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"
    return f'<path class="{css}" d="{path}" marker-end="url(#arrow)"/>'


def _edges(boxes: dict[str, dict]) -> list[str]:
    edges, joined = [], set()
    for box in boxes.values():
        for column in box["table"]["columns"]:
            if column["references"]:
                target_table, target_column = column["references"].rsplit(".", 1)
                if target_table in boxes:
                    edges.append(_curve(box, column["name"], boxes[target_table], target_column,
                                        "e"))
                    joined.add((target_table, box["table"]["id"]))
    for box in boxes.values():
        for upstream in box["table"]["upstream_tables"]:
            if upstream in boxes and (upstream, box["table"]["id"]) not in joined:
                edges.append(_curve(boxes[upstream], None, box, None, "l"))
    return edges
