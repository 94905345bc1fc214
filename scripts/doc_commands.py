#!/usr/bin/env python3
"""Every `volley` command line in README.md and docs/*.md parses as written.

Users copy these lines; a renamed or removed flag must fail CI, not them.
The script takes each line of a ```sh block that runs volley (`volley ...`,
`./target/release/volley ...` or `cargo run --release -- ...`), drops what
the shell adds (`&`, comments, pipes, `$!` / `PID` placeholders become a
number), and asks the binary to check it without serving:

- `serve ...`: with `--print-config` (flags, environment and file merged and
  validated; exits without binding) — a missing `--config` file is skipped;
- any other subcommand: with `--help` appended after the real arguments, so
  clap rejects an unknown flag before it prints help.

Usage: scripts/doc_commands.py PATH_TO_VOLLEY
"""
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREFIXES = ("cargo run --release -- ", "./target/release/volley ", "volley ", "taskset -c 1 volley ")


def commands():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_sh = False
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if line.startswith("```"):
                in_sh = line.strip() in ("```sh", "```bash") and not in_sh
                continue
            if not in_sh:
                continue
            # Join continuation lines.
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + " " + lines[i].strip()
                i += 1
            text = line.split(" #", 1)[0].strip().rstrip("&").strip()
            for prefix in PREFIXES:
                if text.startswith(prefix):
                    yield doc.name, line.strip(), text[len(prefix):]
                    break


def check(volley, args):
    args = re.sub(r"\$!|\bPID\b", "1", args)
    argv = shlex.split(args)
    if not argv:
        return None
    if argv[0] == "serve":
        if "--config" in argv and not pathlib.Path(argv[argv.index("--config") + 1]).exists():
            argv = argv[: argv.index("--config")] + argv[argv.index("--config") + 2 :]
        if "--print-config" not in argv:
            argv.append("--print-config")
    else:
        argv.append("--help")
    run = subprocess.run([volley, *argv], capture_output=True, text=True, timeout=30)
    if run.returncode != 0:
        return run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"
    return None


def main():
    volley = sys.argv[1]
    failures = 0
    seen = 0
    for doc, line, args in commands():
        seen += 1
        error = check(volley, args)
        if error:
            failures += 1
            print(f"{doc}: `{line}`\n    {error}")
    print(f"{seen} documented volley command lines checked, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
