"""Commands in a private network namespace that has only loopback, for the Ray tests.

Ray looks for the machine's address by opening a socket towards a public DNS server,
and advertises whatever interface it finds. In a namespace whose only interface is
`lo` nothing can leave the machine, even by mistake: `unshare -n` (as root), or
`unshare -rn` (a user namespace too, where unprivileged ones are allowed), then
`ip link set lo up`. When neither works the tests fail with a message saying so,
never skip: the Ray tests do not run outside the namespace.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile

# `ip link set lo up`, then the command (its arguments passed through "$@")
_INNER = 'ip link set lo up && exec "$@"'


class NoNamespace(RuntimeError):
    """No loopback-only network namespace can be made on this machine."""


@functools.cache
def unshare_prefix() -> tuple[str, ...]:
    """`unshare` with the options that work here (probed once): `-n` as root, else
    `-rn`. Raises NoNamespace with what each try said when none works."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        raise NoNamespace(f"{' and '.join(missing)} not found: the Ray tests run in a "
                          "loopback-only network namespace (`tools/install-dev` installs "
                          "util-linux and iproute2)")
    tries = [("unshare", "-n"), ("unshare", "-rn")] if os.geteuid() == 0 else \
        [("unshare", "-rn")]
    said = []
    for prefix in tries:
        probe = subprocess.run([*prefix, "sh", "-c", _INNER, "sh", "true"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return prefix
        said.append(f"`{' '.join(prefix)}`: {probe.stderr.strip() or probe.returncode}")
    raise NoNamespace("cannot make a loopback-only network namespace for the Ray tests ("
                      + "; ".join(said) + "): run the tests as root, or where unprivileged "
                      "user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1)")


def isolated(command: list[str]) -> list[str]:
    """`command` run in a new network namespace that has only loopback, up, with a Ray
    temp folder of its own. Ray also finds running instances through the files in its
    temp folder (`/tmp/ray`), which a network namespace does not hide: sharing it, a
    job could try to join another test run's instance, unreachable from here. The
    folder is removed when this process exits."""
    ray_tmp = tempfile.mkdtemp(prefix="tfspec-ray.", dir="/tmp")  # short: Ray's sockets
    atexit.register(shutil.rmtree, ray_tmp, ignore_errors=True)
    return [*unshare_prefix(), "env", f"RAY_TMPDIR={ray_tmp}", "sh", "-c", _INNER, "sh",
            *command]
