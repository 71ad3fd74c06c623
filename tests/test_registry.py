import re
from collections import Counter
from pathlib import Path

import pytest

from unioncat.registry import Problem, RegistryError, load_registry, validate_registry

COMMITTED_SOURCES = Path(__file__).resolve().parents[1] / "sources.toml"
CITIES = {"杭州", "宁波", "温州", "嘉兴", "湖州", "绍兴", "金华", "衢州", "舟山", "台州", "丽水"}

VALID_LIBRARY = """\
[[library]]
id = "ZJ001"
name = "浙江图书馆"
city = "杭州"
level = "province"
protocol = "file"
endpoint = "drops/ZJ001"
"""

# Line numbers matter: the test below expects each problem on the line it is marked.
BROKEN_REGISTRY = """\
[[library]]
id = "ZJ001"
name = "浙江图书馆"
city = "杭州"
level = "province"
protcol = "file"
endpoint = "drops/ZJ001"

[[library]]
id = "ZJ001"
name = "杭州图书馆"
city = "杭州"
level = "city"
protocol = "ftp"
endpoint = "drops/ZJ002"
encoding = "big5"

[[library]]
id = "ZJ003"
name = "宁波图书馆"
city = "宁波"
level = "city"
protocol = "oai"
enabled = "yes"

[[library]]
id = "ZJ004"
name = "温州市图书馆"
city = "温州"
level = "city"
protocol = "z3950"
endpoint = "reader:s3cret@opac.example.cn:210/WZLIB"
"""


def write(tmp_path: Path, text: str, name: str = "sources.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def with_value(key: str, value: str) -> str:
    """VALID_LIBRARY with `key = value` set in place or, for a new key, appended on line 8."""
    old = re.search(rf"^{key} = .*$", VALID_LIBRARY, re.MULTILINE)
    new = f"{key} = {value}"
    return VALID_LIBRARY.replace(old[0], new) if old else f"{VALID_LIBRARY}{new}\n"


def test_committed_registry_is_valid_and_complete():
    assert validate_registry(COMMITTED_SOURCES) == []
    libraries = load_registry(COMMITTED_SOURCES).libraries
    levels = Counter(library.level for library in libraries)

    assert 90 <= len(libraries) <= 110
    assert levels["province"] == 1 and levels["city"] == 11
    assert len({library.id for library in libraries}) == len(libraries)
    assert len({library.name for library in libraries}) == len(libraries)
    assert {library.city for library in libraries if library.level == "city"} == CITIES
    assert {library.city for library in libraries if library.level == "county"} == CITIES
    assert [library.id for library in libraries][:2] == ["ZJ001", "ZJ002"]
    assert {library.protocol for library in libraries} == {"z3950", "sru", "oai", "file"} and all(library.enabled for library in libraries)


def test_every_problem_is_reported_in_one_pass_with_its_line(tmp_path):
    problems = validate_registry(write(tmp_path, BROKEN_REGISTRY))

    found = [(problem.line, problem.library_id, problem.message) for problem in problems]
    expected = [
        (1, "ZJ001", "missing required key 'protocol'"),
        (6, "ZJ001", "unknown key 'protcol' (did you mean 'protocol'?)"),
        (10, "ZJ001", "duplicate id 'ZJ001' (first used on line 2)"),
        (14, "ZJ001", "protocol 'ftp' is not one of: oai, sru, z3950, file"),
        (16, "ZJ001", "encoding 'big5' is not one of:"),
        (18, "ZJ003", "missing required key 'endpoint'"),
        (24, "ZJ003", "'enabled' must be a boolean, got string 'yes'"),
        (32, "ZJ004", "credentials belong in an Airflow connection (conn_id) or the environment"),
    ]
    assert len(found) == len(expected), "\n".join(map(str, problems))
    for (line, library_id, message), (want_line, want_id, want_message) in zip(found, expected):
        assert (line, library_id) == (want_line, want_id), message
        assert message.startswith(want_message)
    assert "s3cret" not in "\n".join(map(str, problems))


def test_load_registry_raises_with_every_problem(tmp_path):
    path = write(tmp_path, BROKEN_REGISTRY)

    with pytest.raises(RegistryError) as raised:
        load_registry(path)

    assert raised.value.problems == validate_registry(path)
    assert str(raised.value).splitlines() == [str(problem) for problem in raised.value.problems]
    assert str(raised.value).splitlines()[1] == (
        "sources.toml:6: ZJ001: unknown key 'protcol' (did you mean 'protocol'?)"
    )


def test_toml_syntax_error_gives_its_line(tmp_path):
    path = write(tmp_path, VALID_LIBRARY + "\n[[library]]\nid = ZJ002\n")

    [problem] = validate_registry(path)

    assert problem.line == 10
    assert problem.message.startswith("TOML syntax error: Invalid value")


@pytest.mark.parametrize(
    ("key", "value", "line", "message"),
    [
        ("id", '"ZJ/001"', 2, "id 'ZJ/001' must be 1-32 letters, digits"),
        ("endpoint", '""', 7, "'endpoint' must not be empty"),
        ("level", '"town"', 5, "level 'town' is not one of: province, city, county"),
        ("syntax", '"usmarc"', 8, "syntax 'usmarc' is not one of:"),
        ("schedule", '"daily"', 8, "schedule 'daily' must be a cron expression"),
        ("conn_id", '"http://u:p@host"', 8, "conn_id must be an Airflow connection id"),
        ("endpoint", '"https://opac.example.cn/oai?user=x&password=y"', 7, "credentials belong in"),
        ("timeout", "30", 8, "unknown key 'timeout' (known keys: id, name"),
    ],
)
def test_single_problem(tmp_path, key, value, line, message):
    [problem] = validate_registry(write(tmp_path, with_value(key, value)))

    assert problem.line == line
    assert problem.message.startswith(message)


@pytest.mark.parametrize(
    ("protocol", "endpoint", "valid"),
    [
        ("oai", "https://opac.example.cn/oai", True),
        ("oai", "opac.example.cn/oai", False),
        ("sru", "http://localhost:8210/Default", True),
        ("sru", "ftp://opac.example.cn/sru", False),
        ("z3950", "opac.example.cn:210/ZJLIB", True),
        ("z3950", "localhost:2100/Default", True),
        ("z3950", "opac.example.cn/ZJLIB", False),
        ("z3950", "opac.example.cn:99999/ZJLIB", False),
        ("file", "/srv/drops/ZJ001.mrc", True),
    ],
)
def test_endpoint_shape_follows_protocol(tmp_path, protocol, endpoint, valid):
    text = with_value("protocol", f'"{protocol}"').replace('"drops/ZJ001"', f'"{endpoint}"')

    problems = validate_registry(write(tmp_path, text))

    assert (problems == []) is valid, problems


def test_file_level_problems(tmp_path):
    [missing] = validate_registry(tmp_path / "absent.toml")
    [empty] = validate_registry(write(tmp_path, "# nothing yet\n"))
    misspelt = validate_registry(write(tmp_path, VALID_LIBRARY.replace("[[library]]", "[[libary]]")))

    assert str(missing) == "absent.toml: file not found"
    assert empty.message == "no [[library]] tables"
    assert [(problem.line, problem.message) for problem in misspelt] == [
        (0, "no [[library]] tables"),
        (1, "unknown key 'libary' (did you mean 'library'?)"),
    ]


def test_endpoint_path_resolves_against_the_sources_folder(tmp_path, monkeypatch):
    text = VALID_LIBRARY + VALID_LIBRARY.replace("ZJ001", "ZJ002").replace('"drops/ZJ002"', '"/srv/drops/ZJ002"')
    write(tmp_path, text, name="conf/sources.toml")
    monkeypatch.chdir(tmp_path)

    registry = load_registry(Path("conf/sources.toml"))

    assert registry.get("ZJ001").endpoint_path() == tmp_path / "conf" / "drops" / "ZJ001"
    assert registry.get("ZJ002").endpoint_path() == Path("/srv/drops/ZJ002")


def test_registry_lookup(tmp_path):
    text = VALID_LIBRARY + with_value("enabled", "false").replace("ZJ001", "ZJ002")
    registry = load_registry(write(tmp_path, text))

    assert [library.id for library in registry.enabled()] == ["ZJ001"]
    assert registry.get("ZJ002").enabled is False
    with pytest.raises(KeyError, match="ZJ999.*sources.toml"):
        registry.get("ZJ999")


def test_problem_str_names_file_line_and_library():
    problem = Problem(Path("conf/sources.toml"), 12, "ZJ003", "unknown key 'protcol'")

    assert str(problem) == "sources.toml:12: ZJ003: unknown key 'protcol'"
