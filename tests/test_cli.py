"`clipexplore demo` refuses bad arguments up front: exit code 2 and a message, before any model is loaded."
import pytest

import clipexplore.cli as cli


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs): raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr(cli, "load_clip", refuse)


@pytest.mark.parametrize("args, says", [
    (["--n", "0"], "--n"), (["--n", "3", "--seed", "3"], "--n"), (["--shots", "0"], "--shots"), (["--shots", "100000"], "--shots"),
    (["--epochs", "0"], "--epochs"), (["--seed", "-1"], "--seed"), (["--device", "bogus"], "--device"),
    (["--out", "/no/such/folder/demo.png"], "--out"), (["--out", "demo.nosuchformat"], "--out"), (["--n", "abc"], "--n"),
])
def test_bad_arguments_exit_2_with_a_message(args, says, no_model, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop: cli.main(["demo", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "error" in err


def test_demo_from_python_raises_value_error(no_model, tmp_path):
    with pytest.raises(ValueError, match="epochs"): cli.demo(out=str(tmp_path / "a.png"), epochs=0)
