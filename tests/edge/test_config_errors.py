"""Each broken config gives one precise error: where, which key, what was found and expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.cli.main import main
from edge.config import BoardConfig, ConfigError, load_board_config, parse_config_text
from edge.config.schema import SCHEMA_PATH, board_schema_text

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
node:
  id: cell-07
  site: dc-berlin
mcus:
  - name: main
    port: /dev/ttyACM0
    baud: 250000
    watchdog_ms: 500
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "cell.yaml", BoardConfig)
    return [str(i) for i in info.value.issues]


def test_good_config_loads_with_defaults():
    cfg = parse_config_text(GOOD, "cell.yaml", BoardConfig)
    assert cfg.node.id == "cell-07"
    assert cfg.mcus[0].heartbeat_interval_ms == 125


@pytest.mark.parametrize("example", sorted((REPO / "configs" / "examples").glob("*.yaml")))
def test_shipped_examples_are_valid(example: Path):
    load_board_config(example)


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (GOOD.replace("baud: 250000", "baud: fast"),
         "cell.yaml:7:11: mcus[0].baud: got 'fast'; expected a valid integer"),
        (GOOD.replace("baud: 250000", "baud: 12345"),
         "cell.yaml:7:11: mcus[0].baud: got 12345; expected a standard baud rate"),
        (GOOD.replace("  site:", "  stie:"),
         "cell.yaml:3:3: node.stie: unknown key 'stie'; did you mean 'site'?"),
        (GOOD.replace("    watchdog_ms: 500", "    watchdog: 500"),
         "cell.yaml:8:5: mcus[0].watchdog: unknown key 'watchdog'; did you mean 'watchdog_ms'?"),
        (GOOD.replace("id: cell-07", "id: Cell 07"),
         "cell.yaml:2:7: node.id: got 'Cell 07'; expected an identifier"),
        (GOOD.replace("watchdog_ms: 500", "watchdog_ms: 5"),
         "cell.yaml:8:18: mcus[0].watchdog_ms: got 5; expected greater than or equal to 20"),
        (GOOD.replace("watchdog_ms: 500", "watchdog_ms: 500\n    heartbeat_ms: 400"),
         "cell.yaml:5:5: mcus[0]: heartbeat_ms (400) must be at most half of watchdog_ms"),
        (GOOD.replace("  site: dc-berlin\n", ""),
         "cell.yaml:2:3: node.site: missing required key"),
        (GOOD + "  - name: main\n    port: /dev/ttyACM1\n",
         "cell.yaml:5:3: mcus: mcu 'main' appears more than once"),
        (GOOD.replace("  site: dc-berlin", "  site: dc-berlin\n  id: again"),
         "cell.yaml:4:3: YAML error: found duplicate key \"id\""),
        (GOOD.replace("mcus:", "mcus: [").replace("  - name", "  name", 1),
         "cell.yaml:"),
        ("", "cell.yaml:1:1: the file is empty"),
        ("- just\n- a list\n", "cell.yaml:1:1: expected a mapping of keys at the top level"),
    ],
)  # fmt: skip
def test_each_broken_config_gives_one_precise_error(broken: str, expected: str):
    errors = _errors(broken)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors[0]


def test_yaml_syntax_error_is_located():
    (error,) = _errors("node:\n  id: [a, b\n  site: x\n")
    assert error.startswith("cell.yaml:3:") and "YAML syntax error" in error


def test_all_errors_are_reported_not_just_the_first():
    text = GOOD.replace("baud: 250000", "baud: fast").replace("  site:", "  stie:")
    assert len(_errors(text)) == 2  # bad baud, unknown 'stie' (its 'missing site' is implied)


def test_yaml_1_2_keeps_norway_and_on_as_text():
    cfg = parse_config_text(
        GOOD.replace("description", "x").replace(
            "site: dc-berlin", "site: dc-berlin\n  description: no"
        ),
        "c.yaml",
        BoardConfig,
    )
    assert cfg.node.description == "no"


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_board_config(tmp_path / "nope.yaml")


def test_committed_schema_is_current():
    assert SCHEMA_PATH.read_text() == board_schema_text(), (
        "configs/schema.json is stale: run 'wolfpack config schema'"
    )


def test_cli_validate_reports_and_exits_nonzero(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("  site:", "  stie:"))
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["config", "validate", str(good)]) == 0
    assert main(["config", "validate", "--json", str(bad)]) == 1
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["valid"] is False
    assert {(e["line"], e["column"], e["path"]) for e in out["errors"]} >= {(3, 3, "node.stie")}


yaml_scalars = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.text(max_size=20)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=12), yaml_values, max_size=6))
def test_any_document_is_accepted_or_refused_with_located_errors(doc):
    """The loader never crashes: any YAML either validates or yields located issues."""
    text = json.dumps(doc)  # JSON is YAML 1.2
    try:
        parse_config_text(text, "fuzz.yaml", BoardConfig)
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.file == "fuzz.yaml" and issue.line is not None and issue.message


@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text):
    try:
        parse_config_text(text, "fuzz.yaml", BoardConfig)
    except ConfigError as exc:
        assert exc.issues and all(i.message for i in exc.issues)
