"""One self-contained HTML page from report sections: inline CSS, inline PNGs (base64), a small sort script.

Nothing in the page refers to the network or to other files, so it opens from disk anywhere.
Tables are sortable by clicking a header; ``#sort=COLUMN:asc|desc`` in the address clicks that header of
the first sortable table on load (once for ascending, twice for descending), so a link can carry a sort, and
a click on that table writes the address back (it never keeps a stale sort). Rows with a group (the
leaderboard's metric) sort within it.
Once the page has run its script, ``<body>`` carries ``data-ready``, ``data-images`` (how many pictures
decoded) and ``data-tables``.
"""

from __future__ import annotations

import base64
import math
import numbers
from html import escape
from typing import Any

from zoo.reports.sections import ReportImage, ReportSection, ReportTable

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{border-bottom:1px solid #ccc;margin-top:1.6em;font-size:1.2em}
.meta{color:#555} table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} table.sortable th{cursor:pointer}
th.asc:after{content:" \\25B2"} th.desc:after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.hl td{background:#fff3c4}
figure{display:inline-block;margin:.4em .8em .4em 0;vertical-align:top} figcaption{font-size:12px;color:#555}
img{max-width:100%;image-rendering:pixelated} pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
caption{text-align:left;font-weight:600;padding:2px 0}
"""

SCRIPT = """
(function(){
  function key(cell){var v=cell.getAttribute('data-v');if(v===null)v=cell.textContent.trim();
    var n=parseFloat(v);return (v!==''&&!isNaN(n)&&isFinite(v))?[0,n]:[v===''||v==='-'?2:1,v.toLowerCase()];}
  function cmp(a,b){if(a[0]!==b[0])return a[0]-b[0];return a[1]<b[1]?-1:a[1]>b[1]?1:0;}
  function sortTable(table,col,dir){var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(r1,r2){var g1=r1.getAttribute('data-group')||'',g2=r2.getAttribute('data-group')||'';
      if(g1!==g2)return g1<g2?-1:1;var a=key(r1.cells[col]),b=key(r2.cells[col]);
      if(a[0]===2||b[0]===2)return a[0]-b[0];var c=cmp(a,b);return dir==='desc'?-c:c;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){th.className=i===col?dir:'';});
    table.setAttribute('data-sorted',table.tHead.rows[0].cells[col].textContent.trim()+':'+dir);}
  window.zooSort=sortTable;
  var tables=document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables,function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.addEventListener('click',function(){var dir=th.className==='asc'?'desc':'asc';sortTable(table,i,dir);
        if(table===tables[0]&&window.history&&history.replaceState)
          history.replaceState(null,'','#sort='+encodeURIComponent(th.textContent.trim())+':'+dir);});});});
  var m=/#sort=([^:]+):(asc|desc)/.exec(decodeURIComponent(location.hash));
  if(m&&tables.length){var t=tables[0];var heads=t.tHead.rows[0].cells;
    for(var i=0;i<heads.length;i++){if(heads[i].textContent.trim()===m[1]){
      heads[i].click();if(m[2]==='desc')heads[i].click();}}}
  function done(){var ok=0;Array.prototype.forEach.call(document.images,function(im){
      if(im.complete&&im.naturalWidth>0)ok++;});
    document.body.setAttribute('data-images',String(ok));
    document.body.setAttribute('data-tables',String(document.querySelectorAll('table').length));
    document.body.setAttribute('data-ready','1');}
  if(document.readyState==='complete')done();else window.addEventListener('load',done);
})();
"""


def cell(value: Any) -> str:
    """One table cell: numbers right-aligned and sortable by value, everything else escaped text."""
    if isinstance(value, bool) or value is None:
        text = {True: "yes", False: "no", None: "-"}[value]
        return f"<td>{text}</td>"
    if isinstance(value, numbers.Integral):  # numpy integers too
        value = int(value)
    elif isinstance(value, numbers.Real):
        value = float(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return f'<td class="num">{value}</td>'
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
        return f'<td class="num" data-v="{value!r}">{text}</td>'
    return f"<td>{escape(str(value))}</td>"


def table_html(table: ReportTable, sortable: bool = True) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    highlight = set(table.highlight)
    groups = list(table.groups) if len(table.groups) == len(table.rows) else [None] * len(table.rows)
    rows = "".join("<tr" + (' class="hl"' if i in highlight else "")
                   + (f' data-group="{escape(str(g))}"' if g is not None else "") + ">"
                   + "".join(cell(v) for v in row) + "</tr>" for i, (row, g) in enumerate(zip(table.rows, groups,
                                                                                             strict=True)))
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    kind = ' class="sortable"' if sortable else ""
    return f"<table{kind}>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def image_html(image: ReportImage) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    caption = escape(image.caption)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


def text_html(text: str) -> str:
    """Plain text: blank lines separate paragraphs; lines of a paragraph are kept."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join("<p>" + escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


def markdown_html(markdown: str) -> str:
    """The little markdown a model card uses: headings, bullet lists, fenced code, paragraphs."""
    out: list[str] = []
    in_code = in_list = False
    paragraph: list[str] = []

    def flush() -> None:
        nonlocal in_list
        if paragraph:
            out.append("<p>" + escape(" ".join(paragraph)) + "</p>")
            paragraph.clear()
        if in_list:
            out.append("</ul>")
            in_list = False

    for line in markdown.splitlines():
        if line.startswith("```"):
            flush()
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
        elif in_code:
            out.append(escape(line) + "\n")
        elif line.startswith("#"):
            flush()
            level = min(6, len(line) - len(line.lstrip("#")) + 2)
            out.append(f"<h{level}>{escape(line.lstrip('#').strip())}</h{level}>")
        elif line.lstrip().startswith("- "):
            if paragraph:
                out.append("<p>" + escape(" ".join(paragraph)) + "</p>")
                paragraph.clear()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{escape(line.lstrip()[2:])}</li>")
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
    flush()
    if in_code:
        out.append("</pre>")
    return "".join(out)


def section_html(section: ReportSection, markdown: bool = False) -> str:
    parts = [f"<section><h2>{escape(section.title)}</h2>"]
    if section.text:
        parts.append(markdown_html(section.text) if markdown else text_html(section.text))
    parts += [table_html(t) for t in section.tables]
    parts += [image_html(i) for i in section.images]
    parts.append("</section>")
    return "".join(parts)


def page(title: str, subtitle: str, sections: list[ReportSection], markdown_titles: tuple[str, ...] = ()) -> str:
    """The whole page; sections whose title is in ``markdown_titles`` have markdown text (a model card)."""
    body = "".join(section_html(s, s.title in markdown_titles) for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><h1>{escape(title)}</h1><p class="meta">{escape(subtitle)}</p>{body}'
            f"<script>{SCRIPT}</script></body></html>")
