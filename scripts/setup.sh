#!/usr/bin/env bash
# Set the workbench up on this machine: system tools (Debian/Ubuntu), then a virtual environment in .venv
# with the pinned Python packages from pyproject.toml. Idempotent: a stamp records what was installed, so a
# second run costs a second. Used by `make setup` (and so by `make reproduce` and `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMP=.setup-stamp
APT_PACKAGES="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 sox ffmpeg codec2 opus-tools chromium"

say() { printf '[setup] %s\n' "$*"; }

have_system_tools() {
    command -v espeak-ng >/dev/null && command -v mbrola >/dev/null && command -v sox >/dev/null \
        && command -v ffmpeg >/dev/null && [ -d /usr/share/mbrola/us1 ] && [ -d /usr/share/mbrola/us2 ] \
        && [ -d /usr/share/mbrola/us3 ] && [ -d /usr/share/mbrola/en1 ]
}

install_system_tools() {
    if have_system_tools && command -v chromium >/dev/null; then return; fi
    if ! command -v apt-get >/dev/null; then
        say "WARNING: not a Debian/Ubuntu system. Install these yourself: espeak-ng, mbrola with the us1/us2/us3/en1"
        say "voices, sox, ffmpeg (optional: codec2, opus-tools, chromium). Without mbrola the corpus falls back to"
        say "espeak-ng's own voices, which offline ASR cannot read well."
        return
    fi
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            say "WARNING: need root (or password-less sudo) to apt-get install: $APT_PACKAGES"; return; fi
    fi
    # mbrola voices live in Debian's contrib/non-free components (Ubuntu: multiverse).
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        $SUDO sed -i 's/^Components: main$/Components: main contrib non-free/' /etc/apt/sources.list.d/debian.sources
    elif [ -f /etc/apt/sources.list ] && grep -q '^deb .*debian' /etc/apt/sources.list; then
        $SUDO sed -i -E '/contrib/! s/^(deb .*debian[^ ]* [a-z-]+) main$/\1 main contrib non-free/' /etc/apt/sources.list
    elif command -v add-apt-repository >/dev/null; then
        $SUDO add-apt-repository -y multiverse >/dev/null || true
    fi
    say "installing system packages: $APT_PACKAGES"
    $SUDO apt-get update -qq
    # Install what exists; a missing optional package (e.g. chromium on a minimal mirror) must not stop setup.
    available=""
    for p in $APT_PACKAGES; do
        if apt-cache show "$p" >/dev/null 2>&1; then available="$available $p"; else say "WARNING: no package $p here"; fi
    done
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $available >/dev/null
}

install_python() {
    want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then return; fi
    [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
    say "installing Python packages (torch==2.14.1, torchaudio==2.11.0, ...) into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    "$VENV/bin/python" -c 'import torch, torchaudio, soundfile, plotly, papermill, gradio' \
        || { say "ERROR: the Python environment does not import; see the pip output above"; exit 1; }
    echo "$want" > "$STAMP"
}

install_system_tools
install_python
say "ready: $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')"
