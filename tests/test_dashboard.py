"""dashboards/msnbridge.json only charts metrics the bridge really exports.

The exported names come from a live `Metrics` registry, so renaming a metric (or a label)
without updating the dashboard fails here.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from msnbridge.metrics import Metrics
from msnbridge.pools.metrics import PoolMetrics

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "msnbridge.json"
DATASOURCE_UID = "${DS_PROMETHEUS}"

# Words of PromQL that look like identifiers but are not metric names.
PROMQL_WORDS = frozenset(
    {
        # aggregation operators (may be followed by by/without before their parenthesis)
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
        # keywords and set operators
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
        "and", "or", "unless", "atan2", "offset", "start", "end", "inf", "nan",
    }
)  # fmt: skip
# Labels every scraped series carries, added by Prometheus rather than the bridge.
TARGET_LABELS = frozenset({"job", "instance"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")  # 0.99, 5m, 1e3, 0x1f
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are neither functions
    (followed by '('), keywords, label names (inside {} or by()/on()… lists) nor numbers."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VAR.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _CLAUSE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        if m.group() in PROMQL_WORDS or re.match(r"\s*\(", text[m.end() :]):
            continue
        names.add(m.group())
    return names


def label_references(expr: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """Label names an expression groups or joins by, and its (label, op, value) matchers."""
    text = _GRAFANA_VAR.sub("$", expr)
    grouped = {
        label.strip()
        for m in _CLAUSE.finditer(_STRING.sub('""', text))
        for label in m.group(2).split(",")
        if label.strip()
    }
    matchers = [
        (name, op, json.loads(quoted))
        for block in _MATCHERS.findall(text)
        for name, op, quoted in _MATCHER.findall(block)
    ]
    return grouped, matchers


@dataclass(frozen=True)
class Family:
    type: str
    labels: frozenset[str]
    values: dict[str, frozenset[str]]


def exported_families(metrics: Metrics) -> dict[str, Family]:
    """Family name → type, label names and the label values seen (all primed at zero)."""
    families: dict[str, Family] = {}
    for fam in metrics.registry.collect():
        values: dict[str, set[str]] = {}
        for sample in fam.samples:
            for label, v in sample.labels.items():
                values.setdefault(label, set()).add(v)
        families[fam.name] = Family(
            fam.type, frozenset(values), {k: frozenset(v) for k, v in values.items()}
        )
    return families


# Series a family of each type exposes, as suffixes of the family name.
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "gauge": ("",),
    "stateset": ("",),
    "unknown": ("",),
}


def resolve(name: str, families: dict[str, Family]) -> tuple[str, Family] | None:
    """The family a series name belongs to, honouring which suffixes its type has:
    `x_bucket` is only valid for a histogram x, `x_total` only for a counter x."""
    for base, fam in families.items():
        for suffix in _SUFFIXES.get(fam.type, ("",)):
            if name == base + suffix:
                return base, fam
    return None


def check_expr(expr: str, families: dict[str, Family]) -> list[str]:
    """Everything wrong with one expression; empty when it only reads real series."""
    names = metric_names(expr)
    if not names:
        return [f"no metric in {expr!r}"]
    problems, resolved = [], []
    for name in sorted(names):
        hit = resolve(name, families)
        if hit is None:
            problems.append(f"unknown metric {name!r} in {expr!r}")
        else:
            resolved.append((name, hit[1]))
    if problems:
        return problems
    known_labels = set(TARGET_LABELS)
    for name, fam in resolved:
        known_labels |= fam.labels if name.endswith("_bucket") else fam.labels - {"le"}
    grouped, matchers = label_references(expr)
    for label in sorted(grouped | {m[0] for m in matchers}):
        if label not in known_labels and label != "__name__":
            problems.append(f"unknown label {label!r} in {expr!r}")
    for label, op, v in matchers:
        # Exact matchers on bridge labels must name a value the bridge can emit.
        if op in ("=", "!=") and label not in TARGET_LABELS and "$" not in v:
            emitted = set().union(*(f.values.get(label, frozenset()) for _, f in resolved))
            if v not in emitted:
                problems.append(f"label value {label}={v!r} never exported, in {expr!r}")
    return problems


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = _LABEL_VALUES.match(query)
        assert m, f"variable {var['name']}: only label_values(selector, label) is checked"
        yield f"variable {var['name']}", m.group(1)


def check_dashboard(dashboard: dict[str, Any], families: dict[str, Family]) -> list[str]:
    return [
        f"{where}: {problem}"
        for where, expr in dashboard_exprs(dashboard)
        for problem in check_expr(expr, families)
    ]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def families() -> dict[str, Family]:
    metrics = Metrics()
    PoolMetrics(metrics.registry, "pool-a")  # what a `msnbridge pool` process adds
    return exported_families(metrics)


def test_every_query_reads_exported_metrics(
    dashboard: dict[str, Any], families: dict[str, Family]
) -> None:
    assert len(list(dashboard_exprs(dashboard))) >= 20
    assert check_dashboard(dashboard, families) == []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(msnbridge_bogus_total[5m])", "unknown metric 'msnbridge_bogus_total'"),
        ("msnbridge_logins_bucket", "unknown metric 'msnbridge_logins_bucket'"),
        ("msnbridge_logins", "unknown metric 'msnbridge_logins'"),  # counters end in _total
        ("msnbridge_puppet_sessions_total", "unknown metric"),  # a gauge has no _total
        (
            "histogram_quantile(0.9, sum by (le) (rate(msnbridge_bridge_latency_bucket[5m])))",
            "unknown metric 'msnbridge_bridge_latency_bucket'",
        ),
        ("sum by (directoin) (rate(msnbridge_messages_total[5m]))", "unknown label 'directoin'"),
        ('msnbridge_messages_total{result="sent"}', "label value result='sent'"),
        ('msnbridge_portals{le="1"}', "unknown label 'le'"),
        ("vector(1)", "no metric"),
    ],
)
def test_checker_catches_wrong_expressions(
    expr: str, problem: str, families: dict[str, Family]
) -> None:
    problems = check_expr(expr, families)
    assert problems and problem in problems[0], problems


def test_checker_catches_a_renamed_metric_in_the_dashboard(
    dashboard: dict[str, Any], families: dict[str, Family]
) -> None:
    broken = copy.deepcopy(dashboard)
    target = next(t for p in panels(broken) for t in p.get("targets", []) if "_bucket" in t["expr"])
    target["expr"] = target["expr"].replace("latency_seconds_bucket", "latency_ms_bucket")
    problems = check_dashboard(broken, families)
    assert len(problems) == 1 and "msnbridge_bridge_latency_ms_bucket" in problems[0]
    # And a metric the bridge stops exporting breaks every panel that charts it.
    without_portals = {k: v for k, v in families.items() if k != "msnbridge_portals"}
    assert any("msnbridge_portals" in p for p in check_dashboard(dashboard, without_portals))


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le, direction) (rate(a_bucket{job=~"$job"}'
            "[$__rate_interval])))",
            {"a_bucket"},
        ),
        ("sum(rate(x_sum[5m])) / sum(rate(x_count[5m]))", {"x_sum", "x_count"}),
        ("sum without (instance) (y) > on (job) group_left (version) z", {"y", "z"}),
        ('time() - max(p{instance=~"${instance:regex}"}) offset 1h', {"p"}),
        ('count_values("v", w) or vector(0) unless q2 and bool 1e3', {"w", "q2"}),
        ("topk by (kind) (5, e) + ns:rule:rate5m", {"e", "ns:rule:rate5m"}),
        ("rate(m[5m:30s])", {"m"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_bridge_metric_is_charted(
    dashboard: dict[str, Any], families: dict[str, Family]
) -> None:
    charted = {
        hit[0]
        for _, expr in dashboard_exprs(dashboard)
        for name in metric_names(expr)
        if (hit := resolve(name, families))
    }
    bridge = {name for name in families if name.startswith("msnbridge")}
    assert bridge - charted == set()
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= charted


def test_latency_panel_has_p50_p90_p99(dashboard: dict[str, Any]) -> None:
    exprs = [expr for _, expr in dashboard_exprs(dashboard)]
    for phi in ("0.5", "0.9", "0.99"):
        assert any(
            re.match(rf"histogram_quantile\({re.escape(phi)},.*rate\(\w+_seconds_bucket", e)
            for e in exprs
        ), phi


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ds_vars = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in ds_vars] == [("DS_PROMETHEUS", "prometheus")]

    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for p in all_panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & occupied, f"{p['title']} overlaps another panel"
        occupied |= cells
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == DATASOURCE_UID, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in p["targets"]), p["title"]
