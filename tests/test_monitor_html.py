"""The run page's plots: ticks in plain numbers with units, each chart named for what it is."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

import pytest

from trainperf.monitoring.analyze import summarize
from trainperf.monitoring.html import Axis, amount, bars, render_run_html
from trainperf.monitoring.records import Period
from trainperf.monitoring.sampler import Sample

SVG = "{http://www.w3.org/2000/svg}"
TICK = re.compile(r"^[\d,]+(\.\d+)?( (µs|ms|s|samples/s|MiB|%))?$")


def charts(page: str) -> list[tuple[str, ET.Element]]:
    """Each ``<svg>`` of the page, parsed, with the ``<h3>`` heading above it."""
    out = []
    for match in re.finditer(r"<svg\b.*?</svg>", page, flags=re.S):
        heading = re.findall(r"<h3>(.*?)</h3>", page[: match.start()], flags=re.S)
        svg = match.group(0).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1)
        out.append((heading[-1] if heading else "", ET.fromstring(svg)))
    return out


def ticks(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text") if t.get("class") == "tick"]


def fast_run() -> tuple[list[Period], list[Sample]]:
    """Steps of about 0.12 ms: what -- with %g -- once read '1.2e-04' on the axis."""
    periods = [
        Period("train", i, i // 20, i * 2e-4, 1.2e-4 + 1e-6 * (i % 7), 4e-5 + 1e-6 * (i % 5), 8)
        for i in range(40)
    ]
    periods.append(Period("val", 0, 0, 0.01, 0.002, 0.001, 16))
    samples = [
        Sample(
            t_s=0.002 * i,
            rss_bytes=(300 + i) * 2**20,
            children_rss_bytes=0,
            cpu_percent=95.0,
            children_cpu_percent=0.0,
            children=0,
        )
        for i in range(5)
    ]
    return periods, samples


def test_axis_ticks_are_round_numbers_in_a_readable_unit() -> None:
    short = Axis(0.00012, "s")
    assert [short.label(t) for t in short.ticks] == ["0 µs", "50 µs", "100 µs", "150 µs"]
    step = Axis(0.6, "s")
    assert [step.label(t) for t in step.ticks] == ["0 ms", "200 ms", "400 ms", "600 ms"]
    rate = Axis(25_961.0, "samples/s")
    assert rate.label(rate.ticks[-1]) == "30,000 samples/s"
    counts = Axis(3, "", integer=True)
    assert [counts.label(t) for t in counts.ticks] == ["0", "1", "2", "3"]
    share = Axis(62.0, "%")
    assert [share.label(t) for t in share.ticks] == ["0 %", "20 %", "40 %", "60 %", "80 %"]
    tiny = Axis(0.0003, "MiB")  # no unit to scale to: decimals, never 3e-04
    assert [tiny.label(t) for t in tiny.ticks] == [
        "0 MiB",
        "0.0001 MiB",
        "0.0002 MiB",
        "0.0003 MiB",
    ]


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.00012, "s", "120 µs"),
        (0.08, "s", "80.0 ms"),
        (12.5, "s", "12.5 s"),
        (0.0, "s", "0 s"),
        (25_961.3, "samples/s", "25,961 samples/s"),
    ],
)
def test_amounts_are_plain_decimals(value: float, unit: str, shown: str) -> None:
    assert amount(value, unit) == shown


def test_every_chart_has_unit_ticks_without_scientific_notation() -> None:
    periods, samples = fast_run()
    page = render_run_html("r", summarize(periods), periods, samples)
    found = charts(page)
    assert len(found) == 5  # composition, histogram, throughput, memory, training/validation
    units = set()
    for heading, svg in found:
        labels = ticks(svg)
        assert len(labels) >= 3, heading
        for label in labels:
            assert TICK.match(label), (heading, label)
            assert "e-0" not in label
            assert "e+" not in label
        units |= {label.split(" ", 1)[1] for label in labels if " " in label}
        assert "max " not in "".join(svg.itertext())  # the old '(max 1.2e-04)' label
    assert {"µs", "ms", "samples/s", "MiB"} <= units
    composition = found[0][1]
    assert "150 µs" in ticks(composition)  # 0.12 ms steps, on an axis in µs


def test_only_the_histogram_is_called_a_histogram() -> None:
    periods, samples = fast_run()
    page = render_run_html("r", summarize(periods), periods, samples)
    kinds = {heading: svg.get("aria-label", "") for heading, svg in charts(page)}
    histograms = [h for h, kind in kinds.items() if kind.startswith("histogram:")]
    assert histograms == ["Histogram of data wait per training step"]
    for heading, kind in kinds.items():
        assert ("histogram" in heading.lower()) == kind.startswith("histogram:"), heading
        assert kind.split(":")[0] in {"histogram", "line chart", "bar chart", "stacked area chart"}


def test_bars_label_each_row_and_the_value_axis() -> None:
    svg = ET.fromstring(
        bars([("built", 0.08, "#000"), ("read", 0.00039, "#000")], unit="s", label="time").replace(
            "<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1
        )
    )
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert "built: 80.0 ms" in texts
    assert "read: 390 µs" in texts
    assert ticks(svg)[-1] == "80 ms"
    assert svg.get("aria-label") == "bar chart: time"


def test_no_findings_is_a_sentence_not_an_empty_table() -> None:
    periods, samples = fast_run()
    summary = dataclasses.replace(summarize(periods), findings=())
    page = render_run_html("r", summary, periods, samples)
    assert "The monitor found nothing to name in this run." in page
    assert "<th>finding</th>" not in page
    for table in re.findall(r"<table>.*?</table>", page, flags=re.S):
        assert "<td>" in table  # no table is only its headers
