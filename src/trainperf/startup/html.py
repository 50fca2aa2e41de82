"""A self-contained HTML view of an :class:`ImportReport`: no network, no files beside it.

An icicle of the import tree (click a module to zoom into it, click the top bar to
zoom out), then the tables of the text report.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from trainperf.startup.report import ImportReport, TreeNode

__all__ = ["render_html", "write_html"]

_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse} td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}
#icicle{border:1px solid #ddd}
.node{display:flex;flex-direction:column;min-width:0}
.bar{height:20px;line-height:20px;font-size:11px;white-space:nowrap;overflow:hidden;
 text-overflow:ellipsis;padding:0 3px;border:1px solid #fff;cursor:pointer;
 background:hsl(var(--h),60%,78%)}
.kids{display:flex;flex-direction:row}
.pad{min-width:0}
.hidden{display:none}
"""

_SCRIPT = """
document.querySelectorAll('#icicle .bar').forEach(function(bar){
  bar.addEventListener('click',function(ev){
    ev.stopPropagation();
    var node=bar.parentElement, zoomed=node.classList.contains('zoom');
    document.querySelectorAll('#icicle .hidden').forEach(function(n){n.classList.remove('hidden')});
    document.querySelectorAll('#icicle .zoom').forEach(function(n){n.classList.remove('zoom')});
    if(zoomed){return}
    node.classList.add('zoom');
    var cur=node;
    while(cur.parentElement && cur.parentElement.id!=='icicle'){
      var box=cur.parentElement;
      Array.prototype.forEach.call(box.children,function(s){if(s!==cur){s.classList.add('hidden')}});
      cur=box.parentElement;
    }
    Array.prototype.forEach.call(document.getElementById('icicle').children,function(s){
      if(s!==cur){s.classList.add('hidden')}});
  });
});
"""


def _ms(value: float) -> str:
    return f"{value * 1e3:,.1f} ms"


def _node(node: TreeNode, hue: int) -> str:
    title = html.escape(f"{node.name}: {_ms(node.cumulative_s)} ({_ms(node.self_s)} own)")
    kids = "".join(_node(c, (hue + 37 * i) % 360) for i, c in enumerate(node.children))
    pad = max(node.self_s, 0.0)
    return (
        f'<div class="node" style="flex:{max(node.cumulative_s, 1e-9):.9f} 1 0">'
        f'<div class="bar" style="--h:{hue}" title="{title}">{html.escape(node.name)} '
        f"{_ms(node.cumulative_s)}</div>"
        f'<div class="kids">{kids}<div class="pad" style="flex:{pad:.9f} 1 0"></div></div></div>'
    )


def render_html(report: ImportReport) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><td class="n">{_ms(c.exclusive_s)}</td><td class="n">{_ms(c.cumulative_s)}</td>'
        f"<td><code>{e(c.where)}</code></td><td><code>{e(c.statement)}</code></td></tr>"
        for c in report.lines[:50]
    )
    chains = {c.package: c for c in report.chains}
    packages = "".join(
        f'<tr><td>{e(p.name)}</td><td class="n">{_ms(p.self_s)}</td>'
        f'<td class="n">{_ms(p.cumulative_s)}</td><td class="n">{p.modules}</td>'
        f"<td>{e(' → '.join(chains[p.name].path)) if p.name in chains else ''}</td></tr>"
        for p in report.packages
    )
    groups = "".join(
        f'<tr><td class="n">{_ms(g.saving_s)}</td><td><code>{e(", ".join(g.starts))}</code></td>'
        f"<td>{e(', '.join(g.packages))}</td></tr>"
        for g in report.groups
    )
    icicle = "".join(_node(root, (i * 67) % 360) for i, root in enumerate(report.tree))
    optional = ""
    if report.optional_s > 0:
        optional = (
            f"<p>{_ms(report.optional_s)} is spent only because optional packages are "
            f"installed: {e(', '.join(report.optional_packages))}.</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>trainperf imports: {e(report.target)}</title><style>{_STYLE}</style></head>
<body>
<h1>Imports of <code>{e(report.target)}</code></h1>
<p>{report.total_s:.3f} s, {report.modules:,} modules, median of {report.runs} runs.</p>
<h2>Import tree</h2>
<p>Width is time. Click a module to zoom in; click it again to zoom out.</p>
<div id="icicle" class="kids">{icicle}</div>
<h2>Your import statements</h2>
<p>Exclusive: saved by deferring that statement alone. Cumulative: what
<code>-X importtime</code> charges it.</p>
<table><tr><th>exclusive</th><th>cumulative</th><th>where</th><th>statement</th></tr>{rows}
</table>
<h2>Deferred together</h2>
<table><tr><th>saving</th><th>statements</th><th>heavy packages dropped</th></tr>{groups}</table>
<h2>Packages</h2>
<table><tr><th>package</th><th>own</th><th>with deps</th><th>modules</th><th>reached through</th>
</tr>{packages}</table>
{optional}
<script>{_SCRIPT}</script>
</body></html>
"""


def write_html(report: ImportReport, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")
