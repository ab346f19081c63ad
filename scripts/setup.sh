#!/usr/bin/env bash
# One idempotent set-up for both README commands:
#   1. .venv with crowdtui installed (re-installed only when pyproject.toml changes)
#   1b. Synapse (Matrix homeserver) for tests, in its own virtualenv cached by version
#   2. a Docker engine that answers (as root with apt: installs docker.io, starts dockerd)
#   3. the agent image (built with no registry; reused when its inputs are unchanged)
#   4. the claude-code runner image (Claude Code fetched once with the host's npm, cached by
#      version; a layer on the agent image)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || die "python3 is not installed; install Python 3.11 or newer"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is needed ($("$PY" --version))"

# --- 1. virtual environment -------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    step "creating .venv"
    "$PY" -m venv .venv || die "could not create .venv; on Debian: apt-get install python3-venv"
fi
STAMP=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$STAMP" ]; then
    step "installing crowdtui and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    rm -f .venv/.installed-*
    touch "$STAMP"
else
    step "crowdtui already installed in .venv"
fi

# --- 1b. Synapse for the Matrix channel's tests: its own virtualenv, cached by version --
SYNAPSE_VERSION=1.163.2
SYNAPSE_VENV="$HOME/.cache/crowdtui/synapse-$SYNAPSE_VERSION"
if [ ! -x "$SYNAPSE_VENV/bin/synapse_homeserver" ]; then
    step "installing Synapse $SYNAPSE_VERSION into $SYNAPSE_VENV (tests only; about a minute)"
    rm -rf "$SYNAPSE_VENV"
    "$PY" -m venv "$SYNAPSE_VENV"
    "$SYNAPSE_VENV/bin/python" -m pip install --quiet "matrix-synapse==$SYNAPSE_VERSION"
else
    step "Synapse $SYNAPSE_VERSION present"
fi

# --- 2. Docker engine -------------------------------------------------------
engine_answers() { .venv/bin/python -c 'import docker; docker.from_env().ping()' >/dev/null 2>&1; }
need_apt=()
if ! engine_answers; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        command -v dockerd >/dev/null || need_apt+=(docker.io)
    else
        die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}).
Install and start Docker (on Debian: sudo apt-get install docker.io && sudo systemctl start docker),
or re-run this set-up as root so it can do that itself."
    fi
fi
if ! command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt+=(debootstrap)
fi
if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt+=(npm)  # the host's npm fetches runner packages (Claude Code) for their images
fi
if ! command -v zsh >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt+=(zsh)  # tests/cli/test_completion.py sources `crowdtui completion zsh` in a real zsh
fi
if ! command -v dovecot >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt+=(dovecot-imapd)  # the email channel's tests start a real IMAP server (Dovecot)
fi
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt+=(openssh-server)  # tests/engines reach a second engine over ssh:// through a real sshd
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    step "installing Debian packages: ${need_apt[*]} (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! engine_answers; then
    step "starting dockerd in the background (log: /var/log/crowdtui-dockerd.log)"
    nohup dockerd >/var/log/crowdtui-dockerd.log 2>&1 &
    for i in $(seq 1 60); do
        engine_answers && break
        sleep 1
    done
    engine_answers || die "dockerd did not answer within 60 s; see /var/log/crowdtui-dockerd.log"
fi
step "Docker engine answers"

# --- 3. agent image ---------------------------------------------------------
step "agent image"
.venv/bin/crowdtui image build

# --- 4. the claude-code runner image ----------------------------------------
# The acceptance tests drive the real `claude` binary. Fetched once (~190 MB) with this
# machine's npm and kept under ~/.cache/crowdtui/npm; later runs reuse the image.
step "claude-code runner image"
.venv/bin/crowdtui image build --runner claude-code
