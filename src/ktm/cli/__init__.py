"""The `ktm` command: a thin layer over the library.

Every command takes ``--config FILE`` (a JSON object whose keys are the command's option
names); options given on the command line win. Bad usage or input exits with code 2 and a
one-line message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..errors import KTMError
from .options import EXIT_USAGE
from .parser import build_parser

EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C

__all__ = ["main", "build_parser", "EXIT_USAGE"]


def _apply_config_file(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Make the --config file's values the defaults of the chosen (sub)command."""
    if "--config" not in argv:
        return
    i = list(argv).index("--config")
    if i + 1 >= len(argv):
        raise KTMError("--config needs a file name")
    from ..io_utils import read_json

    values = read_json(argv[i + 1], "config file")
    if not isinstance(values, dict):
        raise KTMError(f"config file {argv[i + 1]} must hold a JSON object of option values")
    target = parser
    for word in argv[:i]:  # walk down to the subcommand's parser
        actions = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        if actions and word in actions[0].choices:
            target = actions[0].choices[word]
    known = {a.dest for a in target._actions}
    normalized = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(normalized) - known)
    if unknown:
        raise KTMError(f"config file {argv[i + 1]}: unknown option(s) {', '.join(unknown)}")
    target.set_defaults(**normalized)
    for action in target._actions:  # a required option given in the file is satisfied
        if action.dest in normalized:
            action.required = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = None
    try:
        _apply_config_file(parser, argv)
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except KTMError as e:
        print(f"ktm: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if getattr(args, "resume", None) is not None:  # a run: say how to pick it up
            hint = f"`ktm {args.command} --resume --out {args.out}` continues it"
        else:
            hint = "nothing was saved"
        print(f"ktm: interrupted; {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
