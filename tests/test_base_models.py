"""Finding a base model: an unknown name fails fast when the hub cannot be asked."""

import time

import pytest

from ktm.errors import KTMError
from ktm.model.base_models import resolve_model


@pytest.mark.parametrize(
    "env, why",
    [
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "the hub is unreachable (127.0.0.1"),
        ({"HF_HUB_OFFLINE": "1"}, "the hub is switched off (HF_HUB_OFFLINE)"),
    ],
)
def test_an_unknown_model_fails_fast_without_the_hub(monkeypatch, env, why):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    t0 = time.monotonic()
    with pytest.raises(KTMError, match="unknown model 'nobody/no-such-model'") as e:
        resolve_model("nobody/no-such-model")
    assert why in str(e.value)
    assert time.monotonic() - t0 < 5, "the hub client's retries ran"


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(KTMError, match="model folder not found"):
        resolve_model(str(tmp_path / "nope"))
