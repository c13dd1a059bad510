"""``--set`` on the benchmark scripts that fix the stream themselves (``deploy_lr.py``,
``standard_benchmarks.py``): learner settings only, checked before any run."""

import pytest

from avalanche_plasticity.configs import OverrideError, learner_overrides

BAD = [
    ("stream.lr.Naive=0.1", "the benchmark sets the stream itself"),
    ("mem_size=10", "the benchmark sets the stream itself"),
    ("OML.stream.epochs=2", "the benchmark sets the stream itself"),
    ("ComplexSynapse.meta.stepz=3", "unknown setting 'stepz'; valid keys are"),
    ("steps", "--set: expected key=value"),
]


@pytest.mark.parametrize(("item", "message"), BAD)
@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("deploy_lr", ["--scenarios", "split_mnist", "--strategies", "Naive"]),
        ("standard_benchmarks", ["--sections", "split_mnist/class/online", "--strategies", "Naive"]),
    ],
)
def test_set_refuses_stream_settings_and_unknown_keys_before_any_run(
    script, argv, item, message, benchmark_script, monkeypatch, capsys
):
    module = benchmark_script(script)
    monkeypatch.setattr(module, "run_comparison", lambda *a, **k: pytest.fail("ran before checking --set"))
    with pytest.raises(SystemExit):
        module.main([*argv, "--set", item])
    assert message in capsys.readouterr().err


def test_learner_overrides_are_checked_on_every_scenario_and_returned_as_given():
    items = ["ComplexSynapse.meta.steps=1600", "OML.learner.inner_lr=0.01"]
    settings = learner_overrides(items, ["split_mnist", "split_fashion_mnist"])
    assert settings == {"ComplexSynapse.meta.steps": "1600", "OML.learner.inner_lr": "0.01"}
    with pytest.raises(OverrideError, match="steps must be a positive int"):
        learner_overrides(["ComplexSynapse.meta.steps=-1"], ["split_mnist"])


def test_a_bare_stream_key_that_is_also_a_learner_setting_names_where_the_learner_setting_lives():
    # ``lr`` is the stream's SGD rate and also a learner's meta-learning rate: the error says how to
    # write the learner's.
    with pytest.raises(OverrideError, match=r"sets the stream itself.*\[LEARNER\.\]meta\.lr"):
        learner_overrides(["lr=0.1"], ["split_mnist"])
    with pytest.raises(OverrideError, match=r"\[LEARNER\.\]learner\.KEY"):
        learner_overrides(["mem_size=10"], ["split_mnist"])
