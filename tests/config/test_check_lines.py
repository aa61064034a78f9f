"""`wireway check` reports each error on the line of the key it is about, and refuses
YAML whose aliases would expand without end."""

from __future__ import annotations

from pathlib import Path

from conftest import wireway


def check(tmp_path: Path, text: str, name: str = "p.yaml") -> list[str]:
    """The error lines of `wireway check` for one file, with the folder cut off; exit 1."""
    path = tmp_path / name
    path.write_text(text)
    result = wireway("check", str(path), env={"COLUMNS": "400"})
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    return [line.replace(f"{tmp_path}/", "") for line in result.stderr.splitlines()]


def test_a_wrong_option_value_is_reported_on_its_own_line(tmp_path: Path) -> None:
    """Block-style entries: the `address:` line, not the entry's `- type:` line."""
    errors = check(
        tmp_path,
        """pattern:
  name: lines
interfaces:
  input:
    - type: tcp
      name: raw
      address: "127.0.0.1"
    - type: mqtt
      url: mqtt://127.0.0.1:1883
      topics:
        - a/b
        - a/#/c
      qos: 7
  output:
    - type: http_client
      timeout: 5
      address: ftp://example.invalid/x
""",
    )
    assert errors == [
        "p.yaml:7 interfaces.input[0].address: expected host:port",
        "p.yaml:12 interfaces.input[1].topics[1]: `a/#/c`: # must be a whole level and the last one",
        "p.yaml:13 interfaces.input[1].qos: invalid enum value 7",
        "p.yaml:17 interfaces.output[0].address: expected an http:// or https:// URL",
        "4 error(s)",
    ]


def test_nested_unknown_keys_and_type_errors_are_on_their_lines(tmp_path: Path) -> None:
    """Inside nested options every mistake is reported, each on its own key's line."""
    errors = check(
        tmp_path,
        """pattern:
  name: nested
interfaces:
  input:
    - type: mqtt
      url: mqtt://127.0.0.1:1883
      topics: [a/b]
      topic_fields:
        device_id: -2
        floor: third
  output:
    - {type: stdout}
security:
  rate_limit:
    per_minute: lots
    burst: 0
    brust: 3
monitoring:
  metrics:
    per_devic: true
""",
    )
    assert errors == [
        "p.yaml:10 interfaces.input[0].topic_fields.floor: expected `int`, got `str`",
        "p.yaml:15 security.rate_limit.per_minute: expected `float`, got `str`",
        "p.yaml:16 security.rate_limit.burst: expected `int` >= 1",
        "p.yaml:17 security.rate_limit.brust: unknown key (did you mean `burst`?)",
        "p.yaml:20 monitoring.metrics.per_devic: unknown key (did you mean `per_device`?)",
        "5 error(s)",
    ]


def test_a_conflict_is_reported_on_both_address_lines(tmp_path: Path) -> None:
    """Two patterns on one port: each side named by its `address:` line."""
    folder = tmp_path / "both"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.yaml").write_text(f"""pattern:
  name: {name}
interfaces:
  input:
    - type: tcp
      name: raw
      address: 127.0.0.1:9912
  output:
    - {{type: stdout}}
""")
    result = wireway("check", str(folder), env={"COLUMNS": "400"})
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{folder}/b.yaml:7 interfaces.input[0].address: tcp port 9912 is also used by "
        f"{folder}/a.yaml:7 interfaces.input[0].address"
    )


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    """Nine levels of nine aliases (387 million values) end in one clear error, at once."""
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    errors = check(tmp_path, "pattern: {name: bomb}\n" + "\n".join(levels) + "\n")
    assert errors[0].startswith("p.yaml:")
    assert "YAML aliases expand to more than 100,000 values" in errors[0]
    assert errors[1:] == ["1 error(s)"]


def test_an_alias_inside_itself_is_refused(tmp_path: Path) -> None:
    """`&x [1, *x]` would expand forever: an error on its line."""
    errors = check(tmp_path, "pattern: {name: loop}\nx: &x [1, *x]\n")
    assert errors == ["p.yaml:2: YAML alias refers to a collection that holds it", "1 error(s)"]


def test_aliases_and_merge_keys_within_the_limit_work(tmp_path: Path) -> None:
    """A shared block repeated with `<<: *defaults` is an ordinary, accepted pattern."""
    path = tmp_path / "p.yaml"
    path.write_text(f"""pattern: {{name: merged}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - &file
      type: file
      address: {tmp_path}/a.jsonl
      buffer: memory
    - <<: *file
      address: {tmp_path}/b.jsonl
""")
    result = wireway("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "outputs [file, file]" in result.stdout
