"""botocore's service models, loaded without listing every service it ships: the same clients, the
same answers about which services exist, the same error for one that does not."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.storage import service_models


def _sessions(data_path: str | None = None) -> tuple[botocore.session.Session, botocore.session.Session]:
    """botocore's own session, and one with handoff's loader for the same ``data_path``."""
    plain, ours = botocore.session.Session(), botocore.session.Session()
    if data_path is not None:
        plain.set_config_variable("data_path", data_path)
        ours.set_config_variable("data_path", data_path)
    ours.register_component("data_loader", service_models.loader(ours.get_config_variable("data_path")))
    return plain, ours


def _client(session: botocore.session.Session, service: str) -> object:
    return session.create_client(service, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")


def test_clients_come_out_the_same_without_listing_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    plain, ours = _sessions()
    walked: list[str] = []
    every = service_models.ServiceLoader.list_every_service

    def spy(self: service_models.ServiceLoader, type_name: str) -> list[str]:
        walked.append(type_name)
        return every(self, type_name)

    monkeypatch.setattr(service_models.ServiceLoader, "list_every_service", spy)
    for service in ("s3", "kms", "sts"):
        mine, theirs = _client(ours, service), _client(plain, service)
        assert mine.meta.service_model.api_version == theirs.meta.service_model.api_version  # type: ignore[attr-defined]
        assert mine.meta.service_model.operation_names == theirs.meta.service_model.operation_names  # type: ignore[attr-defined]
        assert mine.meta.endpoint_url == theirs.meta.endpoint_url  # type: ignore[attr-defined]
    assert walked == []  # the point: no walk of ~420 service folders per client


def test_an_unknown_service_is_refused_as_botocore_refuses_it() -> None:
    plain, ours = _sessions()
    with pytest.raises(UnknownServiceError) as theirs:
        _client(plain, "no-such-service")
    with pytest.raises(UnknownServiceError) as mine:
        _client(ours, "no-such-service")
    assert str(mine.value) == str(theirs.value)  # the same message, listing every known service
    assert ours.get_available_services() == plain.get_available_services()
    assert "s3" in ours.get_available_services()


def test_a_model_on_aws_data_path_is_found_and_a_path_is_never_a_service(tmp_path: Path) -> None:
    """``AWS_DATA_PATH`` models count as botocore counts them; a name that is a path is not a service."""
    folder = tmp_path / "models" / "handoff-test" / "2026-01-01"
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps({"version": "2.0", "metadata": {}, "operations": {},
                                                       "shapes": {}}))  # fmt: skip
    (tmp_path / "models" / "only-waiters" / "2026-01-01").mkdir(parents=True)
    (tmp_path / "models" / "only-waiters" / "2026-01-01" / "waiters-2.json").write_text("{}")
    plain, ours = _sessions(str(tmp_path / "models"))
    listed = ours.get_component("data_loader").list_available_services("service-2")
    assert "handoff-test" in listed
    assert "only-waiters" not in listed  # a folder without this model type is not this type's service
    for path_like in ("../models/handoff-test", "handoff-test/2026-01-01", ".", "", "..", "/etc"):
        assert path_like not in listed
    assert list(listed) == plain.get_available_services()


_EVERY = service_models.loader(None).list_every_service("service-2")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from([*_EVERY[:40], "S3", "s3 ", "s3/..", "kms\x00"]), st.text(max_size=30)))
def test_asking_about_one_service_agrees_with_the_whole_list(name: str) -> None:
    loader = service_models.loader(None)  # a new one each time: no list read yet, so ``in`` looks at one service
    assert (name in loader.list_available_services("service-2")) == (name in _EVERY)
