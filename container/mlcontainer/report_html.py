"""``report.html``: the monitoring report for people, one self-contained file.

No script, stylesheet, font or image is fetched when it is opened (the page is read from S3
or a laptop, often offline): the styles are inline and every plot is an inline SVG drawn
here, one grouped bar chart per feature (the baseline's share of rows per bin beside the
window's). Every value from the data is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

BASE_COLOUR = "#8da0cb"
LIVE_COLOUR = "#fc8d62"
WIDTH, HEIGHT, PAD = 460, 190, 30

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.muted{color:#777}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:8px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _bin_labels(histogram: dict[str, Any]) -> list[str]:
    if "labels" in histogram:
        return [str(label) for label in histogram["labels"]]
    edges = histogram["edges"]
    labels = [f"<{edges[1]:.3g}"] if len(edges) > 2 else []
    labels += [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(1, len(edges) - 2)]
    labels.append(f"≥{edges[-2]:.3g}" if len(edges) > 2 else f"{edges[0]:.3g}")
    return labels


def bars_svg(title: str, histogram: dict[str, Any]) -> str:
    """Grouped bars of the baseline's and the window's share per bin, as SVG text: a
    y axis in percent of rows, a legend, and each bar's value in its tooltip."""
    base, live = histogram.get("baseline", []), histogram.get("live", [])
    labels = _bin_labels(histogram)
    top = max([*base, *live, 0.01])
    left = PAD + 18
    slot = (WIDTH - left - PAD / 2) / max(len(labels), 1)
    bar = slot * 0.4
    plot = HEIGHT - 30
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 40}" '
             f'role="img" aria-label="{escape(title)}">'),
             f'<text x="{left}" y="14" font-size="13" font-weight="600">{escape(title)}</text>',
             f'<line x1="{left}" y1="{HEIGHT}" x2="{WIDTH - PAD / 2}" y2="{HEIGHT}" stroke="#999"/>',
             f'<line x1="{left}" y1="{HEIGHT - plot}" x2="{left}" y2="{HEIGHT}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{HEIGHT - plot + 4}" font-size="9" text-anchor="end">{top:.0%}</text>',
             f'<text x="{left - 4}" y="{HEIGHT}" font-size="9" text-anchor="end">0%</text>']
    for i, (name, colour) in enumerate((("baseline", BASE_COLOUR), ("this window", LIVE_COLOUR))):
        x = WIDTH - 150 + i * 70
        parts.append(f'<rect x="{x}" y="6" width="9" height="9" fill="{colour}"/>'
                     f'<text x="{x + 12}" y="14" font-size="9">{name}</text>')
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.1
        for offset, shares, colour in ((0, base, BASE_COLOUR), (bar, live, LIVE_COLOUR)):
            if i < len(shares):
                h = plot * shares[i] / top
                parts.append(f'<rect x="{x + offset:.1f}" y="{HEIGHT - h:.1f}" width="{bar:.1f}" '
                             f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: '
                             f'{shares[i]:.1%}</title></rect>')
        parts.append(f'<text x="{x + bar:.1f}" y="{HEIGHT + 14}" font-size="9" text-anchor="end" '
                     f'transform="rotate(-30 {x + bar:.1f} {HEIGHT + 14})">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _flag(flag: bool, yes: str, no: str) -> str:
    return f'<span class="bad">{yes}</span>' if flag else f'<span class="ok">{no}</span>'


def _features_table(report: dict[str, Any]) -> str:
    rows = [("<tr><th>feature</th><th>distance</th><th>drift</th><th>missing</th>"
            "<th>invalid</th><th>out of range</th><th>live mean</th></tr>")]
    for name, f in report["features"].items():
        watched = "" if f["watched"] else ' <span class="muted">(not watched)</span>'
        rows.append(
            f"<tr><td>{escape(name)}{watched}</td><td>{_number(f['distance'])}</td>"
            f"<td>{_flag(f['drifted'], 'drifted', 'no')}</td><td>{f['missing']}</td>"
            f"<td>{f['invalid']}</td><td>{f['out_of_range']}</td>"
            f"<td>{_number(f.get('live', {}).get('mean'))}</td></tr>")
    p = report["prediction"]
    rows.append(f"<tr><td><i>prediction</i></td><td>{_number(p['distance'])}</td>"
                f"<td>{_flag(p['drifted'], 'drifted', 'no')}</td><td>–</td><td>{p['invalid']}</td>"
                f"<td>–</td><td>{_number(p.get('live', {}).get('mean'))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _quality_table(quality: dict[str, Any]) -> str:
    names = ("ground_truth_rows", "rows", "unmatched", "mismatched", "rmse", "mae", "r2")
    head = "".join(f"<th>{n.replace('_', ' ')}</th>" for n in names)
    cells = "".join(f"<td>{_number(quality.get(n))}</td>" for n in names)
    note = "" if quality["judged"] else (
        f'<p class="muted">Not judged: fewer than {quality["min_rows"]} labelled rows.</p>')
    return f"<table><tr>{head}</tr><tr>{cells}</tr></table>{note}"


def _summary(report: dict[str, Any]) -> str:
    r, drift, alarms = report["records"], report["drift"], report["alarms"]
    judged = "" if drift["judged"] else (
        f' <span class="muted">(not judged: fewer than {drift["min_rows"]} rows)</span>')
    items = [
        (f"<b>{r['rows']}</b> live rows in {r['records']} requests; {r['synthetic']} synthetic "
        f"requests left out; {r['malformed_rows']} malformed rows; {r['failed_answers']} "
        "answers without predictions"),
        (f"drift: <b>{drift['count']}</b> of {len(drift['watched'])} watched features over "
        f"{drift['threshold']:g}{judged}"),
        f"drift alarm ({escape(alarms['drift']['rule'])}): "
        + _flag(alarms["drift"]["breaching"], "breaching", "ok"),
        f"quality alarm ({escape(alarms['quality']['rule'])}): "
        + _flag(alarms["quality"]["breaching"], "breaching", "ok"),
    ]
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def render(report: dict[str, Any]) -> str:
    """The whole page."""
    window = report["window"]
    span = f"{window['start'] or 'the first record'} to {window['end'] or 'the last record'}"
    plots = [bars_svg(f"{name}  (distance {_number(f['distance'], 3)})", f["histogram"])
             for name, f in report["features"].items()]
    if "histogram" in report["prediction"]:
        plots.append(bars_svg(f"prediction  (distance {_number(report['prediction']['distance'], 3)})",
                              report["prediction"]["histogram"]))
    legend = (f'<p class="legend">share of rows per bin:<span style="background:{BASE_COLOUR}">'
              f'</span>baseline<span style="background:{LIVE_COLOUR}"></span>this window</p>')
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Monitoring report: {escape(report['endpoint'])}</title><style>{STYLE}</style>"
        "</head><body>"
        f"<h1>Monitoring report: {escape(report['endpoint'])}</h1>"
        f"<p class=\"muted\">{escape(span)} · {escape(report['drift']['method'])}</p>"
        f"<h2>Summary</h2>{_summary(report)}"
        f"<h2>Data quality and drift</h2>{_features_table(report)}"
        f"<h2>Distributions</h2>{legend}<div class=\"grid\">"
        + "".join(f'<div class="card">{plot}</div>' for plot in plots)
        + f"</div><h2>Model quality (ground truth)</h2>{_quality_table(report['model_quality'])}"
        "</body></html>\n"
    )
