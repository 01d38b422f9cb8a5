"""verif.rtl.run_test on a shared build folder: a simulation writes its own results and log files (named for the
run, renamed to ``results-<test>.xml`` / ``sim-<test>.log`` at the end), so another process running the same
test there cannot delete its results; and it holds a shared lock on the folder, so a rebuild (which clears the
folder under the exclusive lock) waits for it. The simulator is replaced by a stand-in that acts as the other
process would, at the worst moment: no Verilator build is needed."""

import fcntl

import pytest

pytest.importorskip("cocotb_tools")
from dbpim.verif import rtl  # noqa: E402

PASSED = '<testsuites><testsuite name="t"><testcase name="{name}"/></testsuite></testsuites>'
FAILED = '<testsuites><testsuite name="t"><testcase name="{name}"><failure message="boom"/></testcase></testsuite></testsuites>'


class _Runner:
    """Writes the results file the runner was given, then does what ``meanwhile`` says (another run's doing)."""

    def __init__(self, meanwhile, text=PASSED):
        self.meanwhile, self.text, self.calls = meanwhile, text, []

    def test(self, *, results_xml, log_file, build_dir, **kw):
        from pathlib import Path
        Path(results_xml).write_text(self.text.format(name=kw["testcase"]))
        Path(log_file).write_text("a log\n")
        self.calls.append((Path(results_xml), Path(log_file)))
        self.meanwhile(Path(build_dir))


def _build(tmp_path, runner):
    d = tmp_path / "sim" / "lpu-small"
    d.mkdir(parents=True)
    return rtl.Build(runner, d, "dbpim_lpu", d / "manifest.json", 0.0)


def test_another_run_deleting_the_results_name_leaves_this_runs_results(tmp_path):
    def other_run_starts(d):  # the runner of another run of the same test deletes the results file of its name
        (d / "results-case.xml").unlink(missing_ok=True)
        (d / "sim-case.log").write_text("the other run's log\n")
    runner = _Runner(other_run_starts)
    b = _build(tmp_path, runner)
    (b.dir / "results-case.xml").write_text("an older run's results")
    out = rtl.run_test(b, "mod", "case", verbose=False)
    assert out == b.dir / "results-case.xml" and 'testcase name="case"' in out.read_text()
    assert (b.dir / "sim-case.log").read_text() == "a log\n"
    own, own_log = runner.calls[0]
    assert own != out and own_log != b.dir / "sim-case.log" and not own.exists() and not own_log.exists()


def test_a_failed_test_names_its_message_and_the_log(tmp_path):
    b = _build(tmp_path, _Runner(lambda d: None, FAILED))
    with pytest.raises(rtl.RTLFailure, match=r"case: failed: boom; log: .*sim-case\.log"):
        rtl.run_test(b, "mod", "case", verbose=False)
    assert (b.dir / "results-case.xml").is_file()


def test_a_rebuild_waits_for_a_running_simulation(tmp_path):
    seen = []

    def try_to_rebuild(d):
        with open(d.parent / f".{d.name}.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("rebuilt during the run")
            except BlockingIOError:
                seen.append("waits")
            with open(d.parent / f".{d.name}.lock", "a") as fh2:  # another simulation may run beside it
                fcntl.flock(fh2, fcntl.LOCK_SH | fcntl.LOCK_NB)
                seen.append("runs beside")
    b = _build(tmp_path, _Runner(try_to_rebuild))
    rtl.run_test(b, "mod", "case", verbose=False)
    assert seen == ["waits", "runs beside"]
    with rtl.build_lock(b.dir):  # and after the run, the build goes on
        pass
