"""Settings declared once: flag, environment variable, default, help and parser in one object.

Used by ``hotconf_operator._settings``, ``hotconf_sidecar._settings`` and ``hotconf._settings``:
each declares its settings as :class:`Setting` objects and reads them with :func:`read_settings`
(flags and environment) or :meth:`Setting.from_environ` (environment only). The ``argparse``
flag, the environment variable lookup, the default, the ``--help`` line and the error for a bad
value all come from that one declaration, so the three parts cannot drift apart.

The rules, the same in every part of hotconf:

- A flag, when given, wins over its environment variable, which wins over the default.
- An empty value (only whitespace, flag or environment variable) means the default.
- Booleans (:func:`parse_bool`): ``true``, ``yes``, ``on``, ``1`` or ``false``, ``no``, ``off``,
  ``0``, in any case.
- Log levels (:func:`parse_log_level`): ``debug``, ``info``, ``warning`` or ``error``, in any
  case; the value is a :class:`LogLevel`.
- A value that does not parse raises the calling part's own error class (passed as ``error``),
  with a message naming the flag, the environment variable, the value and what to give instead.

Parsers are plain functions from the text to the value that raise :class:`ValueError` with the
reason; :func:`integer`, :func:`number`, :func:`port`, :func:`choice` and :func:`comma_list`
build the common ones. Standard library only, like the rest of the wire.
"""

from __future__ import annotations

import argparse
import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

__all__ = [
    "FALSE_WORDS",
    "TRUE_WORDS",
    "LogLevel",
    "Setting",
    "Values",
    "build_parser",
    "choice",
    "comma_list",
    "integer",
    "number",
    "parse_bool",
    "parse_log_level",
    "port",
    "read_settings",
]

T = TypeVar("T")

#: Words a boolean setting accepts, compared after stripping and lower-casing.
TRUE_WORDS: Final = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS: Final = frozenset({"false", "no", "off", "0"})


class LogLevel(enum.StrEnum):
    """A log level setting's value; compares equal to its lower-case name."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def number(self) -> int:
        """The :mod:`logging` level, e.g. ``logging.INFO``."""
        return logging.getLevelNamesMapping()[self.name]


def parse_bool(text: str) -> bool:
    """``true``/``yes``/``on``/``1`` or ``false``/``no``/``off``/``0``, in any case."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("not a boolean; use true or false (yes/no, on/off and 1/0 work too)")


def parse_log_level(text: str) -> LogLevel:
    """``debug``, ``info``, ``warning`` or ``error``, in any case."""
    try:
        return LogLevel(text.strip().lower())
    except ValueError:
        raise ValueError("not a log level; use debug, info, warning or error") from None


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers within ``minimum``..``maximum`` (each optional, inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        _check_range(value, minimum, maximum)
        return value

    return parse


def number(
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> Callable[[str], float]:
    """A parser of numbers within ``minimum``..``maximum`` (inclusive) or above ``above``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        if above is not None and not value > above:
            raise ValueError(f"must be more than {_show(above)}")
        _check_range(value, minimum, maximum)
        return value

    return parse


def port(*, minimum: int = 0) -> Callable[[str], int]:
    """A parser of TCP port numbers, ``minimum`` (0: "disabled", or "any free port") to 65535."""
    whole = integer()

    def parse(text: str) -> int:
        value = whole(text)
        if not minimum <= value <= 65535:
            raise ValueError(f"not a TCP port ({minimum}-65535)")
        return value

    return parse


def choice(*options: str) -> Callable[[str], str]:
    """A parser of one of ``options``, in any case; returns the option as declared."""
    by_word = {option.lower(): option for option in options}

    def parse(text: str) -> str:
        try:
            return by_word[text.strip().lower()]
        except KeyError:
            raise ValueError(f"use {_or(options)}") from None

    return parse


def comma_list(item: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """A parser of a comma-separated list, each non-empty item parsed by ``item``.

    Used with ``Setting(repeat=True)``: the flag may be given several times, and the reader joins
    the values with commas, so a repeated flag and a comma list in the environment parse alike.
    """

    def parse(text: str) -> tuple[T, ...]:
        return tuple(item(part.strip()) for part in text.split(",") if part.strip())

    return parse


def _check_range(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ValueError(f"must be between {_show(minimum)} and {_show(maximum)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"must be at least {_show(minimum)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {_show(maximum)}")


def _or(options: Sequence[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


def _show(value: object) -> str:
    """A default or a bound as ``--help`` and messages show it: 10 for 10.0, true for True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


@dataclass(frozen=True, eq=False, kw_only=True)
class Setting(Generic[T]):
    """One setting of one part of hotconf: everything about it, declared once.

    ``parse`` turns the text of the flag or variable into the value, raising ``ValueError`` with
    the reason; it never sees an empty text (that means ``default``). ``default`` is the value
    when neither is given, and what ``--help`` shows unless ``shown_default`` says it better
    (``"random"``, ``"all namespaces"``); a ``None`` default without ``shown_default`` shows
    nothing. ``flag`` is None for a setting read from the environment alone.
    """

    env: str
    flag: str | None = None
    default: T
    parse: Callable[[str], T]
    help: str
    metavar: str | None = None
    shown_default: str | None = None
    #: The flag takes no value: given, it means ``true`` (``parse`` is then :func:`parse_bool`).
    switch: bool = False
    #: The flag may be repeated; its values are joined with commas (``parse``: :func:`comma_list`).
    repeat: bool = False

    @property
    def names(self) -> str:
        """``--flag / ENV``: how messages about more than one value name the setting."""
        return self.env if self.flag is None else f"{self.flag} / {self.env}"

    def help_text(self) -> str:
        """The ``--help`` line: the help, the default, the environment variable."""
        shown = self.shown_default
        if shown is None and self.default is not None and self.default != ():
            shown = _show(self.default)
        default = f" (default {shown})" if shown else ""
        return f"{self.help}{default} [env {self.env}]"

    def value(self, text: str | None, *, source: str, error: type[Exception]) -> T:
        """Parse ``text`` from ``source`` (the flag or the variable); empty means the default."""
        if text is None or not text.strip():
            return self.default
        try:
            return self.parse(text)
        except ValueError as exc:
            raise error(f"{self._given(source, text)}: {exc}") from exc

    def from_environ(self, environ: Mapping[str, str], *, error: type[Exception]) -> T:
        """This setting from the environment alone (for a setting without a flag)."""
        return self.value(environ.get(self.env), source=self.env, error=error)

    def _given(self, source: str, text: str) -> str:
        if source == self.env:
            other = f" (flag {self.flag})" if self.flag else ""
            return f"{self.env}={text!r}{other}"
        return f"{source} {text!r} (env {self.env})"


class Values:
    """What :func:`read_settings` found: ``values[SETTING]`` is that setting's value, typed."""

    def __init__(self, values: Mapping[Setting[Any], object]) -> None:
        self._values = dict(values)

    def __getitem__(self, setting: Setting[T]) -> T:
        value: T = self._values[setting]  # type: ignore[assignment]
        return value


#: Settings under a title each, in the order ``--help`` shows them.
Groups = Mapping[str, Sequence[Setting[Any]]]


def build_parser(groups: Groups, *, prog: str, description: str) -> argparse.ArgumentParser:
    """The ``argparse`` parser of ``groups``; it keeps every value as text for the reader."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for title, settings in groups.items():
        group = parser.add_argument_group(title)
        for setting in settings:
            if setting.flag is None:
                continue
            kwargs: dict[str, Any] = {
                "dest": setting.env,
                "help": setting.help_text().replace("%", "%%"),
            }
            if setting.switch:
                kwargs.update(action="store_const", const="true")
            else:
                kwargs.update(action="append" if setting.repeat else "store")
                kwargs["metavar"] = setting.metavar or setting.flag.removeprefix("--").upper()
            group.add_argument(setting.flag, **kwargs)
    return parser


def read_settings(
    groups: Groups,
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    prog: str,
    description: str,
    error: type[Exception],
) -> Values:
    """Parse ``argv`` (``--help`` exits as argparse does), then each setting: its flag if given,
    else its environment variable, else its default. A bad value raises ``error``."""
    args = vars(build_parser(groups, prog=prog, description=description).parse_args(argv))
    values: dict[Setting[Any], object] = {}
    for settings in groups.values():
        for setting in settings:
            given = args.get(setting.env)
            if isinstance(given, list):
                given = ",".join(given)
            if given is not None and setting.flag is not None:
                values[setting] = setting.value(given, source=setting.flag, error=error)
            else:
                values[setting] = setting.from_environ(environ, error=error)
    return Values(values)
