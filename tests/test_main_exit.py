"""On the way out, agentcli leaves the interpreter's exit collections nothing to traverse: every
object alive is frozen, so exiting costs no full walk of what the SDKs and typer created."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_objects_alive_at_exit_are_frozen_out_of_the_collector(tmp_path):
    code = textwrap.dedent("""
        import gc, sys
        sys.argv = ["agentcli", "tools", "list"]
        from agentcli.__main__ import main
        try:
            main()
        except SystemExit as e:
            code = e.code
        else:
            code = 0
        print("exit", code, "left", len(gc.get_objects()), "frozen", gc.get_freeze_count(),
              file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={"AGENTCLI_HOME": str(tmp_path), "PATH": "/usr/bin"})
    fields = proc.stderr.split()
    assert fields[:2] == ["exit", "0"], proc.stderr
    left, frozen = int(fields[3]), int(fields[5])
    assert frozen > 10_000  # what typer, yaml and the manifests created
    assert left < 1_000  # what the exit collections still have to traverse
