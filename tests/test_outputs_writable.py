"""Every output location is checked before any work (#17 item 3): an --out, checkpoint or run-cache folder
that cannot be written is an error naming it and why, and nothing is meta-trained or run first."""

from __future__ import annotations

import pytest

from avalanche_plasticity.cli import main

QUIET = ["--wandb-mode", "disabled", "--quiet", "--threads", "1"]


@pytest.mark.parametrize(
    "where, message",
    [
        ("out", "the --out folder"),
        ("checkpoint-dir", "the checkpoint folder (to meta-train FLP)"),
    ],
)
def test_unwritable_output_is_reported_before_any_work(tmp_path, capsys, where, message):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    folders = {"out": tmp_path / "out", "checkpoint-dir": tmp_path / "ckpt"}
    folders[where] = blocker / "sub"
    argv = ["compare", "--strategies", "FLP", "Naive", "--meta-steps", "2", "--scale", "quick"]
    with pytest.raises(SystemExit) as exc:
        main(
            [*argv, "--out", str(folders["out"]), "--checkpoint-dir", str(folders["checkpoint-dir"]), *QUIET]
        )
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and str(blocker / "sub") in err and "not writable" in err
    assert not list((tmp_path / "ckpt").glob("*.pt"))  # nothing meta-trained
    assert not (tmp_path / "out" / "results.json").exists()


def test_meta_train_checks_its_checkpoint_folder(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["meta-train", "--learner", "FLP", "--checkpoint-dir", str(blocker / "x"), *QUIET])
    assert exc.value.code == 2 and "the checkpoint folder" in capsys.readouterr().err
