# Sourced by scripts/install_libtorch.sh and scripts/fetch_model.sh: checked downloads into the
# xmodal cache. The sourcing script sets DOWNLOAD_TAG (its message prefix, e.g. "libtorch") and
# defines fail(); CACHE is the cache folder.
#   ${XMODAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmodal}
CACHE="${XMODAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmodal}"

# The exit status a script gives when the registry cannot be reached at all (no DNS, no route,
# connection refused or timed out): a caller may skip instead of failing.
UNREACHABLE=3

# fetch URL SHA256 BYTES: prints the cached file (CACHE/downloads/NAME), downloading it first
# when absent or wrong. Every download is checked against its size and sha256 before use; a
# failed one leaves nothing behind.
fetch() {
  local url="$1" sha="$2" bytes="$3"
  local file="$CACHE/downloads/${url##*/}"
  mkdir -p "$CACHE/downloads" || fail "cannot create the cache folder $CACHE"
  if [[ -f "$file" ]] && [[ "$(stat -c %s "$file")" == "$bytes" ]] &&
    [[ "$(sha256sum "$file" | cut -d' ' -f1)" == "$sha" ]]; then
    echo "$file"
    return
  fi
  echo "[$DOWNLOAD_TAG] downloading ${url##*/} ($((bytes / 1048576)) MiB)" >&2
  local start=$SECONDS rc=0
  curl --fail --location --silent --show-error --retry 3 --connect-timeout 30 \
    -o "$file.part" "$url" || rc=$?
  if ((rc)); then
    rm -f "$file.part"
    # 6: could not resolve the host, 7: could not connect, 28: timed out.
    if ((rc == 6 || rc == 7 || rc == 28)); then
      echo "[$DOWNLOAD_TAG] error: ${url%%/packages/*} cannot be reached (curl exit $rc); nothing was installed" >&2
      exit "$UNREACHABLE"
    fi
    fail "download of $url failed (curl exit $rc); nothing was installed"
  fi
  local got
  got="$(stat -c %s "$file.part")"
  if [[ "$got" != "$bytes" ]]; then
    rm -f "$file.part"
    fail "${url##*/}: $got bytes downloaded, $bytes expected (a partial download); nothing was installed"
  fi
  got="$(sha256sum "$file.part" | cut -d' ' -f1)"
  if [[ "$got" != "$sha" ]]; then
    rm -f "$file.part"
    fail "${url##*/}: sha256 $got, expected $sha (the lock file); nothing was installed"
  fi
  mv "$file.part" "$file"
  echo "[$DOWNLOAD_TAG] downloaded ${url##*/} in $((SECONDS - start)) s" >&2
  echo "$file"
}

# new_tmp DIR: an empty temporary folder (TMP), removed if the script stops before it is renamed.
new_tmp() {
  TMP="$1"
  trap 'rm -rf "$TMP"' EXIT
  rm -rf "$TMP"
  mkdir -p "$TMP"
}
