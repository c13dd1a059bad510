"""The command line runs a comparison end to end and rejects bad arguments."""

import pytest

from avalanche_plasticity.cli import main


def test_compare_runs_and_prints_table(tmp_path, capsys):
    rc = main(
        [
            "compare",
            "--meta-steps",
            "2",
            "--strategies",
            "FLP",
            "Naive",
            "EWC",
            "--checkpoint-dir",
            str(tmp_path),
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "| FLP |" in out and "| Naive |" in out and "| EWC |" in out
    assert "MSE on all functions seen" in out
    assert "nan" not in out  # EWC uses the sine lambda that does not diverge
    assert list(tmp_path.glob("sine_FLP_cpu_steps2_seed0.pt"))  # meta-training checkpoint written


def test_bad_arguments_are_reported():
    with pytest.raises(SystemExit):
        main(["compare", "--strategies", "SGD"])
    with pytest.raises(SystemExit):
        main(["compare", "--meta-steps", "0"])
