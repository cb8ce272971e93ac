"""Run options of an experiment: the resource grammar of ``--resources`` (``mem_mb=4000 runtime=60
slurm_extra='--qos=high'``), threads, retries and their policy, as experiment.yml keeps them."""
from __future__ import annotations

import re
import shlex
from typing import Any

from xmen.errors import UsageError
from xmen.store import retry, statecheck


_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: Resource names the Snakefile cannot take from a user: Snakemake's own (``_cores``, ``_nodes``, every ``_``
#: name), the rule's attempt counter, and names whose ``XMEN_<NAME>`` variable the rule already sets.
_RESERVED_RESOURCES = {"xmen_attempt": "the attempt counter of xmen's rule", "attempt": "XMEN_ATTEMPT is the attempt",
                       "threads": "use --threads"}


#: Characters a resource value may hold outside quotes.
_RESOURCE_CHAR = re.compile(r"[A-Za-z0-9_.:+%@/=-]")


#: The resource whose value is sbatch's own words (the SLURM executor plugin adds it to the sbatch line).
SBATCH_WORDS = "slurm_extra"


def parse_run_options(resources: str | dict[str, Any] | None, threads: int | None, retries: int | None,
                 retry_on: str | None = None) -> dict[str, Any]:
    """The run options of new experiments. An experiment with retries gets its retry policy (``retry_on``, the
    default one unless ``--retry-on`` says otherwise): one without it was registered before policies (xmen.store.retry)."""
    options: dict[str, Any] = {}
    parsed = parse_resources(resources) if resources else {}
    if parsed:
        options["resources"] = parsed
    if threads is not None:
        check_threads(threads)
        options["threads"] = threads
    if retry_on is not None and not retries:
        raise UsageError("--retry-on needs --retries N (how many attempts after a failure)")
    policy = retry.parse_policy(retry_on) if retry_on is not None else [retry.DEFAULT]
    if retries is not None:
        options["retries"] = retries
        if retries:
            options[retry.POLICY_KEY] = policy
    return options


def check_threads(threads: int) -> None:
    """UsageError unless ``threads`` is a number of CPUs one experiment can get (1 to statecheck.MAX_THREADS)."""
    problem = statecheck.count_problem("threads", threads, 1, statecheck.MAX_THREADS)
    if problem is not None:
        raise UsageError(f"--threads: {problem.replace(repr('threads') + ' ', '', 1)}")


def parse_resources(spec: str | dict[str, Any]) -> dict[str, Any]:
    """``"mem_mb=4000 runtime=60 slurm_partition=gpu"`` -> dict; ``mem_mb=1000,2000`` gives one value per attempt.

    The text is read like shell words: quotes keep spaces, ``=`` and commas inside a value
    (``slurm_extra='--mail-user="a b" --mail-type=END,FAIL'``); each word is split at its first unquoted ``=``.
    Outside quotes a value may hold only plain characters, so a stray ``;`` or ``$`` is an error, not a value.
    """
    if isinstance(spec, dict):
        items = [(str(k), v if isinstance(v, list) else str(v).split(",")) for k, v in spec.items()]
        items = [(k, [_plain(v) for v in values]) for k, values in items]
    else:
        items = [_split_word(word) for word in _resource_words(spec)]
    parsed: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for key, values in items:
        if not _RESOURCE_NAME.match(key):
            raise UsageError(f"--resources: invalid resource name {key!r}")
        reserved = _RESERVED_RESOURCES.get(key.lower())
        if reserved is None and key.startswith("_"):
            reserved = "Snakemake keeps names starting with '_', such as _cores and _nodes"
        if reserved is not None:
            raise UsageError(f"--resources: {key!r} is reserved ({reserved})")
        variable = key.upper()  # the experiment sees XMEN_<NAME>
        if variable in variables:
            raise UsageError(f"--resources: {variables[variable]!r} and {key!r} are one resource (XMEN_{variable})")
        variables[variable] = key
        converted = [_resource_value(key, value) for value in values]
        parsed[key] = converted[0] if len(converted) == 1 else converted
    return parsed


#: One character of a --resources word and whether it was quoted (quoted characters are taken literally).
_Char = tuple[str, bool]


def _resource_words(spec: str) -> list[list[_Char]]:
    """The words of a --resources text, shell-like: whitespace separates, '...' and "..." quote, \\ escapes."""
    words: list[list[_Char]] = []
    word: list[_Char] | None = None
    quote = ""
    chars = iter(spec)
    for char in chars:
        if quote:
            if char == quote:
                quote = ""
                continue
            if char == "\\" and quote == '"':
                following = next(chars, "")
                if following not in ('"', "\\"):
                    word.append(("\\", True))  # type: ignore[union-attr]
                char = following
            word.append((char, True))  # type: ignore[union-attr]
            continue
        if char.isspace():
            if word is not None:
                words.append(word)
                word = None
            continue
        if word is None:
            word = []
        if char in ("'", '"'):
            quote = char
        elif char == "\\":
            word.append((next(chars, ""), True))
        else:
            word.append((char, False))
    if quote:
        raise UsageError(f"--resources: unclosed {quote} in {spec!r}")
    if word is not None:
        words.append(word)
    return words


def _split_word(word: list[_Char]) -> tuple[str, list[list[_Char]]]:
    """(name, the values per attempt) of one NAME=VALUE word: split at the first unquoted ``=``, then at unquoted
    commas."""
    text = "".join(c for c, _ in word)
    at = next((i for i, (c, quoted) in enumerate(word) if c == "=" and not quoted), None)
    if at is None or at == len(word) - 1:
        raise UsageError(f"--resources: expected NAME=VALUE, got {text!r}")
    if any(quoted for _, quoted in word[:at]):
        raise UsageError(f"--resources: invalid resource name {''.join(c for c, _ in word[:at])!r}")
    values: list[list[_Char]] = [[]]
    for char, quoted in word[at + 1:]:
        if char == "," and not quoted:
            values.append([])
        else:
            values[-1].append((char, quoted))
    return "".join(c for c, _ in word[:at]), values


def _plain(value: Any) -> list[_Char]:
    """A value given as data (a YAML mapping): held to the rules of unquoted text."""
    return [(c, False) for c in str(value).strip()]


def unsafe_resource_char(key: str, text: str) -> str | None:
    """The first character of a resource value that must not reach sbatch's shell line, or None.

    The SLURM plugin puts resource values unquoted on a line it runs with a shell (``--gpus={gpu}``); only
    ``slurm_extra`` is re-quoted word by word (:func:`sbatch_words`), so only it may hold spaces, quotes, ``;``
    or ``$``. Every other value keeps to plain characters (and commas: a list of partitions), however it was
    written, also by hand in experiment.yml.
    """
    for char in text:
        if not char.isprintable():
            return char
        if key != SBATCH_WORDS and char != "," and not _RESOURCE_CHAR.match(char):
            return char
    return None


def _resource_value(key: str, value: list[_Char]) -> int | float | str:
    text = "".join(c for c, _ in value)
    bad = [c for c, quoted in value if (not quoted and not _RESOURCE_CHAR.match(c)) or not c.isprintable()]
    if not bad and unsafe_resource_char(key, text) is not None:  # quoted, but not slurm_extra
        raise UsageError(f"--resources: invalid value {text!r} for {key}: only {SBATCH_WORDS} may hold "
                         f"{unsafe_resource_char(key, text)!r} (the others reach sbatch's command line as they are)")
    if not text or bad:
        raise UsageError(f"--resources: invalid value {text!r} for {key}"
                         + (f" (quote {bad[0]!r})" if bad and bad[0].isprintable() and key == SBATCH_WORDS else ""))
    if key == SBATCH_WORDS:
        try:
            shlex.split(text)
        except ValueError as exc:
            raise UsageError(f"--resources: {key} {text!r}: {exc} (it is read as sbatch's own words)") from None
    if not any(quoted for _, quoted in value):
        for kind in (int, float):
            try:
                number = kind(text)
            except ValueError:
                continue
            problem = statecheck.resource_problem(key, number)
            if problem is not None:
                raise UsageError(f"--resources: {problem}")
            return number
    return text


def sbatch_words(value: str) -> str:
    """``slurm_extra`` as the plugin puts it on sbatch's shell line: the user's words, each quoted, so that a value
    with spaces stays one argument and nothing in it runs (``--mail-user="a b"`` -> ``'--mail-user=a b'``)."""
    return " ".join(shlex.quote(word) for word in shlex.split(value))
