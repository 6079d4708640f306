# Shared by the scripts that install pinned test tools into .toolchain/ (node24.sh, conformance.sh,
# inspector.sh, python-sdk.sh). Sourced, never run.

# A machine-wide copy of what a script built, keyed by name and version, so a fresh clone on the
# same machine (CI's) copies it instead of downloading and building again. Every copy taken from it
# is checked exactly as a fresh install is, by the script that takes it.
cache="${BULWARK_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark-toolchain}"

from_cache() { # from_cache NAME DEST
  [ -d "$cache/$1" ] || return 1
  rm -rf "$2" && mkdir -p "$(dirname "$2")" && cp -a "$cache/$1" "$2"
}

to_cache() { # to_cache SRC NAME: best effort, never fails the install
  [ -d "$cache/$2" ] && return 0
  { mkdir -p "$cache" && cp -a "$1" "$cache/.$2.tmp.$$" && mv "$cache/.$2.tmp.$$" "$cache/$2"; } 2>/dev/null || rm -rf "$cache/.$2.tmp.$$"
}

run_logged() { # run_logged CMD...: quiet on success, the last 30 lines of its output on failure
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
