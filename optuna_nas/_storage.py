"""Opening Optuna storages from URLs, with errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import optuna


class StorageError(ValueError):
    """A storage URL is malformed or its database cannot be reached."""


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print or log."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url if "@" not in url else "<storage URL hidden: it may hold a password>"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Opens the RDB storage at ``url`` (SQLite, PostgreSQL or MySQL).

    SQLite connections wait up to 60 s for the file's lock, so several processes can share
    one file. The URL is checked before anything is created, and a SQLite file that this call
    created is removed again if the storage then fails to open, so bad input leaves
    nothing behind.

    Args:
        url: A SQLAlchemy URL such as ``sqlite:///optuna_nas.db``,
            ``postgresql://user@host/db`` or ``mysql+pymysql://user@host/db``.

    Raises:
        StorageError: If the URL is malformed, its driver is missing, the SQLite directory
            does not exist or the database cannot be reached. The message never shows a
            password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = "use e.g. sqlite:///optuna_nas.db or postgresql://user@host:5432/db"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"malformed storage URL {mask_url(url)!r}; {example}") from None
    created: Path | None = None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"storage URL {mask_url(url)!r} names no database file; a study must outlive "
                "the process, so use e.g. sqlite:///optuna_nas.db"
            )
        path = Path(database)
        if not path.parent.is_dir():
            raise StorageError(
                f"directory {str(path.parent)!r} of storage URL {mask_url(url)!r} does not "
                "exist; create it first or point the URL elsewhere"
            )
        if not path.exists():
            created = path
    engine_kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        # Several worker processes share one SQLite file; wait for its lock, don't fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as err:  # SQLAlchemy raises many kinds; all mean "cannot use this URL"
        if created is not None and created.exists():
            created.unlink()
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if parsed.password:
            reason = reason.replace(str(parsed.password), "***")
        raise StorageError(
            f"cannot open storage {mask_url(url)!r}: {reason}; check that the database "
            f"server is running and the URL is right ({example})"
        ) from None
