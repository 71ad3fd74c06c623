"""The `unioncat` command line: exit codes, messages, help that teaches."""

import subprocess
import sys

import pytest

from conftest import REPO, write_registry
from unioncat.cli import build_parser, main

COMMANDS = ["sources validate", "harvest", "transform", "dedup", "publish", "run", "status", "search", "query", "report",
            "demo", "network", "eval", "airflow"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"unioncat {command}" in out


def test_sources_validate_reports_every_problem_with_lines(tmp_path, capsys):
    bad = tmp_path / "sources.toml"
    bad.write_text(
        '[[library]]\nid = "A1"\nname = "甲"\ncity = "杭州"\nlevel = "county"\nprotocol = "ftp"\nendpoint = "x"\n\n'
        '[[library]]\nid = "A1"\nname = "乙"\ncity = "杭州"\nlevel = "town"\nprotocol = "file"\nendpoint = "y"\ncolour = "red"\n',
        encoding="utf-8",
    )
    assert main(["sources", "validate", "--sources", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "sources.toml:6:" in out and "ftp" in out
    assert "sources.toml:9:" in out or "sources.toml:10:" in out  # duplicate id
    assert "sources.toml:13:" in out and "town" in out
    assert "sources.toml:16:" in out and "colour" in out


def test_committed_registry_validates():
    result = subprocess.run([sys.executable, "-m", "unioncat.cli", "sources", "validate"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_run_status_and_search_from_the_command_line(shared_data, tmp_path, capsys):
    sources = write_registry(
        tmp_path,
        {
            "P01": ("province", [shared_data / "unimarc_cnmarc" / "cnmarc_bnu_alma_sru_dp2" / "sample_cnmarcxml.xml"]),
            "X01": ("county", [shared_data / "marc21" / "pymarc_tests" / "bad_records.mrc"]),
        },
    )
    jazz = (shared_data / "marc21" / "evergreen_datasets" / "jazz_1k.mrc").read_bytes()
    (tmp_path / "drops" / "X01" / "cut.mrc").write_bytes(jazz[:-200])
    (tmp_path / "drops" / "X01" / "export.xml").write_bytes(b"\x89PNG not a catalogue")
    common = ["--sources", str(sources), "--data-dir", str(tmp_path / "var")]
    assert main(["run", *common]) == 0
    out = capsys.readouterr().out
    assert "catalogue:" in out and "published" in out
    assert main(["status", *common]) == 0
    status = capsys.readouterr().out
    for reason in ("bad_directory", "truncated_record", "not_marc"):
        assert f"quarantined: {reason}" in status
    assert main(["search", "中国发展报告", *common]) == 0
    hits = capsys.readouterr().out
    assert "中国统计出版社" in hits and "held by 1 library: 测试图书馆0" in hits
    assert main(["search", "no such title anywhere", *common]) == 1


def test_eval_scores_the_demo_against_its_truth(tmp_path, capsys):
    from unioncat.registry import load_registry
    from unioncat.province import write_demo_drops

    sources = write_registry(tmp_path, {f"E0{n}": ("county", []) for n in range(1, 6)})
    settings_args = ["--sources", str(sources), "--data-dir", str(tmp_path / "var")]
    summary = write_demo_drops(list(load_registry(sources).libraries), tmp_path / "drops", titles=120)
    assert main(["run", *settings_args]) == 0
    capsys.readouterr()
    assert main(["eval", "--truth", str(summary.truth_path), "--skip-label-prefix", "M-", *settings_args]) == 0
    report = capsys.readouterr().out
    assert "pairwise  P 1.0000" in report and "B-cubed" in report


def test_an_unknown_library_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["harvest", "--library", "ZJ999", "--data-dir", str(tmp_path)])
    assert "ZJ999" in str(exit_.value.code)
