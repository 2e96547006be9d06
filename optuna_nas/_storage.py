"""Opening Optuna storages from URLs, with errors that say what to fix."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna.trial import FrozenTrial
    from sqlalchemy.engine import URL

_logger = logging.getLogger(__name__)

JOURNAL_SCHEME = "journal://"
"""Prefix of a journal-file storage URL: ``journal:///abs/path/study.log``."""

# Drivers tried, in order, for a URL that names none ("postgresql://", "mysql://"): the
# SQLAlchemy 2.1 default first, then the one the optuna-nas extras install (SQLAlchemy 2.1
# defaults PostgreSQL to psycopg 3, while ``optuna-nas[postgresql]`` installs psycopg2).
_DRIVERS = {
    "postgresql": (("psycopg", "psycopg"), ("psycopg2", "psycopg2")),
    "mysql": (("mysqldb", "MySQLdb"), ("pymysql", "pymysql")),
    "mariadb": (("mysqldb", "MySQLdb"), ("pymysql", "pymysql")),
}
_EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
# MySQL servers close connections idle for wait_timeout (often lowered from 8 h); recycle
# pooled connections well before, and ping them before use, so a long trial's first write
# does not meet a dead connection.
_POOL_RECYCLE_S = 3600


class StorageError(ValueError):
    """A storage URL is malformed or its database cannot be reached."""


class StorageMissingError(StorageError):
    """The SQLite or journal file of a storage URL does not exist, and may not be created."""


SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "secret", "token", "access_token", "api_key"}
)
"""URL query parameters whose values :func:`mask_url` hides, besides the password."""

_MASK = "***"


def _ambiguous_at(url: str) -> bool:
    """Whether the part of ``url`` before the host holds more than one ``@`` (an unencoded
    ``@`` in a password), which makes the URL mean something other than intended."""
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return authority.count("@") > 1


def mask_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``.

    SQLAlchemy's own parsing finds the password (``make_url(url).render_as_string(
    hide_password=True)``); query parameters named in :data:`SECRET_QUERY_KEYS`
    (``?password=...``) are hidden too. A URL whose credentials hold an unencoded ``@`` is
    ambiguous; nothing after its scheme is shown. Safe to print or log.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if _journal_path(url) is not None:
        return url
    if _ambiguous_at(url):
        return url.split("://", 1)[0] + "://" + _MASK if "://" in url else _MASK
    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            url
            if "@" not in url and "password" not in url.lower()
            else ("<storage URL hidden: it may hold a password>")
        )
    if any(key.lower() in SECRET_QUERY_KEYS for key in parsed.query):
        parsed = parsed.set(
            query={
                key: (_MASK if key.lower() in SECRET_QUERY_KEYS else value)
                for key, value in parsed.query.items()
            }
        )
    # Rendering percent-encodes the query's "***"; show it as written.
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", _MASK)


def _secrets(url: str) -> list[str]:
    """The password and secret query values of ``url``, longest first."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return []
    found = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in SECRET_QUERY_KEYS:
            found.extend([value] if isinstance(value, str) else list(value))
    return sorted({v for v in found if v}, key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error) with ``url``'s secrets replaced by ``***``.

    A secret is replaced only where it stands as a whole token, so a short password that
    also occurs inside a word (``p`` in ``psycopg2``) does not garble the message.
    """
    for secret in _secrets(url):
        pattern = r"(?<![A-Za-z0-9])" + re.escape(secret) + r"(?![A-Za-z0-9])"
        text = re.sub(pattern, _MASK, text)
    return text


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    create: bool = True,
    write: bool = True,
) -> optuna.storages.BaseStorage:
    """Opens the storage at ``url``: SQLite, PostgreSQL, MySQL/MariaDB or a journal file.

    SQLite connections wait up to 60 s for the file's lock, so several processes can share
    one file. A PostgreSQL or MySQL URL that names no driver gets the first one installed
    (PostgreSQL: psycopg, then psycopg2; MySQL and MariaDB: mysqlclient, then PyMySQL), and
    pooled connections are pinged before use (and recycled hourly on MySQL), so workers
    survive a server that dropped idle connections. A journal file
    (:class:`optuna.storages.JournalStorage` over
    :class:`~optuna.storages.journal.JournalFileBackend`) serves clusters without a database
    server, through a shared file system. The URL is checked before anything is created,
    and a SQLite file that this call created is removed again if the storage then fails to
    open, so bad input leaves nothing behind.

    Args:
        url: A SQLAlchemy URL such as ``sqlite:///optuna_nas.db``,
            ``postgresql://user@host:5432/db`` or ``mysql+pymysql://user@host:3306/db``;
            or a journal file, ``journal:///abs/path/study.log`` (everything after
            ``journal://`` is the path, so ``journal://study.log`` is relative to the
            working directory) or a plain path ending in ``.log``.
        heartbeat_interval: Seconds between heartbeats of a running trial (RDB storages
            only; journal files have no heartbeat). A heartbeat that fails because the
            database is briefly unreachable is logged and tried again at the next
            interval, instead of stopping the heartbeat for the rest of the trial.
        grace_period: Seconds without a heartbeat after which a running trial counts as
            stale and the next trial start in any process fails it (default: twice the
            interval).
        heartbeat_stale_trial_callback: Called for each stale trial that was failed, e.g.
            :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` to retry it.
        create: Whether a SQLite or journal file that does not exist may be created. Commands
            that read a study pass ``False``: a mistyped path is then an error, not a new
            empty database.
        write: Whether the caller will write; a SQLite or journal file (or its folder) that
            this user cannot write is then refused up front.

    Raises:
        StorageError: If the URL is malformed or ambiguous (an unencoded ``@`` in the
            password), its driver is missing, the SQLite or journal directory does not
            exist, the file does not exist and ``create`` is false, it is read-only and
            ``write`` is true, or the database cannot be reached. The message never shows a
            password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    journal = _journal_path(url)
    if journal is not None:
        _check_file(journal, url, create=create, write=write)
        return _open_journal(url, journal)
    if _ambiguous_at(url):
        raise StorageError(
            f"storage URL {mask_url(url)!r} holds more than one '@' before the host, so its "
            "password cannot be told from its host; write an '@' in the password as %40"
        )
    example = (
        "use e.g. sqlite:///optuna_nas.db, postgresql://user@host:5432/db, "
        "mysql+pymysql://user@host:3306/db or journal:///abs/path/study.log"
    )
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
        if database.startswith("file:"):  # a SQLite URI such as file:x.db?mode=ro
            database = database[len("file:") :]
        path = Path(database)
        if not path.parent.is_dir():
            raise StorageError(
                f"directory {str(path.parent)!r} of storage URL {mask_url(url)!r} does not "
                "exist; create it first or point the URL elsewhere"
            )
        _check_file(path, url, create=create, write=write)
        if not path.exists():
            created = path
    engine_kwargs: dict[str, object] = {}
    rdb_url = url
    if parsed.get_backend_name() == "sqlite":
        # Several worker processes share one SQLite file; wait for its lock, don't fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif parsed.get_backend_name() in _DRIVERS:
        rdb_url = _with_installed_driver(url, parsed)
        engine_kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name() != "postgresql":
            engine_kwargs["pool_recycle"] = _POOL_RECYCLE_S
    try:
        if heartbeat_interval is None:
            return optuna.storages.RDBStorage(rdb_url, engine_kwargs=engine_kwargs)
        return _HeartbeatRDBStorage(
            rdb_url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=heartbeat_stale_trial_callback,
        )
    except Exception as err:  # SQLAlchemy raises many kinds; all mean "cannot use this URL"
        if created is not None and created.exists():
            created.unlink()
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        reason = redact(reason, url)
        raise StorageError(
            f"cannot open storage {mask_url(url)!r}: {reason}; check that the database "
            f"server is running and the URL is right ({example})"
        ) from None


def _check_file(path: Path, url: str, *, create: bool, write: bool) -> None:
    """Refuses a missing file that may not be created, and one this user cannot write."""
    if not path.parent.is_dir():
        return  # the callers name the missing folder
    if not path.exists():
        if not create:
            raise StorageMissingError(
                f"storage file {str(path)!r} does not exist; check the path in "
                f"{mask_url(url)!r} (only `optuna-nas search` creates a storage)"
            )
        if write and not os.access(path.parent, os.W_OK):
            raise StorageError(
                f"cannot create storage file {str(path)!r}: its folder is read-only; "
                "point the URL at a folder this user can write"
            )
        return
    if write and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise StorageError(
            f"storage file {str(path)!r} (or its folder, where SQLite keeps its journal) is "
            "read-only; make both writable by this user or copy the file elsewhere"
        )


class _HeartbeatRDBStorage(optuna.storages.RDBStorage):
    """An RDB storage whose heartbeat survives a database that is briefly unreachable.

    Optuna's heartbeat thread ends at the first failed write; the trial would then turn
    stale while its worker is still training it, and be failed and retried twice over.
    """

    def record_heartbeat(self, trial_id: int) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            super().record_heartbeat(trial_id)
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            _logger.warning("heartbeat of trial id %d not recorded: %s", trial_id, reason)


def _with_installed_driver(url: str, parsed: URL) -> str:
    """``url`` with an installed driver named, when it names none and the default is absent."""
    backend = parsed.get_backend_name()
    if "+" in parsed.drivername:
        return url
    candidates = _DRIVERS[backend]
    for driver, module in candidates:
        if importlib.util.find_spec(module) is not None:
            # Named explicitly: SQLAlchemy's own default differs between its versions.
            return parsed.set(drivername=f"{backend}+{driver}").render_as_string(
                hide_password=False
            )
    modules = " or ".join(module for _, module in candidates)
    raise StorageError(
        f"no {backend} driver is installed for storage {mask_url(url)!r} (looked for "
        f"{modules}); install one, e.g. pip install 'optuna-nas[{_EXTRAS[backend]}]'"
    )


def _journal_path(url: str) -> Path | None:
    """The file of a journal storage URL, or ``None`` when ``url`` is not one."""
    if url.startswith(JOURNAL_SCHEME):
        return Path(url[len(JOURNAL_SCHEME) :])
    if "://" not in url and url.endswith(".log"):
        return Path(url)
    return None


def _open_journal(url: str, path: Path) -> optuna.storages.BaseStorage:
    """A :class:`~optuna.storages.JournalStorage` on the file ``path``, created if absent."""
    from optuna.storages.journal import JournalFileBackend

    if path.name in ("", ".", ".."):
        raise StorageError(
            f"journal storage URL {url!r} names no file; use e.g. journal:///abs/path/study.log"
        )
    if not path.parent.is_dir():
        raise StorageError(
            f"directory {str(path.parent)!r} of journal storage {url!r} does not exist; "
            "create it first (on a file system every worker mounts) or point the URL elsewhere"
        )
    if path.is_dir():
        raise StorageError(
            f"journal storage {url!r} is a directory; name a file in it, e.g. "
            f"{JOURNAL_SCHEME}{path / 'study.log'}"
        )
    if path.is_file() and path.stat().st_size > 0 and not _is_journal(path):
        raise StorageError(
            f"{str(path)!r} of journal storage {url!r} is not an Optuna journal (its first "
            "line is no journal entry), so it is left untouched; name a new file or a journal"
        )
    created = not path.exists()
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except Exception as err:  # an unreadable file, a corrupt log: the same fix either way
        if created and path.exists() and path.stat().st_size == 0:
            path.unlink()
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StorageError(
            f"cannot open journal storage {url!r}: {reason}; check that the file is an "
            "Optuna journal log that this user can read and write"
        ) from None


def _is_journal(path: Path) -> bool:
    """Whether the first line of ``path`` is an Optuna journal entry (a JSON operation)."""
    with path.open("rb") as file:
        first = file.readline()
    try:
        entry = json.loads(first)
    except ValueError:
        return False
    return isinstance(entry, dict) and "op_code" in entry
