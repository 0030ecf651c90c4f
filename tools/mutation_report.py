"""Read mutmut's results and account for every surviving mutant (``./dev mutate`` runs this after mutmut).

A survivor is accounted for when it is listed in ``tests/mutation_equivalents.txt`` (``NAME  reason``,
one per line), or when it only rewords a message: the mutant differs from the original only inside
string literals that are human text (an f-string, or a literal with a space in it), which no decision
reads. Everything else is printed with its diff, and the exit code is 1: a missing test.
"""

from __future__ import annotations

import io
import sys
import tokenize
from collections import Counter
from pathlib import Path

EQUIVALENTS = Path("tests/mutation_equivalents.txt")


def results() -> dict[str, tuple[str, list[str]]]:
    """Every mutant's status and diff lines, read in this process (one parse per mutated file)."""
    from difflib import unified_diff

    import libcst as cst
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import read_mutant_function, read_mutants_module, read_original_function
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    found: dict[str, tuple[str, list[str]]] = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        if not data.exit_code_by_key:
            continue
        module = read_mutants_module(path)
        for name, code in data.exit_code_by_key.items():
            status = status_by_exit_code[code]
            lines: list[str] = []
            if status != "killed":
                orig, mutant = (cst.Module([f]).code.strip().split("\n") for f in
                                (read_original_function(module, name), read_mutant_function(module, name)))  # fmt: skip
                lines = [
                    x for x in unified_diff(orig, mutant, lineterm="") if x[:1] in "+-" and x[:3] not in ("+++", "---")
                ]
            found[name] = (status, lines)
    return found


def _tokens(line: str) -> list[tuple[int, str]]:
    """The line's tokens; a line of a longer statement (an open bracket) yields those read before the end."""
    out: list[tuple[int, str]] = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER):
                out.append((t.type, t.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def _human(text: str) -> bool:
    body = text.lstrip("rbuRBUfF")
    return text[:1] in "fF" or text[:2].lower() in ("rf", "fr") or " " in body


def message_only(lines: list[str]) -> bool:
    """True when the mutant changes nothing but human-readable string literals."""
    old = [x[1:] for x in lines if x.startswith("-")]
    new = [x[1:] for x in lines if x.startswith("+")]
    if not old or len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        ta, tb = _tokens(a), _tokens(b)
        if not ta or len(ta) != len(tb):
            return False
        for (ka, sa), (kb, sb) in zip(ta, tb, strict=True):
            if (ka, sa) == (kb, sb):
                continue
            if not (ka == kb == tokenize.STRING and _human(sa) and _human(sb)):
                return False
    return True


def main() -> int:
    listed = {}
    if EQUIVALENTS.exists():
        for line in EQUIVALENTS.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.partition(" ")
                listed[name] = why.strip()
    found = results()
    counts = Counter(status for status, _ in found.values())
    missing = []
    reworded = 0
    for name, (status, lines) in sorted(found.items()):
        if status in ("killed", "timeout", "segfault") or name in listed:
            continue
        if status == "survived" and message_only(lines):
            reworded += 1
            continue
        missing.append((name, status, lines))
    total = len(found)
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    print(f"{total} mutants: {killed} killed, {reworded} only reword a message, "
          f"{sum(1 for n in listed if n in found)} listed as equivalent, {len(missing)} unaccounted for")  # fmt: skip
    for name, status, lines in missing:
        print(f"\n{name}: {status}")
        print("\n".join(f"    {x}" for x in lines[:6]))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
