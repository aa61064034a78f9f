"""`wireway check`: every error with file, line and key path; a summary when clean."""

from __future__ import annotations

from conftest import FIXTURES, wireway

EXPECTED_BROKEN = """\
broken/a_unknown_keys.yaml:4 interfaces.input[0].address: required key is missing
broken/a_unknown_keys.yaml:5 interfaces.input[0].adress: unknown key (did you mean `address`?)
broken/a_unknown_keys.yaml:9 interfaces.output[0].fromat: unknown key (did you mean `format`?)
broken/a_unknown_keys.yaml:11 settings.retries: expected `int`, got `str`
broken/a_unknown_keys.yaml:12 settings.bufer_size: unknown key (did you mean `buffer_size`?)
broken/b_types.yaml:4 interfaces.input[0].address: expected host:port
broken/b_types.yaml:5 interfaces.input[1].type: unknown input type `mqqt` (did you mean `mqtt`?)
broken/b_types.yaml:9 interfaces.output[1].address: expected an http:// or https:// URL
broken/b_types.yaml:10 interfaces.output[1].when: CEL syntax error at column 15 in 'payload.temp >': Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
broken/b_types.yaml:12 processors[0].validate.schema: no schema file schemas/missing.json beside the pattern file, nor a built-in schema (sensor_reading)
broken/b_types.yaml:13 processors[1].transform.set.payload.seen_by: CEL syntax error at column 1 in "'kit-01": Syntax error: token recognition error at: ''kit-01'
broken/b_types.yaml:14 processors[2].enrichh: unknown processor (did you mean `enrich`?)
broken/c_env.yaml:4 interfaces.input[0].address: environment variable WIREWAY_TEST_UNSET_PORT is not set (use ${WIREWAY_TEST_UNSET_PORT:-default})
broken/e_syntax.yaml:2: YAML syntax: expected ',' or '}', but got ':'
broken/f_conflict.yaml:4 interfaces.input[0].address: tcp port 9911 is also used by broken/d_conflict.yaml:4 interfaces.input[0].address
broken/f_conflict.yaml:6 interfaces.output[0].address: file /tmp/wireway-check-shared.jsonl is also used by broken/d_conflict.yaml:6 interfaces.output[0].address
16 error(s)
"""


def test_broken_folder_prints_every_error_exactly() -> None:
    """Each broken file's errors come out as file:line key.path: message, exit 1."""
    result = wireway("check", "broken", cwd=FIXTURES, env={"COLUMNS": "400"})
    assert result.returncode == 1
    assert result.stderr == EXPECTED_BROKEN
    assert "Traceback" not in result.stderr


def test_good_file_prints_one_summary_line() -> None:
    """A clean pattern exits 0 with one line naming its parts."""
    result = wireway("check", "good", cwd=FIXTURES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "ok good/orders.yaml: pattern orders (port-mapping) inputs [http] -> "
        "steps [validate, transform, filter] -> outputs [file, stdout]"
    )


def test_missing_path_is_a_clear_error() -> None:
    """A path that does not exist is an error line, not a traceback."""
    result = wireway("check", "nope.yaml", cwd=FIXTURES)
    assert result.returncode == 1
    assert result.stderr.startswith("nope.yaml: no such file or folder")


def test_run_with_broken_config_exits_1_without_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`wireway run` refuses a broken file the same way `check` does."""
    result = wireway("run", str(FIXTURES / "broken" / "a_unknown_keys.yaml"), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "interfaces.input[0].adress: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
