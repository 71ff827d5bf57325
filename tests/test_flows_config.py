"""FlowConfig: loading from YAML and dicts, and validation errors that name the phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley.errors import ConfigError
from parley.flows import FlowConfig, ProgressTracker, load_flow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def flow(phases: list[dict[str, Any]], initial: str | None = "a", **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"goal": "test", "phases": phases, **kw}
    if initial is not None:
        data["initial"] = initial
    return data


def ph(name: str, *nxt: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "instructions": f"do {name}", "next": list(nxt), **kw}


@pytest.mark.parametrize(
    "name", ["language_assessment", "restaurant_ordering", "financial_advisor"]
)
def test_the_example_flows_load(name: str) -> None:
    f = load_flow(EXAMPLES / f"{name}.yaml")
    assert f.name == name and f.goal and len(f.phases) >= 4
    assert f.initial == f.phases[0].name
    assert any(p.final for p in f.phases)


def test_yaml_shorthands_and_fields() -> None:
    f = FlowConfig.from_yaml(
        """
name: demo
goal: Know the caller.
initial: ask
phases:
  - name: ask
    instructions: Ask their name.
    criteria: [asked, {name: confirmed, description: they said yes}]
    observations: [caller_name]
    next: [bye]
    max_turns: 2
    on_budget_exhausted: bye
  - name: bye
    instructions: Say goodbye.
"""
    )
    ask = f.phase("ask")
    assert ask.criterion_names == ("asked", "confirmed")
    assert ask.criteria[1].description == "they said yes"
    assert ask.observations == ("caller_name",) and ask.max_turns == 2
    assert f.phase("bye").final and not ask.final
    assert f.remaining_after("ask") == 1 and f.remaining_after("bye") == 0


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (flow([ph("a", "b"), ph("c")]), ["phase 'a'", "next phase 'b' is not defined"]),
        (flow([ph("a", "b"), ph("b"), ph("orphan", "b")]), ["phase 'orphan'", "unreachable"]),
        (
            flow([ph("a", "b", "end"), ph("b", "c"), ph("c", "b"), ph("end")]),
            ["phase 'b'", "cycle without an exit", "b -> c -> b"],
        ),
        (flow([ph("a", "b"), ph("b", "a")]), ["phase 'a'", "cycle without an exit"]),
        (flow([ph("a", "b"), ph("b")], initial=None), ["initial", "no initial phase"]),
        (flow([ph("a", "b"), ph("b")], initial="start"), ["initial phase 'start'", "a, b"]),
        (flow([ph("a", "b"), ph("b"), ph("b")]), ["phase 'b' is defined twice"]),
        (flow([ph("a", "a", "b"), ph("b")]), ["phase 'a'", "itself"]),
        (
            flow([ph("a", "b", on_budget_exhausted="b"), ph("b")]),
            ["phase 'a'", "on_budget_exhausted needs max_turns"],
        ),
        (
            flow([ph("a", "b", max_turns=2, on_budget_exhausted="c"), ph("b", "c"), ph("c")]),
            ["phase 'a'", "'c' is not one of its next phases"],
        ),
        (flow([ph("a", criteria=["x", "x"])]), ["phase 'a'", "criterion is listed twice"]),
        (flow([{"name": "a", "next": []}]), ["phase 'a'", "instructions", "Field required"]),
        (flow([ph("a", max_turns=0)]), ["phase 'a'", "max_turns"]),
        (flow([ph("a", colour="red")]), ["phase 'a'", "colour", "Extra inputs"]),
        (flow([ph("bad name")]), ["phase 'bad name'", "name: String should match"]),
        (flow([{"instructions": "x"}]), ["phases.0", "name", "Field required"]),
        (flow([]), ["flow", "phases"]),
        ({"phases": [ph("a")], "initial": "a"}, ["flow", "goal"]),
    ],
)
def test_invalid_flows_fail_naming_the_problem(data: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        FlowConfig.from_dict(data)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_invalid_flow_file_names_file_and_phase(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "goal: g\ninitial: a\nphases:\n"
        "  - {name: a, instructions: x, next: [b]}\n"
        "  - {name: b, instructions: y, next: [a]}\n"
    )
    with pytest.raises(ConfigError, match=r"broken\.yaml: .*phase 'a' is in a cycle"):
        load_flow(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        FlowConfig.from_yaml("goal: [unclosed")
    with pytest.raises(ConfigError, match="mapping"):
        FlowConfig.from_yaml("- just a list")
    with pytest.raises(ConfigError, match="cannot read flow file"):
        load_flow(tmp_path / "missing.yaml")


def test_progress_counts_phases_and_requirements() -> None:
    f = FlowConfig.from_dict(
        flow(
            [
                ph("a", "b", criteria=["x"], observations=["k"]),
                ph("b", "c"),
                ph("c", criteria=["done"]),
            ]
        )
    )
    t = ProgressTracker(f)
    assert t.snapshot().percent == 0.0  # nothing done, three phases to go
    t.record("k", "v")
    assert t.snapshot().percent == round(100 * 0.5 / 3, 1)
    t.mark("x")
    t.enter("b")
    t.enter("c")
    snap = t.snapshot()
    assert snap.percent == round(100 * 2 / 3, 1) and not snap.complete
    assert snap.pending_criteria == ("done",)
    t.mark("done")
    snap = t.snapshot()
    assert snap.percent == 100.0 and snap.complete
    assert snap.completed_criteria == {"a": ("x",), "c": ("done",)}
    assert snap.phases_visited == ("a", "b", "c") and snap.observations == {"k": "v"}
