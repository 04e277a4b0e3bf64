"""Progress bars for long work: tqdm on stderr when it is installed and wanted, otherwise silent."""

from __future__ import annotations


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress(total: int | None, desc: str, *, enabled: bool = True, unit: str = "it"):
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            return _Silent()
        return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return _Silent()
