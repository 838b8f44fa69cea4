#!/usr/bin/env bash
# Installs the servers that Revisor's tests run for real: Prometheus (Debian's `prometheus`
# package, 2.x). Idempotent: a machine that already has the binaries returns at once.
# The package would normally start a system-wide Prometheus service listening on every
# interface; a temporary policy-rc.d stops that, since the tests start their own server on
# loopback and stop it themselves.
# Exit status: 0 installed (or already there), 2 cannot install here (no apt-get, or not root
# and no password-less sudo): the tests that need Prometheus then say so and are skipped.
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "revisor: no apt-get here; install Prometheus 2.x (prometheus and promtool) by hand" >&2
    exit 2
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "revisor: installing Prometheus needs root (apt-get install prometheus)" >&2
        exit 2
    fi
fi

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Revisor: no service starts while installing test tools\nexit 101\n' \
        | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi

install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
         --no-install-recommends prometheus)
echo "revisor: installing Prometheus (Debian package) for the test suite" >&2
if ! "${install[@]}" >/dev/null; then
    "${as_root[@]}" apt-get update -q >/dev/null
    "${install[@]}" >/dev/null
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
