from __future__ import annotations

import pytest

from meshui.env import EnvError, env_bool, env_int, env_list, env_str


@pytest.mark.parametrize("raw", ["1", "true", "True", "YES", "on", " true "])
def test_env_bool_reads_true_spellings(raw: str) -> None:
    assert env_bool("FLAG", environ={"FLAG": raw}) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_env_bool_reads_false_spellings(raw: str) -> None:
    assert env_bool("FLAG", True, environ={"FLAG": raw}) is False


def test_env_bool_falls_back_to_the_default_when_unset() -> None:
    assert env_bool("FLAG", True, environ={}) is True
    assert env_bool("FLAG", environ={}) is False


def test_env_bool_refuses_a_typo_naming_the_variable() -> None:
    with pytest.raises(EnvError, match="MESHUI_DEBUG must be a boolean.*'ture'"):
        env_bool("MESHUI_DEBUG", environ={"MESHUI_DEBUG": "ture"})


def test_env_int_parses_and_enforces_bounds() -> None:
    assert env_int("N", 5, environ={"N": " 42 "}) == 42
    assert env_int("N", 5, environ={}) == 5
    with pytest.raises(EnvError, match="N must be an integer, got 'five'"):
        env_int("N", 5, environ={"N": "five"})
    with pytest.raises(EnvError, match="N must be at least 1, got 0"):
        env_int("N", 5, minimum=1, environ={"N": "0"})
    with pytest.raises(EnvError, match="N must be at most 10, got 11"):
        env_int("N", 5, maximum=10, environ={"N": "11"})


def test_env_list_splits_on_commas_and_drops_blanks() -> None:
    assert env_list("HOSTS", environ={"HOSTS": " a.example, ,b.example,"}) == [
        "a.example", "b.example"]
    assert env_list("HOSTS", "localhost", environ={}) == ["localhost"]


def test_env_str_returns_the_default_when_unset() -> None:
    assert env_str("X", "fallback", environ={}) == "fallback"
    assert env_str("X", "fallback", environ={"X": "set"}) == "set"
