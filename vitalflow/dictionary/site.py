"""The docs site: static HTML pages (with a client-side search index) and the same as Markdown."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

from vitalflow.dictionary.er import PII_COLOURS, er_svg

# A page is a list of blocks, written once and rendered to both HTML and Markdown:
# ("h", level, text) · ("p", text) · ("table", headers, rows[, True: rows are columns, anchored
# by name, PII coloured]) · ("svg", svg, alt). Texts use
# Markdown's [link](url.html) and `code`; links name .html pages relative to the page.
Block = tuple
PII_MEANING = {
    "none": "not about a person, or not identifying",
    "pseudonym": "a key standing for a person (HMAC pseudonym); joinable, not readable",
    "quasi": "identifying in combination (birth date, age, time of death)",
    "direct": "identifying on its own (names, identifier values, raw FHIR text)",
    "record_id": "identifies a source or raw record, so it leads back to one person",
}
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")


def build_site(dictionary: dict[str, Any], out: Path,
               profile: dict[str, Any] | None = None) -> list[Path]:
    """Write the HTML site and its Markdown twin (under out/markdown); returns the pages."""
    pages = _pages(dictionary, profile or {})
    index = [{"t": title, "k": kind, "d": text[:300], "u": path}
             for path, (title, kind, text, _) in pages.items()]
    written = []
    for path, (title, _, _, blocks) in pages.items():
        if "#" in path:  # a column: its row on the table page
            continue
        depth = path.count("/")
        written.append(_write(out / path, _html(title, blocks, "../" * depth)))
        written.append(_write(out / "markdown" / path.replace(".html", ".md"),
                              _markdown(title, blocks, path)))
    assets = Path(__file__).with_name("assets")
    for name in ("style.css", "search.js"):
        _write(out / "assets" / name, (assets / name).read_text())
    _write(out / "assets" / "search-index.js",
           "window.VF_INDEX = " + json.dumps(index, ensure_ascii=False, indent=0) + ";\n")
    _write(out / "er.svg", er_svg(dictionary))
    _write(out / "dictionary.json", json.dumps(dictionary, indent=2, ensure_ascii=False) + "\n")
    return written


def table_page(table_id: str) -> str:
    return f"tables/{table_id}.html"


def reason_page(code: str) -> str:
    return f"reasons/{code.replace(':', '--')}.html"


def _pages(dictionary: dict, profile: dict) -> dict[str, tuple[str, str, str, list[Block]]]:
    """path -> (title, kind for the search index, searchable text, blocks)."""
    tables = {t["id"]: t for t in dictionary["tables"]}
    pages = {"index.html": ("vitalflow data dictionary", "overview",
                            "layers tables reasons picture", _index(dictionary))}
    for layer in dictionary["layers"]:
        pages[f"layers/{layer['id']}.html"] = (f"{layer['id']} layer", "layer",
                                               layer["description"], _layer(layer, tables))
    for table in dictionary["tables"]:
        if table["restricted"]:
            continue
        pages[table_page(table["id"])] = (table["id"], "table", table["description"],
                                          _table(table, profile.get(table["id"])))
        for column in table["columns"]:  # search entries only: the rows live on the table page
            pages[f"{table_page(table['id'])}#{column['name']}"] = (
                column["id"], f"column · {column['type']}",
                f"{column['description']} {column['fhir_source'] or ''}", [])
    pages["reasons/index.html"] = ("Quarantine and filter reasons", "reasons",
                                   "why a record did not reach refined", _reasons(dictionary))
    for reason in dictionary["reasons"]:
        pages[reason_page(reason["code"])] = (reason["code"], f"{reason['kind']} reason",
                                              reason["description"], _reason(reason))
    return {path: page for path, page in pages.items() if page[3] or "#" in path}


def _index(dictionary: dict) -> list[Block]:
    layers = [[f"[{layer['id']}](layers/{layer['id']}.html)", layer["description"],
               layer["access"]] for layer in dictionary["layers"]]
    pii = [[f"`{name}`", meaning] for name, meaning in PII_MEANING.items()]
    return [("p", f"Version {dictionary['version']}: every table vitalflow creates, built from "
             "`vitalflow/tables.py`; [all reason codes](reasons/index.html); the same as "
             "[JSON](dictionary.json)."),
            ("h", 2, "Layers"), ("table", ["layer", "what", "who may read it"], layers),
            ("h", 2, "Entity-relationship picture"),
            ("p", "Solid arrows: a column that joins to another table's column. Dashed: the "
             "table is computed from the other. Coloured columns are personal data."),
            ("svg", er_svg(dictionary), "er.svg"),
            ("h", 2, "PII classes"), ("table", ["class", "meaning"], pii)]


def _layer(layer: dict, tables: dict) -> list[Block]:
    blocks: list[Block] = [("p", layer["description"]), ("p", f"**Access:** {layer['access']}")]
    if layer["restricted"]:
        blocks.append(("p", "Restricted: listed with its access rules only."))
        rows = [[f"`{t}`", tables[t]["description"], f"`{tables[t]['owner']}`"]
                for t in layer["tables"]]
    else:
        rows = [[f"[{t}](../{table_page(t)})", tables[t]["description"],
                 f"`{tables[t]['owner']}`"] for t in layer["tables"]]
    return blocks + [("table", ["table", "what", "written by"], rows)]


def _column_link(ref: str) -> str:
    table, column = ref.rsplit(".", 1)
    return f"[{ref}](../{table_page(table)}#{column})"


def _table(table: dict, profile: dict | None) -> list[Block]:
    upstream = ", ".join(f"[{t}](../{table_page(t)})" for t in table["upstream_tables"])
    facts = [["layer", f"[{table['layer']}](../layers/{table['layer']}.html)"],
             ["written by (owner flow)", f"`{table['owner']}`"],
             ["primary key", ", ".join(f"`{k}`" for k in table["primary_key"]) or "none"],
             ["freshness", f"newest `{table['freshness']}`" if table["freshness"] else "n/a"],
             ["computed from", upstream or "input files"], ["access", table["access"]]]
    rows = []
    for c in table["columns"]:
        lineage = ", ".join(_column_link(ref) for ref in c["upstream"])
        if c["references"]:
            lineage += ("; " if lineage else "") + f"joins {_column_link(c['references'])}"
        rows.append([f"`{c['name']}`" + (" (key)" if c["primary_key"] else ""),
                     c["sql_type"] + ("" if c["nullable"] else " not null"), c["unit"] or "",
                     c["description"], c["fhir_source"] or "", c["binding"] or "",
                     c["pii"] or "", lineage or ""])
    blocks: list[Block] = [("p", table["description"]), ("table", ["", ""], facts),
                           ("h", 2, "Columns"),
                           ("table", ["column", "type", "unit", "description", "FHIR source",
                                      "binding", "PII", "lineage"], rows, True)]
    if profile:
        blocks += [("h", 2, "What the data shows"), ("p", profile_note(profile)),
                   ("table", ["column", "null share", "distinct", "min / max or top values"],
                    [[f"`{name}`", *profile_cells(stats)]
                     for name, stats in profile["columns"].items()])]
    return blocks


def profile_note(profile: dict) -> str:
    return (f"{profile['rows']:,} rows, newest {profile.get('newest') or 'n/a'}, profiled "
            f"{profile['profiled_at']} on {profile['where']}; counts under "
            f"{profile['k']} suppressed, identifying values never shown.")


def profile_cells(stats: dict) -> list[str]:
    shown = ("hidden (PII)" if stats.get("hidden") else
             f"{stats['min']} … {stats['max']}" if "min" in stats else
             ", ".join(f"{v['value']} ({v['count']})" for v in stats.get("top", [])))
    if stats.get("suppressed"):
        shown += f" (+{stats['suppressed']} values under k)"
    return [f"{stats['null_share']:.1%}", f"{stats['distinct']:,}", shown]


def _reasons(dictionary: dict) -> list[Block]:
    rows = [[f"[{r['code']}](../{reason_page(r['code'])})", r["kind"], r["description"]]
            for r in dictionary["reasons"]]
    return [("p", "Quarantined records are in [refined.quarantine](../tables/refined.quarantine"
             ".html) with one of these codes in `reason`; filtered ones are counted per run "
             "(`vitalflow run` summary, `vitalflow filter --dry-run`)."),
            ("table", ["code", "kind", "meaning"], rows)]


def _reason(reason: dict) -> list[Block]:
    where = ("Rows with this `reason` in [refined.quarantine](../tables/refined.quarantine.html)"
             "; the next run after a fix re-reads nothing by itself: re-ingest corrected input."
             if reason["kind"] == "quarantine" else
             "Not stored: counted in the run summary under `filter_reasons`.")
    blocks: list[Block] = [("p", reason["description"]), ("p", f"**Kind:** {reason['kind']}"),
                           ("p", where)]
    if reason.get("rule"):
        blocks.append(("table", ["rule field", "value"],
                       [[f"`{k}`", f"`{json.dumps(v)}`"] for k, v in reason["rule"].items()]))
    return blocks + [("p", "[All reason codes](index.html)")]


def _inline_html(text: str) -> str:
    text = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escape(text, quote=False))
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return _LINK.sub(lambda m: f'<a href="{escape(m.group(2))}">{m.group(1)}</a>', text)


def _html(title: str, blocks: list[Block], root: str) -> str:
    body = []
    for block in blocks:
        if block[0] == "h":
            anchor = re.sub(r"\W+", "-", block[2].lower()).strip("-")
            body.append(f'<h{block[1]} id="{anchor}">{escape(block[2])}</h{block[1]}>')
        elif block[0] == "p":
            body.append(f"<p>{_inline_html(block[1])}</p>")
        elif block[0] == "svg":
            body.append(f'<div class="picture">{block[1]}</div>')
        else:
            head = "".join(f"<th>{escape(h)}</th>" for h in block[1])
            rows = "".join(_row(row, len(block) > 3) for row in block[2])
            head = f"<thead><tr>{head}</tr></thead>" if any(block[1]) else ""
            body.append(f"<table>{head}<tbody>{rows}</tbody></table>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{root}assets/style.css"></head>
<body><header><a href="{root}index.html" class="home">vitalflow data dictionary</a>
<input id="search" type="search" placeholder="Search tables, columns, reasons…" autocomplete="off">
<ol id="results"></ol></header>
<main><h1>{escape(title)}</h1>
{chr(10).join(body)}
</main>
<script>window.VF_ROOT = "{root}";</script>
<script src="{root}assets/search-index.js"></script><script src="{root}assets/search.js"></script>
</body></html>
"""


def _row(row: list[str], column: bool) -> str:
    if not column:
        return "<tr>" + "".join(f"<td>{_inline_html(cell)}</td>" for cell in row) + "</tr>"
    name = re.match(r"`([a-z0-9_]+)`", row[0]).group(1)
    colour = f' style="color:{PII_COLOURS[row[6]]}"' if row[6] in PII_COLOURS else ""
    cells = "".join(f"<td{colour if i == 6 else ''}>{_inline_html(cell)}</td>"
                    for i, cell in enumerate(row))
    return f'<tr id="{name}" class="column">{cells}</tr>'



def _markdown(title: str, blocks: list[Block], path: str) -> str:
    # Pages mirror the site one folder down (markdown/); other files stay in the site.
    site = "../" * (path.count("/") + 1) + (path.rpartition("/")[0] + "/").lstrip("/")

    def md(text: str) -> str:
        return _LINK.sub(lambda m: f"[{m.group(1)}]({_md_target(m.group(2), site)})", text)

    lines = [f"# {title}", ""]
    for block in blocks:
        if block[0] == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif block[0] == "p":
            lines += [md(block[1]), ""]
        elif block[0] == "svg":
            lines += [f"![entity-relationship picture]({site}{block[2]})", ""]
        else:
            lines.append("| " + " | ".join(block[1]) + " |")
            lines.append("|" + "---|" * len(block[1]))
            lines += ["| " + " | ".join(md(c).replace("|", "\\|").replace("\n", " ")
                                        for c in row) + " |" for row in block[2]]
            lines.append("")
    return "\n".join(lines)


def _md_target(url: str, site: str) -> str:
    path, _, anchor = url.partition("#")
    path = path.replace(".html", ".md") if path.endswith(".html") else site + path
    return path + (f"#{anchor}" if anchor else "")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(text)
    return path
