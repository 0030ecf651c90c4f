"""botocore's loader of service models, without walking every model it ships to load one.

Before it loads a service's model (and again its endpoint rules), botocore checks that the
service is one it knows by listing them all: about 420 folders and 2,800 file checks, 25-35 ms of
every process that makes an S3 client here, for the one name it asks about. ``ServiceLoader``
answers that question by looking in that service's folders only, in the same search paths
(``AWS_DATA_PATH`` and ``~/.aws/models`` first, as botocore orders them); listing every service
(an unknown name's error message, ``get_available_services``) still walks them all, once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, overload

from botocore.loaders import Loader


class ServiceLoader(Loader):  # type: ignore[misc]  # botocore ships no type hints
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listed: dict[str, Listed] = {}

    def list_available_services(self, type_name: str) -> Listed:
        if type_name not in self._listed:
            self._listed[type_name] = Listed(self, type_name)
        return self._listed[type_name]

    def list_every_service(self, type_name: str) -> list[str]:
        """Every service with a ``type_name`` model in the search paths, sorted: botocore's own walk."""
        return list(super().list_available_services(type_name))

    def ships(self, service: str, type_name: str) -> bool:
        """Whether some API version of ``service`` has a ``type_name`` model in the search paths."""
        if not service or service.startswith(".") or os.sep in service or (os.altsep and os.altsep in service):
            return False  # never a folder name botocore's own listing could return
        for folder in self._potential_locations(service, must_exist=True, is_dir=True):
            for version in os.listdir(folder):
                if self.file_loader.exists(os.path.join(folder, version, type_name)):
                    return True
        return False


class Listed(Sequence[str]):
    """The services a loader ships ``type_name`` models of: ``in`` looks at that one service's folders;
    reading the list walks them all (once)."""

    def __init__(self, loader: ServiceLoader, type_name: str) -> None:
        self._loader, self._type = loader, type_name
        self._all: list[str] | None = None

    def _every(self) -> list[str]:
        if self._all is None:
            self._all = self._loader.list_every_service(self._type)
        return self._all

    def __contains__(self, service: object) -> bool:
        if self._all is not None:
            return service in self._all
        return isinstance(service, str) and self._loader.ships(service, self._type)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._every()[index]

    def __len__(self) -> int:
        return len(self._every())

    def __iter__(self) -> Iterator[str]:
        return iter(self._every())

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, (list, Listed)) else other)

    __hash__ = None  # type: ignore[assignment]  # a list's equality, so no hash


def loader(data_path: str | None) -> ServiceLoader:
    """The loader botocore's session would make for its ``data_path`` setting (``AWS_DATA_PATH``)."""
    if data_path is None:
        return ServiceLoader()
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
    return ServiceLoader(extra_search_paths=paths)
